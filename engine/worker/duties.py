"""Periodic duties: background jobs a pool runs every few seconds, each in its own loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.connection import raise_if_cancelling
from engine.worker.health import REDIS_DOWN, RedisHealth

log = logging.getLogger("spool.worker")


@dataclass(frozen=True, slots=True)
class Duty:
    """One job: `run` is awaited every `interval_s` (first at once); `name` appears in logs."""

    name: str
    interval_s: float
    run: Callable[[], Awaitable[None]]


class PeriodicDuties:
    """The pool's periodic duties (heartbeat, lease renewal, reaper, auto-scaler, watchdog…).

    A failing round is logged (or marks Redis down) and the duty runs again next interval:
    one bad round must not end a duty for good. Duties keep running during a drain (leases
    must still be renewed); `stop()` ends them once the drain is over.
    """

    def __init__(self, health: RedisHealth) -> None:
        self.health = health
        self._duties: dict[str, Duty] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._started = False

    def add(self, name: str, interval_s: float, run: Callable[[], Awaitable[None]]) -> None:
        """Register a duty; it starts with the pool, or at once if the pool runs already."""
        if name in self._duties:
            raise ValueError(f"duty {name!r} is registered already")
        self._duties[name] = duty = Duty(name, interval_s, run)
        if self._started:
            self._loops[name] = asyncio.create_task(self._every(duty))

    def names(self) -> list[str]:
        """Registered duties, in order of registration."""
        return list(self._duties)

    def start(self) -> None:
        """Start every registered duty."""
        self._started = True
        for name, duty in self._duties.items():
            if name not in self._loops:
                self._loops[name] = asyncio.create_task(self._every(duty))

    async def cancel(self, name: str) -> None:
        """End one duty now (the auto-scaler, first thing in a drain)."""
        loop = self._loops.pop(name, None)
        if loop is not None:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

    async def stop(self) -> None:
        """End every duty."""
        loops = list(self._loops.values())
        self._loops.clear()
        self._started = False
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    async def _every(self, duty: Duty) -> None:
        while True:
            try:
                await duty.run()
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                self.health.mark_down(exc)
            except Exception:
                log.exception("%s failed; will try again", duty.name)
            raise_if_cancelling()
            await asyncio.sleep(duty.interval_s)
