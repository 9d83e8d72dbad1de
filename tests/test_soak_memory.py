"""A short soak: the worker's Python heap must not grow once the metric windows are full.

Issue 15's regression guard. One in-process pool runs no-ops offered at 5,000/s; its metrics
recorder runs on a clock 150x faster than real time, so the 300 s windows are full after the
first couple of seconds, as they are after minute 6 of a real soak. tracemalloc then traces
the rest of the run, and the heap is compared between two later points.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc

from engine.bench.producer import OpenLoopProducer
from engine.broker import Broker
from engine.config import EngineConfig
from engine.metrics.recorder import MetricsRecorder
from engine.worker.pool import PoolSettings, WorkerPool
from tests.support.polling import wait_for

#: Untraced warm-up, a traced stretch before the baseline, then the measured tasks. The bound
#: catches a leak of ~50 bytes per measured task.
WARMUP_TASKS = int(os.environ.get("SPOOL_SOAK_WARMUP", "10000"))
SETTLE_TASKS = 4_000
MEASURED_TASKS = int(os.environ.get("SPOOL_SOAK_MEASURED", "10000"))
GROWTH_BOUND_BYTES = 512 * 1024
CLOCK_SPEED = 150.0


async def test_heap_growth_after_the_metric_horizon_is_bounded(redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    t0 = time.monotonic()
    recorder = MetricsRecorder("soak", clock=lambda: t0 + (time.monotonic() - t0) * CLOCK_SPEED)
    pool = WorkerPool(
        broker, PoolSettings(queues=("soak",), concurrency=16), recorder=recorder, worker_id="soak"
    )
    mid = WARMUP_TASKS + SETTLE_TASKS
    total = mid + MEASURED_TASKS
    producer = OpenLoopProducer(broker, "soak", "spool.noop", [], rate=5000, total=total)
    await pool.start()
    sending = asyncio.create_task(producer.run())
    try:
        await wait_for(lambda: pool.counts["succeeded"] >= WARMUP_TASKS, 120, "warm-up")
        assert recorder.snapshot().uptime_s > 300  # the windows are full from here on
        tracemalloc.start(1)
        try:
            # Trace a first stretch before the baseline, so every ring slot reused after it
            # was allocated under tracing too: the difference is then net growth.
            await wait_for(lambda: pool.counts["succeeded"] >= mid, 180, "traced warm-up")
            gc.collect()
            before = tracemalloc.take_snapshot()
            await wait_for(lambda: pool.counts["succeeded"] >= total, 180, "traced tasks")
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        await pool.stop(grace_s=2.0)
    assert pool.counts["dead"] == 0
    diff = after.compare_to(before, "lineno")
    grown = sum(d.size_diff for d in diff)
    assert grown < GROWTH_BOUND_BYTES, (
        f"heap grew {grown:,} bytes over {MEASURED_TASKS:,} tasks after the horizon: "
        + "; ".join(str(d) for d in diff[:5])
    )
