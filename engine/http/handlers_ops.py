"""Operational routes: workers, fleet stats, Prometheus metrics, probes, the OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.http.context import ctx
from engine.http.contract import AuditLog, AuditQuery, AuditView, Stats, Status, Workers
from engine.http.errors import reply, unavailable
from engine.http.validation import read_query
from engine.metrics.prometheus import CONTENT_TYPE, render_prometheus
from engine.metrics.publisher import fetch_fleet_snapshot
from engine.metrics.snapshot import LatencySummary, MetricsSnapshot
from engine.queues import all_queue_stats, queue_gauges
from engine.worker import registry

#: Seconds the rates in /v1/stats average over (complete seconds before the snapshot).
RATE_WINDOW_S = 10
#: A readiness probe that waits longer than this on Redis reports not ready.
READY_TIMEOUT_S = 2.0


def _summary(s: LatencySummary) -> dict[str, float]:
    return {
        "count": s.count,
        "p50_ms": s.p50_ms,
        "p95_ms": s.p95_ms,
        "p99_ms": s.p99_ms,
        "max_ms": s.max_ms,
        "mean_ms": s.mean_ms,
    }


def _window(window_s: int) -> str:
    return "all" if window_s == 0 else f"{window_s}s"


def stats_summary(snap: MetricsSnapshot | None) -> Stats:
    """The fleet snapshot as JSON summaries: percentiles per stage and window, counters with
    rates, depths. Raw histograms stay out (they are for merging, not for reading)."""
    if snap is None:
        return Stats(
            processes=0,
            taken_at_s=time.time(),
            uptime_s=0.0,
            dropped_samples=0,
            stages={},
            breakdowns={},
            counters={},
            depths=[],
        )
    stages: dict[str, dict[str, Any]] = {}
    for s in snap.stages:
        stages.setdefault(s.stage, {})[_window(s.window_s)] = _summary(s.summary)
    breakdowns: dict[str, dict[str, Any]] = {}
    for b in snap.breakdowns:
        per_key = breakdowns.setdefault(b.dimension, {}).setdefault(b.key, {})
        per_key.setdefault(b.stage, {})[_window(b.window_s)] = _summary(b.summary)
    end = int(snap.taken_at_s)
    counters = {
        c.event: {
            "total": c.total,
            "per_queue": dict(c.per_queue),
            "rate_per_s": sum(n for sec, n in c.rate_series if end - RATE_WINDOW_S <= sec < end)
            / RATE_WINDOW_S,
        }
        for c in snap.counters
    }
    return Stats(
        processes=snap.processes,
        taken_at_s=snap.taken_at_s,
        uptime_s=snap.uptime_s,
        dropped_samples=snap.dropped_samples,
        rate_window_s=RATE_WINDOW_S,
        stages=stages,
        breakdowns=breakdowns,
        counters=counters,
        depths=[
            {"queue": d.queue, "level": d.level, "depth": d.depth, "sampled_at_s": d.sampled_at_s}
            for d in snap.depths
        ],
    )


async def list_workers(request: web.Request) -> web.Response:
    """GET /v1/workers → live worker processes."""
    c = ctx(request)
    workers = await registry.list_workers(c.broker.redis, c.prefix)
    return reply(Workers(workers=[w.to_dict() for w in workers]))


async def audit_log(request: web.Request) -> web.Response:
    """GET /v1/audit[?limit=] → {"entries": [...]}: operator actions, newest first."""
    query = read_query(request, AuditQuery)
    entries = await ctx(request).broker.audit_log(query.limit)
    views = [msgspec.convert(e, AuditView, from_attributes=True) for e in entries]
    return reply(AuditLog(entries=views))


async def get_stats(request: web.Request) -> web.Response:
    """GET /v1/stats → the merged fleet snapshot, summarised."""
    c = ctx(request)
    return reply(stats_summary(await fetch_fleet_snapshot(c.broker.redis, c.prefix)))


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics → Prometheus text exposition of the fleet snapshot."""
    c = ctx(request)
    snap = await fetch_fleet_snapshot(c.broker.redis, c.prefix)
    if snap is None:  # no process published yet: empty series, still a valid exposition
        snap = MetricsSnapshot(worker_id="fleet", taken_at_s=time.time(), uptime_s=0.0, processes=0)
    stats = await all_queue_stats(c.broker)
    flows = {s.queue: s.flow for s in stats if s.flow is not None}
    gauges = await queue_gauges(c.broker, time.time() * 1000, stats)
    resp = web.Response(body=render_prometheus(snap, gauges, flows).encode())
    resp.headers["Content-Type"] = CONTENT_TYPE  # set whole: content_type= would drop version=
    return resp


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz → 200 while the process serves requests (no Redis call)."""
    return reply(Status(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz → 200 when Redis answers PING, else 503 with Retry-After."""
    liveness = ctx(request).liveness
    if liveness is not None and not liveness.healthy:
        # The worker's connections are being reopened: it is not doing work right now.
        raise unavailable(f"Redis is unreachable from the worker ({liveness.error})")
    try:
        await asyncio.wait_for(ctx(request).broker.redis.ping(), READY_TIMEOUT_S)
    except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
        raise unavailable(f"Redis does not answer ({type(exc).__name__})") from None
    return reply(Status(status="ready"))


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.json → the OpenAPI document (encoded once at startup)."""
    return web.Response(body=ctx(request).openapi_json, content_type="application/json")
