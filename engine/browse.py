"""Paged views of one queue's tasks: pending per level, scheduled, active.

Each page is one window read (LRANGE or ZRANGE over `offset .. offset + count - 1`) plus one
HMGET per task field, so a page costs the same on a queue of ten tasks or ten million; nothing
here scans the keyspace. Pages are snapshots: tasks move between reads, so a task can show on
two pages or on none while the queue is busy.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.broker import Broker, _s
from engine.keys import HASHTABLE_MEMBER
from engine.queues import _info_from_payload
from engine.task import TaskInfo, TaskState

#: Views a page can show; "pending:<level>" names one priority level.
VIEWS = ("pending", "scheduled", "active")
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of a view: its tasks in order, where it starts, and the view's size."""

    view: str
    offset: int
    total: int
    tasks: tuple[TaskInfo, ...]

    @property
    def has_next(self) -> bool:
        """Whether a page follows this one."""
        return self.offset + len(self.tasks) < self.total


def _check(offset: int, count: int) -> None:
    if offset < 0 or not 1 <= count <= MAX_PAGE:
        raise ValueError(f"need offset >= 0 and 1 <= count <= {MAX_PAGE}")


async def _infos(
    broker: Broker,
    queue: str,
    state: TaskState,
    ids: list[str],
    scores: list[float] | None = None,
) -> tuple[TaskInfo, ...]:
    if not ids:
        return ()
    keys = broker.keys(queue)
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.tasks, ids)
        pipe.hmget(keys.ea, ids)
        pipe.hmget(keys.att, ids)
        pipe.hmget(keys.lasterr, ids)
        payloads, eas, atts, errs = await pipe.execute()
    out = []
    for i, (task_id, payload, ea, att, err) in enumerate(
        zip(ids, payloads, eas, atts, errs, strict=True)
    ):
        if payload is None:
            continue  # finished between the two reads
        extra: dict[str, object] = {}
        row_state = state
        if state is TaskState.SCHEDULED and scores is not None:
            extra["due_at_ms"] = int(scores[i])
            if err is not None:
                row_state = TaskState.FAILED  # waiting out a retry backoff
        elif state is TaskState.ACTIVE and scores is not None:
            extra["lease_deadline_ms"] = int(scores[i])
            att = int(att or 0) + 1  # the delivery running now
        out.append(_info_from_payload(task_id, queue, row_state, payload, ea, att, **extra))
    return tuple(out)


async def pending_page(
    broker: Broker, queue: str, level: str, offset: int = 0, count: int = 50
) -> TaskPage:
    """Pending tasks of one level in fetch order (next out first), `count` from `offset`."""
    _check(offset, count)
    broker.level_of(queue, level)
    key = broker.keys(queue).pending[level]
    # Fetch pops from the right: position p from the next out is list index -(p + 1).
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.llen(key)
        pipe.lrange(key, -(offset + count), -(offset + 1))
        total, raw = await pipe.execute()
    ids = [_s(x) for x in reversed(raw)]
    tasks = await _infos(broker, queue, TaskState.PENDING, ids)
    return TaskPage(f"pending:{level}", offset, int(total), tasks)


async def _zset_page(
    broker: Broker, queue: str, key: str, state: TaskState, view: str, offset: int, count: int
) -> TaskPage:
    _check(offset, count)
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.zcount(key, "-inf", "(inf")  # `active` holds HASHTABLE_MEMBER at +inf
        pipe.zrange(key, offset, offset + count - 1, withscores=True)
        total, raw = await pipe.execute()
    raw = [(member, score) for member, score in raw if _s(member) != HASHTABLE_MEMBER]
    ids = [_s(member) for member, _ in raw]
    tasks = await _infos(broker, queue, state, ids, [score for _, score in raw])
    return TaskPage(view, offset, int(total), tasks)


async def scheduled_page(broker: Broker, queue: str, offset: int = 0, count: int = 50) -> TaskPage:
    """Delayed tasks and retries waiting out their backoff, soonest due first."""
    key = broker.keys(queue).scheduled
    return await _zset_page(broker, queue, key, TaskState.SCHEDULED, "scheduled", offset, count)


async def active_page(broker: Broker, queue: str, offset: int = 0, count: int = 50) -> TaskPage:
    """Running tasks, the lease that expires first first."""
    key = broker.keys(queue).active
    return await _zset_page(broker, queue, key, TaskState.ACTIVE, "active", offset, count)
