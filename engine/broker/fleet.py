"""Broker calls on the fleet's worker records: a process's heartbeat and its exit."""

from __future__ import annotations

from engine.broker.core import BrokerCore


class FleetCalls(BrokerCore):
    """The only writes to the workers hash; reading the fleet (`engine.worker.registry`) never
    writes, so a `--read-only` console, diagnosis and `GET /v1/workers` leave it alone."""

    async def heartbeat(
        self, worker_id: str, record: bytes, stale_before_s: float, keep_s: float
    ) -> int:
        """Write (or refresh) this process's record, drop the records last seen before
        `stale_before_s` (epoch seconds) or unreadable, and keep the hash `keep_s` past this
        heartbeat. Returns how many records were dropped."""
        argv: list[object] = [worker_id, record, stale_before_s, int(keep_s * 1000)]
        return int(await self.scripts.run_global("fleet_heartbeat", [self.globals.workers], argv))

    async def deregister(self, worker_id: str) -> None:
        """Remove this process's record (graceful exit)."""
        await self.redis.hdel(self.globals.workers, worker_id)
