"""The soak benchmark: a steady rate for a long time, watching memory and latency for drift.

One `spool-console --no-ui` worker runs in its own process (as in production); this process
is the open-loop producer. Every `sample_every_s` the run records the worker's and the
producer's RSS, the server's `used_memory`, and the end-to-end p50/p99 of the tasks finished
in that interval (from the worker's published metrics snapshot). The verdict figures are the
RSS slope after the warm-up (the metric windows' 300 s horizon filling is expected growth) and
the p99 of the last stretch against the first stretch after warm-up.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from engine.bench.fleet import Fleet, child_snapshots, delete_prefix
from engine.bench.params import parse_task
from engine.bench.producer import OpenLoopProducer
from engine.bench.runner import new_prefix
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import mask_url, open_redis
from engine.metrics.histogram import LogHistogram
from engine.metrics.snapshot import MetricsSnapshot

QUEUE = "soak"
#: The metric windows' horizon (300 s) plus a minute: growth before this is the windows filling.
DEFAULT_WARMUP_S = 360.0
#: Length of the first and last stretch whose p99s are compared (issue 15: 5 minutes).
STRETCH_S = 300.0


@dataclass(frozen=True, slots=True)
class SoakParams:
    """One soak run: `rate` tasks/s of `task` for `duration_s`, sampled every `sample_every_s`."""

    rate: float = 5_000.0
    duration_s: float = 1_800.0
    sample_every_s: float = 30.0
    concurrency: int = 16
    task: str = "spool.noop"
    warmup_s: float | None = None
    #: Run the console (its UI on a 160×45 pseudo-terminal, and its local pool) as the worker.
    console: bool = False

    def __post_init__(self) -> None:
        parse_task(self.task)
        if self.rate <= 0 or self.duration_s <= 0 or self.sample_every_s <= 0:
            raise ValueError("rate, duration and sample interval must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")

    @property
    def warmup(self) -> float:
        """Seconds before the slope is measured: the horizon plus a minute, or half a short run."""
        if self.warmup_s is not None:
            return self.warmup_s
        return min(DEFAULT_WARMUP_S, self.duration_s / 2)


@dataclass(frozen=True, slots=True)
class SoakSample:
    """The state at one sampling instant; latencies cover the interval since the previous one."""

    at_s: float
    offered: int
    completed: int
    rate: float
    worker_rss_mb: float
    producer_rss_mb: float
    redis_used_mb: float
    p50_ms: float
    p99_ms: float


def _slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per hour (None below 2 points)."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / var * 3600


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@dataclass(frozen=True)
class SoakReport:
    """Samples of a soak run and the verdict figures derived from them."""

    params: SoakParams
    samples: tuple[SoakSample, ...]
    dead: int
    failed: int
    redis: str
    cores: int
    load_start: float | None
    load_end: float | None

    def _after_warmup(self) -> list[SoakSample]:
        return [s for s in self.samples if s.at_s >= self.params.warmup]

    def slope_mb_per_h(self, field: str) -> float | None:
        """RSS slope of `worker_rss_mb`/`producer_rss_mb`/`redis_used_mb` after warm-up."""
        return _slope_per_hour([(s.at_s, getattr(s, field)) for s in self._after_warmup()])

    def rss_change_mb(self, field: str = "worker_rss_mb") -> float | None:
        """Last sample minus the first sample after warm-up."""
        after = self._after_warmup()
        if len(after) < 2:
            return None
        return getattr(after[-1], field) - getattr(after[0], field)

    def p99_stretches(self) -> tuple[float | None, float | None]:
        """Median interval p99 of the first and of the last stretch after warm-up (ms).

        A stretch is 5 minutes, or a third of the post-warm-up time in shorter runs.
        """
        after = [s for s in self._after_warmup() if s.p99_ms > 0]
        if not after:
            return None, None
        span = after[-1].at_s - after[0].at_s
        stretch = min(STRETCH_S, span / 3) if span > 0 else 0.0
        first = [s.p99_ms for s in after if s.at_s <= after[0].at_s + stretch]
        last = [s.p99_ms for s in after if s.at_s >= after[-1].at_s - stretch]
        return _median(first), _median(last)

    def to_text(self) -> str:
        """A plain-text report: the samples table, then the verdict figures."""
        p = self.params
        lines = [
            f"soak: {p.task} at {p.rate:,.0f}/s for {p.duration_s:,.0f} s, one"
            f" {'console (160x45 terminal)' if p.console else 'worker'} process"
            f" at concurrency {p.concurrency}; {self.redis}; {self.cores} cores,"
            f" load {self.load_start} at start, {self.load_end} at end",
            "",
            f"{'t (s)':>7} {'done':>10} {'rate/s':>8} {'worker MB':>10} {'producer MB':>12}"
            f" {'redis MB':>9} {'p50 ms':>8} {'p99 ms':>8}",
        ]
        for s in self.samples:
            lines.append(
                f"{s.at_s:>7.0f} {s.completed:>10,} {s.rate:>8,.0f} {s.worker_rss_mb:>10.1f}"
                f" {s.producer_rss_mb:>12.1f} {s.redis_used_mb:>9.1f} {s.p50_ms:>8.2f}"
                f" {s.p99_ms:>8.2f}"
            )
        first, last = self.p99_stretches()

        def fmt(v: float | None, unit: str) -> str:
            return "-" if v is None else f"{v:+.1f} {unit}"

        lines += [
            "",
            f"after warm-up ({p.warmup:.0f} s): worker RSS change"
            f" {fmt(self.rss_change_mb(), 'MB')},"
            f" slope {fmt(self.slope_mb_per_h('worker_rss_mb'), 'MB/h')};"
            f" producer slope {fmt(self.slope_mb_per_h('producer_rss_mb'), 'MB/h')};"
            f" redis slope {fmt(self.slope_mb_per_h('redis_used_mb'), 'MB/h')}",
            "interval p99, first vs last stretch after warm-up: "
            + (
                "-"
                if first is None or last is None
                else f"{first:.2f} ms -> {last:.2f} ms ({last / first:.2f}x)"
            ),
            f"dead {self.dead}, failed {self.failed}",
        ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, verdict figures included."""
        first, last = self.p99_stretches()
        return {
            "params": asdict(self.params),
            "samples": [asdict(s) for s in self.samples],
            "dead": self.dead,
            "failed": self.failed,
            "redis": self.redis,
            "cores": self.cores,
            "load_start": self.load_start,
            "load_end": self.load_end,
            "worker_rss_change_mb": self.rss_change_mb(),
            "worker_slope_mb_per_h": self.slope_mb_per_h("worker_rss_mb"),
            "producer_slope_mb_per_h": self.slope_mb_per_h("producer_rss_mb"),
            "redis_slope_mb_per_h": self.slope_mb_per_h("redis_used_mb"),
            "p99_first_ms": first,
            "p99_last_ms": last,
        }


