"""`run_benchmark`: one benchmark run under a private key prefix, always cleaned up after."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import platform
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import engine
from engine.bench.fleet import delete_prefix
from engine.bench.harness import Context
from engine.bench.latency import run_latency
from engine.bench.params import BenchParams, parse_task
from engine.bench.procedures import RunInfo, run_profiled, run_scalability, run_single
from engine.bench.producer import preload
from engine.bench.progress import BenchProgress
from engine.bench.report import BenchReport
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import mask_url, open_redis

PROBE_QUEUE = "benchmem"


def new_prefix() -> str:
    """A key prefix no real queue uses: `spoolbench-<random>`."""
    return f"spoolbench-{uuid.uuid4().hex[:10]}"


async def _redis_version(broker: Broker) -> str:
    info = await broker.redis.info("server")
    if info.get("valkey_version"):
        return f"valkey {info['valkey_version']}"
    return str(info.get("redis_version", "?"))


async def _bytes_per_task(broker: Broker, params: BenchParams) -> float | None:
    """INFO used_memory delta per queued task, on a side queue no pool consumes."""
    n = params.mem_probe_tasks
    if n <= 0:
        return None
    name, args = parse_task(params.task)
    await broker.register_queues([PROBE_QUEUE])  # so the registration is not in the delta
    before = int((await broker.redis.info("memory"))["used_memory"])
    await preload(broker, PROBE_QUEUE, name, args, n, priority=params.priority)
    after = int((await broker.redis.info("memory"))["used_memory"])
    await delete_prefix(broker.redis, broker.config.prefix)
    return round((after - before) / n, 1)


async def run_benchmark(
    redis_url: str,
    params: BenchParams,
    *,
    progress: Callable[[BenchProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> BenchReport:
    """Run the benchmark `params` describes against `redis_url` and return its report.

    Everything happens under a fresh `spoolbench-<random>` prefix (never a real queue's keys),
    and every key of that prefix is deleted afterwards, on success, error or cancellation.
    `progress` receives ~5 samples a second; setting `cancel` stops the run at the next poll
    (a cancelled scalability run reports the steps finished so far). With `processes` P > 1
    the in-process pool is joined by P - 1 `spool-console --no-ui` children.
    """
    prefix = new_prefix()
    redis = await open_redis(redis_url, max_connections=64)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        with tempfile.TemporaryDirectory(prefix="spoolbench-") as logs:
            ctx = Context(broker, redis_url, prefix, Path(logs), progress, cancel)
            ctx.emit("setup", 0, params.offered)
            info = RunInfo(
                started_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                redis=mask_url(redis_url),
                python=platform.python_version(),
                redis_version=await _redis_version(broker),
                spool=engine.__version__,
                cores=os.cpu_count() or 0,
                load_1m=None if load is None else round(load, 2),
                bytes_per_task=await _bytes_per_task(broker, params),
                probe_tasks=params.mem_probe_tasks,
            )
            if params.type == "scalability":
                report = await run_scalability(ctx, info, params)
            elif params.type == "latency":
                report = await run_latency(ctx, info, params)
            elif params.type == "profiled":
                out = Path(params.out_dir or tempfile.mkdtemp(prefix="spoolbench-profile-"))
                report = await run_profiled(ctx, info, params, out)
            else:
                report = await run_single(ctx, info, params)
            if ctx.cancelled:
                report = dataclasses.replace(
                    report, cancelled=True, notes=(*report.notes, "cancelled by caller")
                )
            ctx.emit("done", report.completed, report.tasks + report.backlog_low)
            return report
    finally:
        # Shielded: a cancelled caller must still not leave the bench prefix behind.
        try:
            await asyncio.shield(delete_prefix(redis, prefix))
        finally:
            await redis.aclose()
