"""Concurrency slots: each takes the next fetched task from the local queue and runs it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from engine.task import FetchedTask
from engine.worker.handler import HandlerRunner
from engine.worker.leases import Leases
from engine.worker.local_queue import LocalPriorityQueue
from engine.worker.scaler import AutoScaler
from engine.worker.settler import Settler
from engine.worker.snapshot import SlotState


class Slots:
    """`scaler.concurrency` slots, each an asyncio task running one task at a time.

    `capacity` is set whenever a slot frees up (the fetcher waits on it when the pool holds
    enough). A redelivered task whose lease expired before (`suspects`) runs alone: its worker
    may have died running it.
    """

    def __init__(
        self,
        local: LocalPriorityQueue,
        runner: HandlerRunner,
        settler: Settler,
        leases: Leases,
        scaler: AutoScaler,
        clock: Callable[[], float],
    ) -> None:
        self.local = local
        self.runner = runner
        self.settler = settler
        self.leases = leases
        self._scaler = scaler
        self._clock = clock
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._state: dict[int, tuple[str, str, float] | None] = {}  # name, id, started
        self.running = 0
        self.capacity = asyncio.Event()
        self.suspects: set[str] = set()
        self.isolating = False
        self.closed = False
        #: Awaited before a suspect runs alone: returns once nothing more can be fetched for
        #: this process behind its back (the fetcher's `quiesce`, set by the pool).
        self.quiesce: Callable[[], Awaitable[None]] | None = None

    def resize(self) -> None:
        """Start the slots missing below the target; extra ones end after their current task."""
        if self.closed:
            return
        for index in range(self._scaler.concurrency):
            slot = self.tasks.get(index)
            if slot is None or slot.done():
                self._state[index] = None
                self.tasks[index] = asyncio.create_task(self._slot_loop(index))
        self.capacity.set()

    def states(self, count: int) -> tuple[SlotState, ...]:
        """What the first `count` slots are doing now."""
        now = self._clock()
        out = []
        for index in range(count):
            state = self._state.get(index)
            if state is None:
                out.append(SlotState(index, None, None, 0.0))
            else:
                out.append(SlotState(index, state[0], state[1], now - state[2]))
        return tuple(out)

    async def enforce_timeouts(self) -> None:
        """The watchdog's tick (a periodic duty)."""
        self.runner.expire(self.tasks)

    def take_waiting(self) -> list[FetchedTask]:
        """Empty the local queue (tasks fetched but not started) and return its tasks."""
        waiting: list[FetchedTask] = []
        while not self.local.empty():
            waiting.append(self.local.get_nowait())
        return waiting

    async def drain(self, grace_s: float) -> None:
        """End every slot: idle ones now, busy ones when their task ends or after `grace_s`."""
        self.closed = True
        slots = list(self.tasks.values())
        if not slots:
            return
        for index, slot in list(self.tasks.items()):
            if self._state.get(index) is None:
                slot.cancel()  # idle: waiting on the local queue
        _, still = await asyncio.wait(slots, timeout=grace_s)
        for slot in still:
            slot.cancel()
        await asyncio.gather(*slots, return_exceptions=True)

    async def _slot_loop(self, index: int) -> None:
        try:
            scaler = self._scaler
            runner = self.runner
            settler = self.settler
            while index < scaler.concurrency and not self.closed:
                try:
                    t = await self.local.get()
                except asyncio.CancelledError:
                    # A watchdog cancel that landed just after its handler returned.
                    if not self.closed and runner.take_timeout(index):
                        continue
                    raise
                self.running += 1
                self._state[index] = (t.name, t.id, self._clock())
                try:
                    if t.id in self.suspects:
                        await self._execute_isolated(t, index)
                    else:
                        settler.add(*await runner.run(t, index))
                finally:
                    self.running -= 1
                    self._state[index] = None
                    self.capacity.set()
        finally:
            self._state.pop(index, None)
            if self.tasks.get(index) is asyncio.current_task():
                del self.tasks[index]

    async def _execute_isolated(self, t: FetchedTask, index: int) -> None:
        """Run a task whose lease expired before (its worker may have died running it) alone.

        If it kills the process again, only its own lease expires: the tasks this process had
        prefetched are given back first and finished outcomes are settled, so the reaper does
        not charge innocent tasks with a crash (and quarantine them as `crash_loop`).
        """
        self.suspects.discard(t.id)
        if self.isolating:
            # Another suspect runs alone right now: this one waits its turn in Redis.
            await self.leases.release([t])
            return
        self.isolating = True
        try:
            if self.quiesce is not None:
                await self.quiesce()
            waiting = self.take_waiting()
            for w in waiting:
                self.suspects.discard(w.id)
            await self.leases.release(waiting)
            while self.running > 1:  # rare path: poll until the other slots are done
                await asyncio.sleep(0.005)
            await self.settler.drain()
            self.settler.add(*await self.runner.run(t, index))
            await self.settler.drain()
        finally:
            self.isolating = False
            self.capacity.set()
