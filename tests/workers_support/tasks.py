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
