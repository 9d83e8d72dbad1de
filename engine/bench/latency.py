"""`bench --type latency`: how long one task waits from the enqueue call to its handler's start.

The method is the one a user can repeat with any queue: a producer process offers `rate` tasks/s
on an absolute schedule; each task carries `time.time()` read just before its enqueue call; the
worker is a separate `spool-console --no-ui` process whose handler (`spool.stamp`) returns its
own start time minus that stamp. The waits come back as the tasks' results, so they are
measured by the handler itself, not inferred from the broker's stamps.
"""

from __future__ import annotations

import asyncio
import time

from engine import codec
from engine.bench.fleet import Fleet, child_snapshots, rss_mb
from engine.bench.harness import QUEUE, Context, Trial, server_cpu_s
from engine.bench.params import BenchParams
from engine.bench.procedures import RunInfo, make_report
from engine.bench.producer import OpenLoopProducer
from engine.bench.report import BenchReport, StageRow
from engine.metrics.snapshot import merge_snapshots
from engine.queues import queue_stats

#: The name of the stage row holding the handler-measured waits.
STAGE = "start_wait"
_READ_BATCH = 1000


def summarize(waits_ms: list[float]) -> StageRow:
    """p50/p95/p99/max/mean of `waits_ms` (nearest-rank on the sorted values)."""
    if not waits_ms:
        return StageRow(STAGE, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(waits_ms)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 4)

    mean = round(sum(ordered) / len(ordered), 4)
    return StageRow(STAGE, len(ordered), pct(50), pct(95), pct(99), round(ordered[-1], 4), mean)


async def _read_waits(ctx: Context, ids: list[str]) -> list[float]:
    keys = ctx.broker.keys(QUEUE)
    waits: list[float] = []
    for start in range(0, len(ids), _READ_BATCH):
        chunk = ids[start : start + _READ_BATCH]
        raws = await ctx.broker.redis.mget([keys.result(i) for i in chunk])
        for raw in raws:
            if raw is not None:
                value = codec.loads(raw).get("result")
                if isinstance(value, int | float):
                    waits.append(float(value))
    return waits


async def run_latency(ctx: Context, info: RunInfo, params: BenchParams) -> BenchReport:
    """One producer here, `processes` worker processes, waits measured by the handler."""
    broker = ctx.broker
    fleet = Fleet(ctx.redis_url, ctx.prefix, QUEUE, ctx.log_dir)
    producer = OpenLoopProducer(
        broker,
        QUEUE,
        "spool.stamp",
        [],
        rate=params.rate or 500.0,
        total=params.offered,
        tick_s=params.tick_s,
        batch_max=params.batch_max,
        stamp=True,
    )
    try:
        fleet.spawn(params.processes, params.workers, params.min_workers, params.max_workers)
        await fleet.wait_registered(broker.redis, broker.globals.workers, params.processes, 60.0)
        await asyncio.sleep(0.5)  # let the workers reach their idle wait: the state measured
        cpu0 = await server_cpu_s(broker)
        t0 = time.monotonic()
        runner = asyncio.create_task(producer.run())
        deadline: float | None = None
        while True:
            ctx.emit("latency offer", producer.sent, params.offered)
            if runner.done():
                runner.result()  # an enqueue error ends the run with that error
                stats = await queue_stats(broker, QUEUE)
                if stats.pending + stats.active + stats.scheduled == 0:
                    break
                deadline = deadline or time.monotonic() + params.settle_timeout_s
                if time.monotonic() > deadline or ctx.cancelled:
                    break
            elif ctx.cancelled:
                runner.cancel()
                break
            await asyncio.sleep(0.05)
        duration = time.monotonic() - t0
        cpu_s = await server_cpu_s(broker) - cpu0
        rss = rss_mb(fleet.pids)
        waits = await _read_waits(ctx, producer.ids)
    finally:
        await fleet.stop()
    snap = merge_snapshots(await child_snapshots(broker.redis, ctx.prefix, ""))
    trial = Trial(
        offered=params.offered,
        completed=snap.counter("succeeded"),
        failed=snap.counter("failed"),
        dead=snap.counter("dead"),
        duration_s=duration,
        snapshot=snap,
        timed_out=len(waits) < params.offered and not ctx.cancelled,
        producer=producer,
        redis_cpu_s=cpu_s,
        rss_peak_mb=rss,
    )
    report = make_report(info, params, trial, params.workers)
    note = (
        f"{STAGE}: the handler's start minus time.time() read just before the enqueue call"
        f" ({len(waits)} tasks; producer here, {params.processes} worker process(es) apart)"
    )
    return BenchReport(
        **{
            **{name: getattr(report, name) for name in report.__dataclass_fields__},
            "task": "spool.stamp",
            "stages": (summarize(waits), *report.stages),
            "notes": (*report.notes, note),
        }
    )
