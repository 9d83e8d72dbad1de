"""Coalesce concurrent single-task enqueues into one script call per queue.

Fifty producers posting one task each would cost fifty Redis round trips and fifty passes
through redis-py. Requests parsed in the same event-loop iteration are instead written
together: the first one schedules a flush with `call_soon`, the others join it. Nothing is
held longer than that iteration, and every request still gets its own answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from engine.broker import Broker
from engine.metrics.recorder import MetricsRecorder
from engine.task import TaskSpec

_Item = tuple[TaskSpec, "asyncio.Future[str]"]


class EnqueueCoalescer:
    """Writes single enqueues in batches; see the module docstring."""

    def __init__(
        self,
        broker: Broker,
        recorder: MetricsRecorder,
        *,
        max_batch: int = 500,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.broker = broker
        self.recorder = recorder
        self.max_batch = max_batch
        self._clock = clock
        self._pending: dict[str, list[_Item]] = {}
        self._scheduled = False
        self._writes: set[asyncio.Task[None]] = set()

    def submit(self, spec: TaskSpec) -> asyncio.Future[str]:
        """A future resolved with the task's id once stored, or with the error that stopped it.

        A refused spec (ValueError/TypeError from the engine) fails only its own future.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        items = self._pending.setdefault(spec.queue, [])
        items.append((spec, fut))
        if len(items) >= self.max_batch:
            self._start(spec.queue, self._pending.pop(spec.queue))
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for queue, items in pending.items():
            self._start(queue, items)

    def _start(self, queue: str, items: list[_Item]) -> None:
        task = asyncio.get_running_loop().create_task(self._write(queue, items))
        self._writes.add(task)  # a strong reference until done, or the task may be collected
        task.add_done_callback(self._writes.discard)

    async def _write(self, queue: str, items: list[_Item]) -> None:
        specs = [spec for spec, _ in items]
        t0 = self._clock()
        try:
            ids = await self.broker.enqueue(specs)
        except (ValueError, TypeError) as exc:
            # One bad spec refuses the whole call before any write; retry each on its own so
            # only the bad ones fail (rare: it needs a bad request in the same loop iteration).
            if len(items) == 1:
                _fail(items, exc)
                return
            await asyncio.gather(*(self._write(queue, [item]) for item in items))
            return
        except BaseException as exc:  # Redis down, cancelled: every waiter learns it
            _fail(items, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.recorder.count("enqueued", len(items), queue=queue)
        self.recorder.record_stage("enqueue", self._clock() - t0, queue=queue)
        for (_, fut), task_id in zip(items, ids, strict=True):
            if not fut.done():  # the request may have been cancelled meanwhile
                fut.set_result(task_id)

    async def close(self) -> None:
        """Wait for writes in flight (app shutdown), so no accepted task is lost."""
        if self._scheduled:
            self._flush()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


def _fail(items: list[_Item], exc: BaseException) -> None:
    for _, fut in items:
        if not fut.done():
            fut.set_exception(exc)
