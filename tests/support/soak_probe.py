"""The soak of tests/test_soak_memory.py, in a process of its own: the heap it measures is
then the worker's alone, not whatever earlier tests of the same pytest process left running.

Run as `python -m tests.support.soak_probe REDIS_URL PREFIX`; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import gc
import linecache
import os
import re
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
MEASURED_TASKS = int(os.environ.get("SPOOL_SOAK_MEASURED", "10000"))
GROWTH_BOUND_BYTES = 512 * 1024
#: The metrics clock runs this much faster than real time: its 300-slot rings turn in 1 s.
CLOCK_SPEED = 300.0
#: The traced stretch before the baseline outlasts one turn of the rings (1.2 s at 5,000/s),
#: so every slot in use at the baseline was allocated under tracing: a slot reused after it
#: is then no growth. (Shorter, the untraced warm-up's slots refilled under tracing and
#: counted as +300-700 KiB on a loaded machine.)
SETTLE_TASKS = 6_000


async def measure(redis_url: str, prefix: str) -> dict[str, object]:
    """Run the soak; return dead tasks, heap growth (bytes) and its five largest lines."""
    redis = await open_redis(redis_url)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    t0 = time.monotonic()
    recorder = MetricsRecorder("soak", clock=lambda: t0 + (time.monotonic() - t0) * CLOCK_SPEED)
    pool = WorkerPool(
        broker, PoolSettings(queues=("soak",), concurrency=16), recorder=recorder, worker_id="soak"
    )
    await pool.start()

    async def offer(n: int) -> None:
        """Offer `n` more at 5,000/s and wait until every task offered so far succeeded."""
        goal = pool.counts["succeeded"] + n
        await OpenLoopProducer(broker, "soak", "spool.noop", [], rate=5000, total=n).run()
        await wait_for(lambda: pool.counts["succeeded"] >= goal, 180, f"{goal:,} tasks")

    try:
        await offer(WARMUP_TASKS)
        assert recorder.snapshot().uptime_s > 300  # the windows are full from here on
        tracemalloc.start(1)
        try:
            # Trace a first stretch before the baseline, so every ring slot reused after it
            # was allocated under tracing too: the difference is then net growth. Both
            # snapshots are taken with nothing in flight: results waiting to be written
            # (up to ~500 KiB under load) or a stats snapshot being published would otherwise
            # count as growth or shrinkage.
            await offer(SETTLE_TASKS)
            await between_publishes(pool)
            gc.collect()
            before = tracemalloc.take_snapshot()
            await offer(MEASURED_TASKS)
            await between_publishes(pool)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    finally:
        await pool.stop(grace_s=2.0)
        await redis.aclose()
    diff = after.compare_to(before, "lineno")
    rest = [d for d in diff if not _bucket_growth(d)]
    return {
        "dead": pool.counts["dead"],
        "grown": sum(d.size_diff for d in rest),
        "buckets": sum(d.size_diff for d in diff) - sum(d.size_diff for d in rest),
        "top": [str(d) for d in rest[:5]],
    }


async def between_publishes(pool: WorkerPool) -> None:
    """Return just after the pool's stats publisher finished a publish. It then sleeps for its
    interval, so the snapshot it builds and sends (~450 KiB with its encoding at this load)
    is not alive while the heap is measured: caught mid-publish, it counted as growth (CI,
    Redis 7 pass: +656 KiB, all of it snapshot.py and recorder.py's snapshot lines)."""
    done = pool.publisher.published
    await wait_for(lambda: pool.publisher.published > done, 10, "a stats publish")


def _bucket_growth(stat: tracemalloc.StatisticDiff) -> bool:
    """Whether `stat` is a histogram's bucket dict taking a new bucket (`b[i] = … + n`).

    Those dicts widen as the latency tail wanders, up to `MAX_INDEX` buckets each (bounded,
    and flat in the 30-minute soaks); on a loaded machine the tail wanders far, +200-500 KiB
    in the measured stretch, which would drown the per-task growth this probe looks for.
    """
    frame = stat.traceback[0]
    line = linecache.getline(frame.filename, frame.lineno)
    return "/engine/metrics/" in frame.filename and _BUCKET_WRITE.match(line) is not None


_BUCKET_WRITE = re.compile(r"\s*b\[\w+\] = (b\.)?get\(\w+, 0\) \+ ")


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(measure(sys.argv[1], sys.argv[2]))).decode())
