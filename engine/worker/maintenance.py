"""Reaper and scheduler duties, run by every process; a short lock keeps them from doubling."""

from __future__ import annotations

import logging
import os

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
