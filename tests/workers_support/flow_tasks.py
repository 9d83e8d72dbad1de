"""Handlers with fleet-wide limits for the flow tests (`--tasks tests.workers_support.flow_tasks`).

Each records itself in Redis (key names passed as arguments) so the test can check the limit
from outside every process: start times, and how many ran at once.
"""

from __future__ import annotations

import asyncio
import time

from engine.task import TaskContext, task
from tests.workers_support.tasks import _client


@task(name="wf.rated", rate_limit="50/s")
async def rated(log_key: str) -> None:
    """Appends its start time (epoch seconds) to `log_key`."""
    await _client().rpush(log_key, repr(time.time()))


@task(name="wf.free")
async def free(count_key: str) -> None:
    """Counts itself: unlimited work on the same queue."""
    await _client().incr(count_key)


async def _hold(counter: str, seen: str, ms: float) -> None:
    r = _client()
    now = await r.incr(counter)
    await r.rpush(seen, now)  # how many ran at once, as this one started
    try:
        await asyncio.sleep(ms / 1000)
    finally:
        await r.decr(counter)


@task(name="wf.conc", concurrency=3)
async def conc(counter: str, seen: str, ms: float, ctx: TaskContext) -> None:
    """At most 3 at once across the fleet. A first attempt of more than a second counts itself
    apart: the test kills its process, which never counts it down."""
    if ctx.attempt == 1 and ms > 1000:
        await _hold(f"{counter}:first", f"{seen}:first", ms)
    else:
        await _hold(counter, seen, min(ms, 30))


@task(name="wf.per_key", concurrency=1, concurrency_key="account")
async def per_key(account: str, seen: str, ms: float) -> None:
    """One at a time per account."""
    await _hold(f"{seen}:running:{account}", f"{seen}:{account}", ms)


@task(name="wf.weighted")
async def weighted(log_key: str, label: str, ms: float) -> None:
    """Sleeps `ms`, then appends `label` (its queue, its level) to `log_key`: shares, order."""
    await asyncio.sleep(ms / 1000)
    await _client().rpush(log_key, label)
