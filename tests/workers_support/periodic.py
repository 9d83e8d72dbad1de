"""A periodic handler for process tests (`--tasks tests.workers_support.periodic`)."""

from __future__ import annotations

import os

from redis.asyncio import Redis

from engine.task import TaskContext, task

_redis: Redis | None = None


@task(name="wp.tick", every=1)
async def tick(ctx: TaskContext) -> None:
    """HINCRBY <WS_TICKS_KEY> <task id>: one field per tick, a value above 1 is a double run."""
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["WS_REDIS_URL"])
    await _redis.hincrby(os.environ["WS_TICKS_KEY"], ctx.id, 1)
