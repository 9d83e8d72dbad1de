"""Handlers for subprocess tests (`--tasks tests.workers_support.tasks`).

They register into the default registry, as a user's task module would.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from engine.task import TaskContext, task

_redis: Any = None


def _client() -> Any:
    """One client per process, on the URL the test put in `WS_REDIS_URL`."""
    global _redis
    if _redis is None:
        from redis.asyncio import Redis

        _redis = Redis.from_url(os.environ["WS_REDIS_URL"], max_connections=64)
    return _redis


@task(name="ws.crash", max_retries=10)
async def crash(delay_ms: float = 0.0) -> None:
    """Hard-kills the whole process (no cleanup, no settle): a segfault stand-in."""
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    os._exit(1)


@task(name="ws.slow_first")
async def slow_first(ms: float, ctx: TaskContext) -> int:
    """Sleeps `ms` on its first delivery only; later deliveries return at once."""
    if ctx.attempt == 1:
        await asyncio.sleep(ms / 1000)
    return ctx.attempt


@task(name="ws.sleep")
async def sleep(ms: float) -> float:
    """Sleeps `ms` milliseconds on every delivery."""
    await asyncio.sleep(ms / 1000)
    return ms


@task(name="ws.count")
async def count(key: str, ctx: TaskContext) -> int:
    """HINCRBY key <task id>: a value above 1 means the task ran twice."""
    return int(await _client().hincrby(key, ctx.id, 1))


@task(name="ws.until_cancelled")
async def until_cancelled(key: str, ctx: TaskContext) -> str:
    """Sleeps (up to a minute); records in HSET key <id> "cancelled" when stopped."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await _client().hset(key, ctx.id, "cancelled")
        raise
    return "finished"


@task(name="ws.sync_until_cancelled")
def sync_until_cancelled(key: str, ctx: TaskContext) -> str:
    """A thread that polls `ctx.cancelled` (up to a minute) and records what it saw."""
    import time

    from redis import Redis as SyncRedis

    deadline = time.monotonic() + 60
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    SyncRedis.from_url(os.environ["WS_REDIS_URL"]).hset(key, ctx.id, str(ctx.cancelled))
    return "returned"


@task(name="ws.resize")
async def resize(path: str) -> str:
    """Stands for a user's task that only some workers have."""
    await asyncio.sleep(0.001)
    return path