def _e2e(snap: MetricsSnapshot | None) -> LogHistogram:
    if snap is not None:
        for s in snap.stages:
            if s.stage == "end_to_end" and s.window_s == 0:
                return LogHistogram.from_dict(s.histogram)
    return LogHistogram()


def _rss_mb(pid: int | None) -> float:
    try:
        return (psutil.Process(pid).memory_info().rss if pid else 0) / 1e6
    except psutil.Error:
        return 0.0


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


async def run_soak(
    redis_url: str, params: SoakParams, *, on_sample: Callable[[SoakSample], None] | None = None
) -> SoakReport:
    """Run a soak against `redis_url` under a private prefix (deleted afterwards)."""
    prefix = new_prefix()
    redis = await open_redis(redis_url, max_connections=16)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    name, args = parse_task(params.task)
    samples: list[SoakSample] = []
    load_start = _load()
    dead = failed = 0
    with tempfile.TemporaryDirectory(prefix="spoolsoak-") as logs:
        fleet = Fleet(redis_url, prefix, QUEUE, Path(logs))
        prod_task: asyncio.Task[None] | None = None
        try:
            if params.console:
                fleet.spawn_console(params.concurrency)
            else:
                fleet.spawn(1, params.concurrency, params.concurrency, params.concurrency)
            await fleet.wait_registered(redis, broker.globals.workers, 1, 60.0)
            worker_pid = fleet.pids[0] if fleet.pids else None
            total = max(1, round(params.rate * params.duration_s))
            producer = OpenLoopProducer(
                broker, QUEUE, name, args, rate=params.rate, total=total, batch_max=500
            )
            t0 = time.monotonic()
            prod_task = asyncio.create_task(producer.run())
            last_t, last_done, last_hist = t0, 0, LogHistogram()
            next_at = t0 + params.sample_every_s
            settle_deadline: float | None = None
            while True:
                now = time.monotonic()
                snaps = await child_snapshots(redis, prefix, exclude="")
                snap = snaps[0] if snaps else None
                done = snap.counter("succeeded") if snap else 0
                dead = snap.counter("dead") if snap else 0
                failed = snap.counter("failed") if snap else 0
                finished = prod_task.done() and done + dead >= producer.sent
                if prod_task.done() and settle_deadline is None:
                    settle_deadline = now + 60.0
                if now >= next_at or finished:
                    hist = _e2e(snap)
                    delta = (
                        hist.copy().subtract(last_hist) if hist.count >= last_hist.count else hist
                    )
                    info = await redis.info("memory")
                    samples.append(
                        SoakSample(
                            at_s=round(now - t0, 1),
                            offered=producer.sent,
                            completed=done,
                            rate=round((done - last_done) / max(1e-9, now - last_t), 1),
                            worker_rss_mb=round(_rss_mb(worker_pid), 2),
                            producer_rss_mb=round(_rss_mb(os.getpid()), 2),
                            redis_used_mb=round(int(info["used_memory"]) / 1e6, 2),
                            p50_ms=round(delta.percentile(50) / 1000, 3) if delta.count else 0.0,
                            p99_ms=round(delta.percentile(99) / 1000, 3) if delta.count else 0.0,
                        )
                    )
                    if on_sample is not None:
                        on_sample(samples[-1])
                    last_t, last_done, last_hist = now, done, hist
                    next_at += params.sample_every_s
                if finished or (settle_deadline is not None and now > settle_deadline):
                    break
                await asyncio.sleep(min(1.0, max(0.05, next_at - time.monotonic())))
            if prod_task.done() and prod_task.exception() is not None:
                raise prod_task.exception()  # type: ignore[misc]
        finally:
            if prod_task is not None and not prod_task.done():
                prod_task.cancel()
                await asyncio.gather(prod_task, return_exceptions=True)
            await fleet.stop()
            try:
                await asyncio.shield(delete_prefix(redis, prefix))
            finally:
                await redis.aclose()
    return SoakReport(
        params=params,
        samples=tuple(samples),
        dead=dead,
        failed=failed,
        redis=mask_url(redis_url),
        cores=os.cpu_count() or 0,
        load_start=load_start,
        load_end=_load(),
    )
