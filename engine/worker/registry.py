"""The fleet: every worker process heartbeats a record into Redis; stale ones disappear."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from engine import codec
from engine.broker import Broker
from engine.keys import GlobalKeys


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One live worker process as the fleet sees it."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    in_flight: int
    processed: int
    failed: int
    started_at_s: float
    last_seen_s: float
    version: str
    min_concurrency: int = 0
    max_concurrency: int = 0
    pinned: bool = False
    tasks: tuple[str, ...] = ()  # the task names this process has handlers for

    @property
    def uptime_s(self) -> float:
        """Seconds since the process started (by its own clock)."""
        return max(0.0, self.last_seen_s - self.started_at_s)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out = asdict(self)
        out["queues"] = list(self.queues)
        out["tasks"] = list(self.tasks)
        return out


# A record not refreshed for this long belongs to a process that is gone (SIGKILL, lost host):
# readers leave it out, and the next heartbeat of any worker deletes it.
STALE_AFTER_S = 15.0


async def heartbeat(
    broker: Broker, record: WorkerRecord, stale_after_s: float = STALE_AFTER_S
) -> int:
    """Write (or refresh) this process's record and drop the fleet's stale ones (the pruning
    is the heartbeat's job, so that reading the fleet never writes). Returns how many went."""
    return await broker.heartbeat(
        record.id,
        codec.dumps(record.to_dict()),
        seen_s=record.last_seen_s,
        stale_before_s=record.last_seen_s - stale_after_s,
        keep_s=stale_after_s,
    )


async def deregister(broker: Broker, worker_id: str) -> None:
    """Remove this process's record (graceful exit)."""
    await broker.deregister(worker_id)


async def list_workers(
    redis: Redis, prefix: str, stale_after_s: float = STALE_AFTER_S, now_s: float | None = None
) -> list[WorkerRecord]:
    """Live worker processes, sorted by host and pid. Records older than `stale_after_s` or
    unreadable are left out, not deleted: a reader never writes (`--read-only`); the workers'
    heartbeats delete them (`heartbeat`)."""
    keys = GlobalKeys(prefix)
    now_s = time.time() if now_s is None else now_s
    raw = await redis.hgetall(keys.workers)
    live: list[WorkerRecord] = []
    for blob in raw.values():
        try:
            doc = codec.loads(blob)
            doc["queues"] = tuple(doc.get("queues", ()))
            doc["tasks"] = tuple(doc.get("tasks", ()))
            record = WorkerRecord(**doc)
        except (ValueError, TypeError):
            continue
        if now_s - record.last_seen_s <= stale_after_s:
            live.append(record)
    live.sort(key=lambda r: (r.host, r.pid, r.id))
    return live
