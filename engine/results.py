"""Waiting for a task to end without polling its state.

A waiter registers its interest in the queue's `waiting` hash (`watch` script), which also
returns the position of the queue's `ended` stream. The scripts that end a task (settle, reap,
cancel) append `id, state` to that stream only for ids someone waits on, and drop the
interest. One `XREAD BLOCK` loop per queue (per process) serves every waiter of that queue, so
a thousand concurrent `result()` calls hold one connection, not a thousand.

Why no update is missed: the waiter registers in Redis, then attaches its future here, then
reads the task's state once. An end before that read shows in the state; an end after it is
appended to the stream after the future was attached, so the loop, which reads the stream in
order from a position no later than the waiter's registration, resolves it. A slow backstop
re-reads the state of every waited-on task (`backstop_s`) in case the stream itself was lost
(a server restarted without persistence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from engine import queues as queue_ops
from engine.broker import Broker, _s
from engine.connection import raise_if_cancelling
from engine.task import TaskInfo, TaskState

log = logging.getLogger("spool.results")

ENDED_STATES = frozenset({TaskState.SUCCEEDED, TaskState.DEAD, TaskState.CANCELLED})


@dataclass(slots=True)
class _QueueWatch:
    """The waiters of one queue and the loop reading its `ended` stream."""

    position: str = "0-0"
    futures: dict[str, set[asyncio.Future[None]]] = field(default_factory=dict)
    loop_task: asyncio.Task[None] | None = None


class EndWatcher:
    """Wakes waiters when their task ends (succeeded, dead or cancelled); see the module doc.

    `block_s` bounds one `XREAD BLOCK` (keep it under the client's socket timeout).
    """

    def __init__(self, broker: Broker, *, block_s: float = 1.0, backstop_s: float = 10.0) -> None:
        self.broker = broker
        self.block_ms = max(1, int(block_s * 1000))
        self.backstop_s = backstop_s
        self._queues: dict[str, _QueueWatch] = {}

    async def wait(self, task_id: str, queue: str, timeout: float | None) -> TaskInfo | None:
        """The task's record once it has ended, or None when it is unknown (or its result
        expired). Raises `TimeoutError` when `timeout` seconds pass first."""
        watch = self._queues.get(queue)
        if watch is None:
            watch = self._queues[queue] = _QueueWatch()
        start = await self.broker.watch_end(queue, task_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch.futures.setdefault(task_id, set()).add(future)
        if watch.loop_task is None or watch.loop_task.done():
            watch.position = start
            watch.loop_task = asyncio.create_task(self._read_loop(queue, watch))
        try:
            info = await queue_ops.task_status(self.broker, task_id, queue)
            if info is None or info.state in ENDED_STATES:
                return info
            async with asyncio.timeout(timeout):
                await future
            return await queue_ops.task_status(self.broker, task_id, queue)
        finally:
            waiters = watch.futures.get(task_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del watch.futures[task_id]
                    with contextlib.suppress(RedisError, OSError):
                        await self.broker.unwatch_end(queue, task_id)

    async def close(self) -> None:
        """Stop every loop (waiters still waiting get `CancelledError`)."""
        tasks = [w.loop_task for w in self._queues.values() if w.loop_task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in self._queues.values():
            for futures in watch.futures.values():
                for future in futures:
                    future.cancel()
        self._queues.clear()

    async def _read_loop(self, queue: str, watch: _QueueWatch) -> None:
        key = self.broker.keys(queue).ended
        redis = self.broker.redis
        backstop_at = time.monotonic() + self.backstop_s
        backoff = 0.05
        while watch.futures:
            raise_if_cancelling()
            try:
                reply = await redis.xread({key: watch.position}, count=500, block=self.block_ms)
                backoff = 0.05
            except (RedisError, OSError) as exc:
                log.warning("reading %s failed (%s); retrying", key, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                backstop_at = 0.0  # entries may have been missed meanwhile: check states
                continue
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    watch.position = _s(entry_id)
                    raw = fields.get(b"id", fields.get("id"))
                    if raw is not None:
                        _wake(watch, _s(raw))
            if time.monotonic() >= backstop_at and watch.futures:
                backstop_at = time.monotonic() + self.backstop_s
                await self._backstop(queue, watch)

    async def _backstop(self, queue: str, watch: _QueueWatch) -> None:
        for task_id in list(watch.futures):
            try:
                info = await queue_ops.task_status(self.broker, task_id, queue)
            except (RedisError, OSError):
                return
            if info is None or info.state in ENDED_STATES:
                _wake(watch, task_id)


def _wake(watch: _QueueWatch, task_id: str) -> None:
    for future in watch.futures.get(task_id, ()):
        if not future.done():
            future.set_result(None)
