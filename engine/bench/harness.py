"""One benchmark trial: start the pool(s), offer tasks, wait until all settle, collect numbers.

Every trial starts from an empty prefix and a fresh `MetricsRecorder`, so one trial's samples
never leak into the next. The queue is paused while pools start and tasks are preloaded, and
resumed at t0: the clock then measures work only, not process start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import flow
from engine.bench.fleet import Fleet, child_snapshots, delete_prefix, rss_mb
from engine.bench.params import BenchParams, parse_task
from engine.bench.producer import OpenLoopProducer, preload
from engine.bench.progress import BenchProgress
from engine.bench.report import DecisionRow, SeriesPoint
from engine.broker import Broker
from engine.limits import FlowLimits, parse_rate
from engine.metrics.histogram import LogHistogram
from engine.metrics.recorder import MetricsRecorder
from engine.metrics.snapshot import MetricsSnapshot, merge_snapshots
from engine.queues import pause, queue_stats, resume
from engine.worker.pool import PoolSettings, WorkerPool, make_worker_id

QUEUE = "bench"
PROGRESS_EVERY_S = 0.2


@dataclass
class Context:
    """What every trial of one run shares."""

    broker: Broker
    redis_url: str
    prefix: str
    log_dir: Path
    progress: Callable[[BenchProgress], None] | None
    cancel: asyncio.Event | None
    run_started: float = field(default_factory=time.monotonic)

    def emit(self, phase: str, done: int, total: int, tput: float = 0.0, p99: float = 0.0) -> None:
        """Send a progress sample to the caller, if it asked for them."""
        if self.progress is not None:
            elapsed = time.monotonic() - self.run_started
            self.progress(BenchProgress(phase, done, total, elapsed, tput, p99))

    @property
    def cancelled(self) -> bool:
        """True once the caller asked the run to stop."""
        return self.cancel is not None and self.cancel.is_set()


@dataclass
class Trial:
    """The outcome of one trial."""

    offered: int
    completed: int
    failed: int
    dead: int
    duration_s: float
    snapshot: MetricsSnapshot
    timed_out: bool
    producer: OpenLoopProducer | None = None
    series: list[SeriesPoint] = field(default_factory=list)
    decisions: list[DecisionRow] = field(default_factory=list)
    rss_peak_mb: float = 0.0
    backlog_low_left: int | None = None
    #: Server CPU seconds (INFO cpu) from before the first enqueue to the last settle.
    redis_cpu_s: float | None = None

    @property
    def redis_cpu_us_per_task(self) -> float | None:
        """Server CPU per settled task, in µs (None when unmeasured or nothing settled)."""
        if self.redis_cpu_s is None or not self.completed:
            return None
        return self.redis_cpu_s / self.completed * 1e6

    @property
    def throughput(self) -> float:
        """Settled tasks per second of work time."""
        return self.completed / self.duration_s if self.duration_s > 0 else 0.0


def _e2e_hist(snap: MetricsSnapshot) -> LogHistogram:
    for s in snap.stages:
        if s.stage == "end_to_end" and s.window_s == 0:
            return LogHistogram.from_dict(s.histogram)
    return LogHistogram()


async def server_cpu_s(broker: Broker) -> float:
    """CPU seconds the server has used so far (user + sys, from INFO cpu)."""
    info = await broker.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run_trial(
    ctx: Context,
    params: BenchParams,
    *,
    concurrency: int | None,
    processes: int,
    label: str,
    around: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> Trial:
    """Run one measured trial of `params` at `concurrency` (None: auto-scaler) per process."""
    broker = ctx.broker
    name, args = parse_task(params.task)
    low_name, low_args = parse_task(params.backlog_task)
    offered = params.offered
    target = offered + params.backlog_low
    recorder = MetricsRecorder(make_worker_id())  # fresh per trial: stages start empty
    pool = WorkerPool(
        broker,
        PoolSettings(
            queues=(QUEUE,),
            concurrency=concurrency,
            min_concurrency=params.min_workers,
            max_concurrency=params.max_workers,
            grace_s=5.0,
        ),
        recorder=recorder,
        worker_id=recorder.worker_id,
    )
    fleet = Fleet(ctx.redis_url, ctx.prefix, QUEUE, ctx.log_dir)
    producer: OpenLoopProducer | None = None
    prod_task: asyncio.Task[None] | None = None
    trial = None
    try:
        await pause(broker, QUEUE)
        fleet.spawn(processes - 1, concurrency, params.min_workers, params.max_workers)
        await pool.start()
        ctx.emit(f"{label} start", 0, target)
        await fleet.wait_registered(broker.redis, broker.globals.workers, processes, 60.0)
        if params.rate_limit or params.concurrency_limit:
            # After every process started: each publishes its own (unlimited) declarations.
            limits = FlowLimits(
                rate=parse_rate(params.rate_limit) if params.rate_limit else None,
                concurrency=params.concurrency_limit,
            )
            await flow.set_limits(broker, QUEUE, name, limits)
        cpu0 = await server_cpu_s(broker)
        if params.backlog_low:
            ctx.emit(f"{label} backlog", 0, target)
            await preload(broker, QUEUE, low_name, low_args, params.backlog_low, priority="low")
        if params.mode == "drain":
            ctx.emit(f"{label} preload", 0, target)
            await preload(
                broker,
                QUEUE,
                name,
                args,
                offered,
                priority=params.priority,
                recorder=recorder,
                batch=params.batch_max * 2,
            )
        else:
            producer = OpenLoopProducer(
                broker,
                QUEUE,
                name,
                args,
                rate=params.rate or 1.0,
                total=offered,
                priority=params.priority,
                tick_s=params.tick_s,
                batch_max=params.batch_max,
                recorder=recorder,
            )
        with around() if around is not None else contextlib.nullcontext():
            t0, wall0 = time.monotonic(), time.time()
            await resume(broker, QUEUE)
            if processes > 1:  # one wake token per blocked fetcher, so none idles for a second
                await broker.redis.lpush(broker.keys(QUEUE).wake, *[b"1"] * (processes * 2))
            if producer is not None:
                prod_task = asyncio.create_task(producer.run())
            trial = await _wait_settled(ctx, params, pool, fleet, producer, target, t0, label)
        trial.redis_cpu_s = await server_cpu_s(broker) - cpu0
        trial.producer = producer
        trial.decisions = [
            DecisionRow(round(d.at_s - wall0, 3), d.old, d.new, d.reason)
            for d in pool.scaler.decisions
            if d.at_s >= wall0 - 0.001
        ]
    finally:
        if prod_task is not None and not prod_task.done():
            prod_task.cancel()
            await asyncio.gather(prod_task, return_exceptions=True)
        await pool.stop(grace_s=5.0)
        await fleet.stop()
    local = recorder.snapshot()
    others = await child_snapshots(broker.redis, ctx.prefix, recorder.worker_id)
    merged = merge_snapshots([local, *others])
    trial.snapshot = merged
    trial.completed = merged.counter("succeeded")
    trial.failed = merged.counter("failed")
    trial.dead = merged.counter("dead")
    await delete_prefix(broker.redis, ctx.prefix)
    return trial


async def _wait_settled(
    ctx: Context,
    params: BenchParams,
    pool: WorkerPool,
    fleet: Fleet,
    producer: OpenLoopProducer | None,
    target: int,
    t0: float,
    label: str,
) -> Trial:
    """Poll until every offered task settled (or timeout/cancel); sample progress meanwhile."""
    single = not fleet.procs
    counts = pool.counts
    keys = ctx.broker.keys(QUEUE)
    series: list[SeriesPoint] = []
    rss_peak = rss_mb(fleet.pids)
    next_progress = t0
    next_sample = t0 + params.sample_every_s
    last_s = (t0, 0, _e2e_hist(pool.recorder.snapshot()))
    last_p = (t0, 0)
    p99_now = 0.0
    deadline: float | None = None
    low_left: int | None = None
    # Cheap local counters are polled every millisecond so a 50 ms drain is timed to ~2%;
    # with children, Redis (one pipelined round trip) is asked every 5 ms instead.
    poll_s = 0.001 if single else 0.005
    done = 0
    while True:
        now = time.monotonic()
        producing = producer is not None and producer.sent < producer.total
        if single:
            done = counts["succeeded"] + counts["dead"]
            settled = done >= target
        else:
            st = await queue_stats(ctx.broker, QUEUE)
            left = st.pending + st.active + st.scheduled
            done = target - left - (producer.total - producer.sent if producer else 0)
            settled = left == 0 and not producing
        if producer is not None and not producing and low_left is None:
            low_left = int(await ctx.broker.redis.llen(keys.pending["low"]))
        if settled or ctx.cancelled:
            break
        if deadline is None and not producing:
            deadline = now + params.settle_timeout_s
        if deadline is not None and now > deadline:
            break
        if now >= next_progress:
            # Counters every tick; a recorder snapshot (which folds every buffered sample, a
            # few ms of loop time at 5,000 tasks/s) only once a sample interval, like the
            # pool's own publisher, so watching the run does not change what it measures.
            next_progress = now + PROGRESS_EVERY_S
            if now >= next_sample:
                next_sample = now + params.sample_every_s
                hist = _e2e_hist(pool.recorder.snapshot())
                tput, p99_now = _interval(last_s, now, done, hist)
                last_s = (now, done, hist)
                rss = rss_mb(fleet.pids)
                rss_peak = max(rss_peak, rss)
                depth = (await queue_stats(ctx.broker, QUEUE)).pending
                series.append(
                    SeriesPoint(
                        round(now - t0, 2),
                        max(0, done),
                        round(tput, 1),
                        round(p99_now, 3),
                        pool.target,
                        round(rss, 1),
                        int(depth),
                    )
                )
            t_prev, done_prev = last_p
            tput_now = (done - done_prev) / (now - t_prev) if now > t_prev else 0.0
            last_p = (now, done)
            phase = f"{label} {'offer' if producing else 'drain'}"
            ctx.emit(phase, max(0, done), target, tput_now, p99_now)
        await asyncio.sleep(poll_s)
    end = time.monotonic()
    rss_peak = max(rss_peak, rss_mb(fleet.pids))
    timed_out = not settled and not ctx.cancelled
    return Trial(
        offered=target,
        completed=0,
        failed=0,
        dead=0,
        duration_s=end - t0,
        snapshot=pool.recorder.snapshot(),
        timed_out=timed_out,
        series=series,
        rss_peak_mb=rss_peak,
        backlog_low_left=low_left if params.backlog_low else None,
    )


def _interval(
    last: tuple[float, int, LogHistogram], now: float, done: int, hist: LogHistogram
) -> tuple[float, float]:
    """Throughput and end-to-end p99 (ms) since the sample `last`."""
    t, n, prev = last
    rate = (done - n) / (now - t) if now > t else 0.0
    delta = hist.copy().subtract(prev)
    p99 = delta.percentile(99.0) / 1000 if delta.count else 0.0
    return rate, p99
