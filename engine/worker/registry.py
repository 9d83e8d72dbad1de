"""The fleet: every worker process heartbeats a record into Redis; stale ones disappear."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from engine import codec
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


async def heartbeat(redis: Redis, keys: GlobalKeys, record: WorkerRecord) -> None:
    """Write (or refresh) this process's record."""
    await redis.hset(keys.workers, record.id, codec.dumps(record.to_dict()))


async def deregister(redis: Redis, keys: GlobalKeys, worker_id: str) -> None:
    """Remove this process's record (graceful exit)."""
    await redis.hdel(keys.workers, worker_id)


async def list_workers(
    redis: Redis, prefix: str, stale_after_s: float = 15.0, now_s: float | None = None
) -> list[WorkerRecord]:
    """Live worker processes, sorted by host and pid; records older than `stale_after_s`
    are dropped from Redis as they are found (a SIGKILLed process leaves one behind)."""
    keys = GlobalKeys(prefix)
    now_s = time.time() if now_s is None else now_s
    raw = await redis.hgetall(keys.workers)
    live: list[WorkerRecord] = []
    stale: list[bytes | str] = []
    for worker_id, blob in raw.items():
        try:
            doc = codec.loads(blob)
            doc["queues"] = tuple(doc.get("queues", ()))
            doc["tasks"] = tuple(doc.get("tasks", ()))
            record = WorkerRecord(**doc)
        except (ValueError, TypeError):
            stale.append(worker_id)
            continue
        if now_s - record.last_seen_s > stale_after_s:
            stale.append(worker_id)
        else:
            live.append(record)
    if stale:
        await redis.hdel(keys.workers, *stale)
    live.sort(key=lambda r: (r.host, r.pid, r.id))
    return live
