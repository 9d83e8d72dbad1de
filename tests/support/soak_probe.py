"""The soak of tests/test_soak_memory.py, in a process of its own: the heap it measures is
then the worker's alone, not whatever earlier tests of the same pytest process left running.

Run as `python -m tests.support.soak_probe REDIS_URL PREFIX`; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import tracemalloc

import orjson

from engine.bench.producer import OpenLoopProducer
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
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


async def measure(redis_url: str, prefix: str) -> dict[str, object]:
    """Run the soak; return dead tasks, heap growth (bytes) and its five largest lines."""
    redis = await open_redis(redis_url)
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
        await redis.aclose()
    diff = after.compare_to(before, "lineno")
    return {
        "dead": pool.counts["dead"],
        "grown": sum(d.size_diff for d in diff),
        "top": [str(d) for d in diff[:5]],
    }


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(measure(sys.argv[1], sys.argv[2]))).decode())
