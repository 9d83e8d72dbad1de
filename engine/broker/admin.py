"""Operator broker calls: pause, dead-letter requeue/delete/restore, repair, the audit trail."""

from __future__ import annotations

from collections.abc import Sequence

from engine.audit import AUDIT_MAX, AuditEntry
from engine.broker.core import BrokerCore, _s, chunks


class AdminCalls(BrokerCore):
    """Writes an operator asks for, and the record of them."""

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append an operator action to the capped audit stream.

        Its own command, not part of the action's script: the stream is one key for every
        queue, so in a Redis Cluster it lives in another slot than the queue's keys.
        """
        await self.redis.xadd(
            self.globals.audit, entry.fields(), maxlen=AUDIT_MAX, approximate=True
        )

    async def audit_log(self, count: int = 200) -> list[AuditEntry]:
        """The newest `count` operator actions, newest first."""
        rows = await self.redis.xrevrange(self.globals.audit, count=count)
        return [AuditEntry.from_fields(_s(entry_id), fields) for entry_id, fields in rows]

    async def set_paused(self, queue: str, paused: bool) -> bool:
        """Pause (stop handing out tasks; running ones finish, enqueues still land) or resume
        `queue` (idle workers are woken). True if that changed its state."""
        if paused:
            await self.register_queues([queue])
        argv: list[object] = [b"1" if paused else b"0", self.config.wake_tokens_max]
        return bool(await self.scripts.run("set_paused", self.keys(queue), argv))

    async def requeue_dead(self, queue: str, ids: Sequence[str]) -> int:
        """Move these dead letters back to pending, attempts reset. Returns how many moved."""
        moved = 0
        for part in chunks(ids):
            argv: list[object] = [self.config.wake_tokens_max, *part]
            moved += int(await self.scripts.run("requeue", self.keys(queue), argv))
        return moved

    async def delete_dead(self, queue: str, ids: Sequence[str], undo: str = "") -> int:
        """Delete these dead letters; with an `undo` token (`engine.undo`) each is held,
        restorable with it until the token expires, else it is gone for good. Returns how
        many were deleted."""
        deleted = 0
        for part in chunks(ids):
            argv: list[object] = [undo, self.config.deleted_max, *part]
            deleted += int(await self.scripts.run("delete_dead", self.keys(queue), argv))
        return deleted

    async def restore_dead(self, queue: str, undo: str, limit: int) -> tuple[int, int, int]:
        """Move up to `limit` letters held under `undo` back into the dead set, as they were:
        (restored, left deleted because their id is in use again, still held under `undo`)."""
        raw = await self.scripts.run("restore_dead", self.keys(queue), [undo, limit])
        restored, in_use, left = (int(x) for x in raw)
        return restored, in_use, left

    async def repair(self, queue: str, scan_batch: int = 1000) -> int:
        """Put back tasks whose payload exists but that sit in no list or set. Rare and slow."""
        keys = self.keys(queue)
        placed: set[str] = set()
        for level_key in keys.pending_keys:
            placed.update(_s(x) for x in await self.redis.lrange(level_key, 0, -1))
        for zkey in (keys.active, keys.scheduled, keys.dead):
            placed.update(_s(x) for x in await self.redis.zrange(zkey, 0, -1))
        candidates = [
            _s(task_id)
            # Not NOVALUES: HSCAN only has it from Redis 7.4 / Valkey 8, and 7.0 must work.
            async for task_id, _payload in self.redis.hscan_iter(keys.tasks, count=scan_batch)
            if _s(task_id) not in placed
        ]
        fixed = 0
        for start in range(0, len(candidates), 500):
            fixed += int(
                await self.scripts.run(
                    "repair", keys, [self.config.wake_tokens_max, *candidates[start : start + 500]]
                )
            )
        return fixed
