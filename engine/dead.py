"""The dead-letter queue: list with filters and paging, inspect, requeue, delete, group.

Deleted letters can be restored for a while: see `engine.undo`.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from engine import codec
from engine.broker import Broker, _s, enqueued_at_ms
from engine.fingerprint import fingerprint

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters to show. Empty fields match everything.

    `task` is an exact name, `error` a case-insensitive substring of the error, `text` a
    case-insensitive substring of the name or the error, `fingerprint` an exact group.
    """

    queue: str | None = None
    task: str | None = None
    error: str | None = None
    text: str | None = None
    fingerprint: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def describe(self) -> str:
        """A short human description, for confirmations."""
        parts = [
            f"{name}={value!r}"
            for name, value in (
                ("queue", self.queue),
                ("task", self.task),
                ("error", self.error),
                ("text", self.text),
                ("group", self.fingerprint),
            )
            if value
        ]
        return ", ".join(parts) or "everything"


@dataclass(frozen=True, slots=True)
class DeadItem:
    """One dead letter, whole."""

    id: str
    queue: str
    name: str
    priority: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    error: str
    exc_type: str
    traceback: str
    reason: str
    worker: str
    fingerprint: str
    died_at_ms: int
    enqueued_at_ms: int | None

    @property
    def error_line(self) -> str:
        """The first line of the error, for tables."""
        return self.error.strip().splitlines()[0] if self.error.strip() else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class DeadPage:
    """A page of dead letters, newest first; pass `cursor` back for the next page."""

    items: list[DeadItem]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class DeadGroup:
    """Dead letters sharing an error fingerprint."""

    fingerprint: str
    count: int
    first_seen_ms: int
    last_seen_ms: int
    sample_error: str
    tasks: tuple[str, ...] = field(default_factory=tuple)
    queues: tuple[str, ...] = field(default_factory=tuple)


def _matches(item: DeadItem, flt: DeadFilter) -> bool:
    if flt.task and item.name != flt.task:
        return False
    if flt.error and flt.error.lower() not in item.error.lower():
        return False
    if flt.text:
        needle = flt.text.lower()
        if needle not in item.name.lower() and needle not in item.error.lower():
            return False
    return not (flt.fingerprint and item.fingerprint != flt.fingerprint)


def _item(queue: str, task_id: str, score: float, payload: Any, info: Any, ea: Any) -> DeadItem:
    record = codec.loads(info) if info else {}
    p = codec.read_payload(payload or None)
    error = str(record.get("error", ""))
    exc_type = str(record.get("exc_type", "Error"))
    return DeadItem(
        id=task_id,
        queue=queue,
        name=record.get("name", "?") if p.error else p.name,
        priority=p.level,
        args=p.args,
        kwargs=p.kwargs,
        attempts=int(record.get("attempts", 0)),
        error=error,
        exc_type=exc_type,
        traceback=str(record.get("traceback", "")),
        reason=str(record.get("reason", "")),
        worker=str(record.get("worker", "")),
        fingerprint=record.get("fingerprint") or fingerprint(exc_type, error),
        died_at_ms=int(score),
        enqueued_at_ms=enqueued_at_ms(p, ea),
    )


async def _scan(
    broker: Broker, queue: str, flt: DeadFilter, start_rank: int = 0
) -> AsyncIterator[tuple[int, DeadItem]]:
    """Yield (rank, item) of matching dead letters of one queue, newest first."""
    keys = broker.keys(queue)
    hi = "+inf" if flt.until_ms is None else flt.until_ms
    lo = "-inf" if flt.since_ms is None else flt.since_ms
    rank = start_rank
    while True:
        rows = await broker.redis.zrevrangebyscore(
            keys.dead, hi, lo, start=rank, num=_CHUNK, withscores=True
        )
        if not rows:
            return
        ids = [_s(r[0]) for r in rows]
        async with broker.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.tasks, ids)
            pipe.hmget(keys.dead_info, ids)
            pipe.hmget(keys.ea, ids)
            payloads, infos, eas = await pipe.execute()
        for i, (task_id, score) in enumerate(rows):
            item = _item(queue, _s(task_id), score, payloads[i], infos[i], eas[i])
            if _matches(item, flt):
                yield rank + i, item
        rank += len(rows)


async def _queues(broker: Broker, flt: DeadFilter) -> list[str]:
    return [flt.queue] if flt.queue else await broker.known_queues()


def _encode_cursor(ranks: dict[str, int]) -> str:
    return base64.urlsafe_b64encode(codec.dumps(ranks)).decode()


def _decode_cursor(cursor: str | None) -> dict[str, int]:
    if not cursor:
        return {}
    try:
        ranks = codec.loads(base64.urlsafe_b64decode(cursor.encode()))
    except Exception as exc:
        raise ValueError(f"invalid cursor: {exc}") from None
    if not isinstance(ranks, dict) or not all(isinstance(v, int) for v in ranks.values()):
        raise ValueError("invalid cursor")
    return ranks


async def list_dead(
    broker: Broker, flt: DeadFilter | None = None, limit: int = 50, cursor: str | None = None
) -> DeadPage:
    """A page of matching dead letters across the filter's queues, newest first."""
    flt = flt or DeadFilter()
    ranks = _decode_cursor(cursor)
    candidates: list[tuple[int, str, int, DeadItem]] = []
    for queue in await _queues(broker, flt):
        got = 0
        async for rank, item in _scan(broker, queue, flt, ranks.get(queue, 0)):
            candidates.append((item.died_at_ms, queue, rank, item))
            got += 1
            if got > limit:
                break
    candidates.sort(key=lambda c: c[0], reverse=True)
    taken = candidates[:limit]
    if len(candidates) <= limit:
        return DeadPage([c[3] for c in taken], None)
    next_ranks = dict(ranks)
    for _, queue, rank, _ in taken:
        next_ranks[queue] = max(next_ranks.get(queue, 0), rank + 1)
    return DeadPage([c[3] for c in taken], _encode_cursor(next_ranks))


