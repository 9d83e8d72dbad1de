"""Handler for tests/bench/bench_drain.py's latency mode."""

from __future__ import annotations

import time

from engine.task import task


@task(name="bench.stamp")
async def stamp(enqueued_at_s: float) -> float:
    """Returns the wait from the producer's enqueue call to this handler's start (seconds)."""
    return time.time() - enqueued_at_s
