"""Broker calls on the fleet's worker records: a process's heartbeat and its exit."""

from __future__ import annotations

from engine.broker.core import BrokerCore


class FleetCalls(BrokerCore):
    """The only writes to the workers hash; reading the fleet (`engine.worker.registry`) never
    writes, so a `--read-only` console, diagnosis and `GET /v1/workers` leave it alone."""

    async def heartbeat(
        self,
        worker_id: str,
        record: bytes,
        seen_s: float,
        stale_before_s: float,
        keep_s: float,
    ) -> int:
        """Write (or refresh) this process's record, last seen at `seen_s` (epoch seconds, as
        the record says), drop the records last seen before `stale_before_s` or unreadable,
        and keep the fleet's keys `keep_s` past this heartbeat. Returns how many were dropped."""
        argv: list[object] = [
            worker_id,
            record,
            stale_before_s,
            int(keep_s * 1000),
            int(seen_s * 1000),
        ]
        keys = [self.globals.workers, self.globals.workers_seen]
        return int(await self.scripts.run_global("fleet_heartbeat", keys, argv))

    async def deregister(self, worker_id: str) -> None:
        """Remove this process's record (graceful exit)."""
        await self.redis.hdel(self.globals.workers, worker_id)
