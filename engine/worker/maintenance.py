"""Reaper and scheduler duties, run by every process; a short lock keeps them from doubling."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from engine.broker import Broker, ReapResult

log = logging.getLogger("spool.maintenance")


async def reap_if_leader(broker: Broker, queue: str, lock_ms: int) -> ReapResult | None:
    """Reap `queue` if this process wins the short lock for this round, else None.

    The lock only avoids duplicate work: reaping is atomic and safe to run concurrently.
    """
    lock = broker.globals.lock("reaper", queue)
    if not await broker.redis.set(lock, os.urandom(4).hex(), nx=True, px=lock_ms):
        return None
    result = await broker.reap(queue)
    if result.requeued or result.dead or result.orphans or result.evicted:
        log.info(
            "reaper %s: %d lease(s) expired back to pending, %d dead (%d crash loops), "
            "%d orphan(s) dropped, %d dead letter(s) evicted",
            queue,
            result.requeued,
            result.dead,
            result.crash_looped,
            result.orphans,
            result.evicted,
        )
    return result


async def repair_if_leader(broker: Broker, queue: str, lock_ms: int) -> int | None:
    """Run the (slow, rare) orphan repair on `queue` if this process wins its lock."""
    lock = broker.globals.lock("repair", queue)
    if not await broker.redis.set(lock, b"1", nx=True, px=lock_ms):
        return None
    fixed = await broker.repair(queue)
    if fixed:
        log.warning("repair %s: %d orphaned task(s) put back on pending", queue, fixed)
    return fixed


class MaintenanceDuty:
    """The reaper every `interval_s` and the repair pass every `repair_every_s`, per queue."""

    def __init__(
        self,
        broker: Broker,
        queues: tuple[str, ...],
        *,
        interval_s: float | None,
        repair_every_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.broker = broker
        self.queues = queues
        self.interval_s = interval_s or min(1.0, broker.config.lease_s / 2)
        self.repair_every_s = repair_every_s
        self._clock = clock
        self._lock_ms = max(1, int(self.interval_s * 1000 * 0.9))
        self._last_repair: float | None = None  # the first repair is due one period after start

    async def run_once(self) -> None:
        """One round: reap every queue; repair them too when a repair is due."""
        if self._last_repair is None:
            self._last_repair = self._clock()
        for queue in self.queues:
            await reap_if_leader(self.broker, queue, self._lock_ms)
        if self._clock() - self._last_repair >= self.repair_every_s:
            self._last_repair = self._clock()
            for queue in self.queues:
                await repair_if_leader(self.broker, queue, int(self.repair_every_s * 900))
