"""The pool's local buffer of fetched tasks: highest priority level out first, FIFO within."""

from __future__ import annotations

import asyncio
from collections import deque

from engine.task import FetchedTask


class LocalPriorityQueue:
    """An asyncio queue with one FIFO per priority rank (0 = highest).

    Fetched tasks wait here for a free slot. A plain FIFO would make a high-priority task
    wait behind every low-priority task prefetched before it.
    """

    def __init__(self) -> None:
        self._lanes: list[deque[FetchedTask]] = []
        self._size = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def qsize(self) -> int:
        """Tasks waiting."""
        return self._size

    def empty(self) -> bool:
        """True when no task waits."""
        return self._size == 0

    def put_nowait(self, task: FetchedTask, rank: int = 0) -> None:
        """Add a task at priority `rank` and wake one waiting slot."""
        while len(self._lanes) <= rank:
            self._lanes.append(deque())
        self._lanes[rank].append(task)
        self._size += 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def get_nowait(self) -> FetchedTask:
        """The next task by priority; raises `asyncio.QueueEmpty` when there is none."""
        if not self._size:
            raise asyncio.QueueEmpty
        for lane in self._lanes:
            if lane:
                self._size -= 1
                return lane.popleft()
        raise AssertionError("size and lanes disagree")  # pragma: no cover

    async def get(self) -> FetchedTask:
        """Wait for the next task by priority."""
        while not self._size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Pass a wake-up we may have consumed on to the next waiter.
                if waiter.done() and not waiter.cancelled() and self._size:
                    self._wake_next()
                raise
        return self.get_nowait()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