async def get_dead(broker: Broker, queue: str, task_id: str) -> DeadItem | None:
    """One dead letter whole, or None."""
    keys = broker.keys(queue)
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.zscore(keys.dead, task_id)
        pipe.hget(keys.tasks, task_id)
        pipe.hget(keys.dead_info, task_id)
        pipe.hget(keys.ea, task_id)
        score, payload, info, ea = await pipe.execute()
    if score is None:
        return None
    return _item(queue, task_id, score, payload, info, ea)


async def find_dead(broker: Broker, task_id: str) -> DeadItem | None:
    """A dead letter by id alone, searching every known queue."""
    for queue in await broker.known_queues():
        item = await get_dead(broker, queue, task_id)
        if item is not None:
            return item
    return None


async def requeue_dead(broker: Broker, queue: str, ids: list[str]) -> int:
    """Move these dead letters back to pending, attempts reset. Returns how many moved."""
    return await broker.requeue_dead(queue, ids)


async def delete_dead(broker: Broker, queue: str, ids: list[str], undo: str = "") -> int:
    """Delete these dead letters. Returns how many were deleted.

    With an `undo` token (`engine.undo.new_undo`, one per operator action) they stay
    restorable with it for the restore window; without one they are gone for good.
    """
    return await broker.delete_dead(queue, ids, undo)


async def matching_ids(broker: Broker, flt: DeadFilter) -> dict[str, list[str]]:
    """Every matching dead letter's id, per queue."""
    out: dict[str, list[str]] = {}
    for queue in await _queues(broker, flt):
        ids = [item.id async for _, item in _scan(broker, queue, flt)]
        if ids:
            out[queue] = ids
    return out


async def count_matching(broker: Broker, flt: DeadFilter) -> int:
    """How many dead letters match (the scope shown before a bulk action)."""
    return sum(len(ids) for ids in (await matching_ids(broker, flt)).values())


async def pin(broker: Broker, flt: DeadFilter) -> DeadFilter:
    """`flt` limited to what has died by now (server clock), or by its own `until_ms` if
    earlier: a bulk action on the result leaves letters that die meanwhile alone."""
    seconds, micros = await broker.redis.time()
    cutoff_ms = int(seconds) * 1000 + int(micros) // 1000
    if flt.until_ms is not None:
        cutoff_ms = min(cutoff_ms, flt.until_ms)
    return dataclasses.replace(flt, until_ms=cutoff_ms)


async def pin_scope(broker: Broker, flt: DeadFilter) -> tuple[DeadFilter, int]:
    """`pin(flt)` and how many letters that is: the count a confirmation shows, so the action
    confirmed on it acts on exactly these."""
    pinned = await pin(broker, flt)
    return pinned, await count_matching(broker, pinned)


async def count_newer(broker: Broker, pinned: DeadFilter) -> int:
    """Letters matching `pinned` but for its cut-off: those that died after it."""
    if pinned.until_ms is None:
        return 0
    return await count_matching(
        broker, dataclasses.replace(pinned, since_ms=pinned.until_ms + 1, until_ms=None)
    )


async def requeue_matching(broker: Broker, flt: DeadFilter) -> int:
    """Requeue every dead letter matching `flt`. Returns how many moved."""
    total = 0
    for queue, ids in (await matching_ids(broker, flt)).items():
        total += await requeue_dead(broker, queue, ids)
    return total


async def delete_matching(broker: Broker, flt: DeadFilter, undo: str = "") -> int:
    """Delete every dead letter matching `flt` (restorable with `undo`, as `delete_dead`).
    Returns how many were deleted."""
    total = 0
    for queue, ids in (await matching_ids(broker, flt)).items():
        total += await delete_dead(broker, queue, ids, undo)
    return total


async def purge_dead(broker: Broker, queue: str, undo: str = "") -> int:
    """Delete every dead letter of `queue` (restorable with `undo`, as `delete_dead`)."""
    return await delete_matching(broker, DeadFilter(queue=queue), undo)


async def dead_groups(broker: Broker, flt: DeadFilter | None = None) -> list[DeadGroup]:
    """Dead letters grouped by error fingerprint, largest group first."""
    flt = flt or DeadFilter()
    groups: dict[str, dict[str, Any]] = {}
    for queue in await _queues(broker, flt):
        async for _, item in _scan(broker, queue, flt):
            g = groups.get(item.fingerprint)
            if g is None:
                g = groups[item.fingerprint] = {
                    "count": 0,
                    "first": item.died_at_ms,
                    "last": item.died_at_ms,
                    "sample": item.error_line,
                    "tasks": set(),
                    "queues": set(),
                }
            g["count"] += 1
            g["first"] = min(g["first"], item.died_at_ms)
            g["last"] = max(g["last"], item.died_at_ms)
            g["tasks"].add(item.name)
            g["queues"].add(queue)
    out = [
        DeadGroup(
            fp,
            g["count"],
            g["first"],
            g["last"],
            g["sample"],
            tuple(sorted(g["tasks"])),
            tuple(sorted(g["queues"])),
        )
        for fp, g in groups.items()
    ]
    out.sort(key=lambda g: (-g.count, -g.last_seen_ms))
    return out
