"""The tasks this process holds a lease on: renewed while held, given back when not run."""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from engine.broker import Broker
from engine.task import FetchedTask
from engine.worker.health import REDIS_DOWN

log = logging.getLogger("spool.worker")


class Leases:
    """The in-flight set (fetched, not yet settled) and the renewal and release of its leases."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.inflight: dict[str, FetchedTask] = {}
        # Ids whose outcome is being written now: a renewal that fails for them is no loss.
        self.settling: set[str] = set()
        # Told of each held task whose cancel was requested (renewal reports it).
        self.on_cancel_requested: Callable[[str], None] | None = None

    @property
    def renew_every_s(self) -> float:
        """How often leases are renewed: three chances before one expires."""
        return self.broker.config.lease_s / 3

    async def release(self, tasks: list[FetchedTask]) -> None:
        """Give tasks back to pending unrun; if Redis is away their leases expire instead."""
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for t in tasks:
            by_queue.setdefault(t.queue, []).append((t.id, t.token))
            self.inflight.pop(t.id, None)
        for queue, leases in by_queue.items():
            try:
                await self.broker.release(queue, leases)
            except (*REDIS_DOWN, RedisError) as exc:
                # The leases will expire and the reaper brings the tasks back.
                log.warning("could not release %d task(s) of %s: %s", len(leases), queue, exc)

    async def release_all(self) -> int:
        """Give back every task still held (the end of a drain); returns how many."""
        leftovers = list(self.inflight.values())
        await self.release(leftovers)
        return len(leftovers)

    async def renew_once(self) -> None:
        """Extend every held lease by one lease period."""
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for t in list(self.inflight.values()):
            by_queue.setdefault(t.queue, []).append((t.id, t.token))
        for queue, leases in by_queue.items():
            flags = await self.broker.extend(queue, leases)
            if self.on_cancel_requested is not None and 2 in flags:
                for (tid, _), flag in zip(leases, flags, strict=True):
                    if flag == 2:
                        self.on_cancel_requested(tid)
            # A task settled while the renewal was in flight is not a lost lease.
            lost = sum(
                1
                for (tid, _), ok in zip(leases, flags, strict=True)
                if not ok and tid in self.inflight and tid not in self.settling
            )
            if lost:
                log.warning("%d lease(s) of %s were lost (expired or reclaimed)", lost, queue)
