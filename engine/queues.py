"""Queue inspection and control: depths, peeking, one task's state, pause and resume."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.asyncio.client import Pipeline

from engine import codec
from engine.broker import Broker, _s, enqueued_at_ms
from engine.flow import QueueFlow, queue_flow, slot_label
from engine.keys import QueueKeys
from engine.task import TaskInfo, TaskState


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of one queue at one moment."""

    queue: str
    levels: tuple[str, ...]
    depth_by_level: dict[str, int]
    scheduled: int
    active: int
    dead: int
    paused: bool
    late_rejected: int
    dead_evicted: int
    flow: QueueFlow | None = None  # limits, limited tasks waiting and why, throttle counters

    @property
    def pending(self) -> int:
        """Tasks waiting across all levels."""
        return sum(self.depth_by_level.values())


async def queue_stats(broker: Broker, queue: str) -> QueueStats:
    """Depth per level, scheduled, active, dead, paused and the queue's counters."""
    keys = broker.keys(queue)
    async with broker.redis.pipeline(transaction=False) as pipe:
        for key in keys.pending_keys:
            pipe.llen(key)
        pipe.zcard(keys.scheduled)
        pipe.zcount(keys.active, "-inf", "(inf")  # not HASHTABLE_MEMBER (at +inf)
        pipe.zcard(keys.dead)
        pipe.exists(keys.paused)
        pipe.hmget(keys.meta, "late", "evicted")
        res = await pipe.execute()
    n = len(keys.levels)
    late, evicted = res[n + 4]
    flow = await queue_flow(broker, queue)
    return QueueStats(
        queue=queue,
        levels=keys.levels,
        depth_by_level={level: int(res[i]) for i, level in enumerate(keys.levels)},
        scheduled=int(res[n]),
        active=int(res[n + 1]),
        dead=int(res[n + 2]),
        paused=bool(res[n + 3]),
        late_rejected=int(late or 0),
        dead_evicted=int(evicted or 0),
        flow=flow,
    )


async def all_queue_stats(broker: Broker) -> list[QueueStats]:
    """Stats of every known queue, sorted by name."""
    return [await queue_stats(broker, q) for q in await broker.known_queues()]


@dataclass(frozen=True, slots=True)
class QueueGauge:
    """One queue's state for metrics: counts and how long its oldest pending task has waited."""

    queue: str
    pending: int
    scheduled: int
    active: int
    dead: int
    oldest_pending_age_s: float | None
    late_rejected: int
    dead_evicted: int


async def queue_gauges(
    broker: Broker, now_ms: float, stats: list[QueueStats] | None = None
) -> list[QueueGauge]:
    """`QueueGauge` of every known queue (of `stats` when the caller has them already); ages
    are measured from the tasks' enqueue time."""
    out = []
    for s in await all_queue_stats(broker) if stats is None else stats:
        keys = broker.keys(s.queue)
        async with broker.redis.pipeline(transaction=False) as pipe:
            for key in keys.pending_keys:
                pipe.lindex(key, -1)  # fetch pops from the right: the tail is next out
            heads = [_s(x) for x in await pipe.execute() if x is not None]
        ages = [now_ms - ms for ms in await enqueue_times_ms(broker, s.queue, heads) if ms]
        out.append(
            QueueGauge(
                queue=s.queue,
                pending=s.pending,
                scheduled=s.scheduled,
                active=s.active,
                dead=s.dead,
                oldest_pending_age_s=max(0.0, max(ages) / 1000) if ages else None,
                late_rejected=s.late_rejected,
                dead_evicted=s.dead_evicted,
            )
        )
    return out


async def enqueue_times_ms(broker: Broker, queue: str, ids: list[str]) -> list[int | None]:
    """When each of `ids` was stored in `queue` (ms), None where that is unknown."""
    if not ids:
        return []
    keys = broker.keys(queue)
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.tasks, ids)
        pipe.hmget(keys.ea, ids)  # tasks stored before the stamp moved into the payload
        payloads, eas = await pipe.execute()
    return [enqueued_at_ms(codec.read_payload(p), ea) for p, ea in zip(payloads, eas, strict=True)]


async def pause(broker: Broker, queue: str) -> None:
    """Stop handing out tasks of `queue` (running ones finish; enqueues still land)."""
    await broker.set_paused(queue, True)


async def resume(broker: Broker, queue: str) -> None:
    """Hand out tasks of `queue` again, waking idle workers."""
    await broker.set_paused(queue, False)


async def peek(broker: Broker, queue: str, level: str, count: int = 20) -> list[TaskInfo]:
    """The next `count` tasks of one level, in the order they will be fetched."""
    keys = broker.keys(queue)
    broker.level_of(queue, level)
    if count <= 0:
        return []  # LRANGE -0 -1 would be the whole list
    # Fetch pops from the right, so the next tasks out are the list's tail.
    ids = [_s(x) for x in reversed(await broker.redis.lrange(keys.pending[level], -count, -1))]
    if not ids:
        return []
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.tasks, ids)
        pipe.hmget(keys.ea, ids)
        pipe.hmget(keys.att, ids)
        payloads, eas, atts = await pipe.execute()
    out = []
    for task_id, payload, ea, att in zip(ids, payloads, eas, atts, strict=True):
        if payload is None:
            continue
        out.append(_info_from_payload(task_id, queue, TaskState.PENDING, payload, ea, att))
    return out


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _info_from_payload(
    task_id: str, queue: str, state: TaskState, payload: bytes, ea: Any, att: Any, **extra: Any
) -> TaskInfo:
    p = codec.read_payload(payload)
    if p.error is not None:
        extra.setdefault("error", p.error)
    return TaskInfo(
        id=task_id,
        queue=queue,
        state=state,
        name=p.name,
        priority=p.level,
        args=p.args,
        kwargs=p.kwargs,
        attempts=int(att or 0),
        max_retries=p.max_retries,
        enqueued_at_ms=enqueued_at_ms(p, ea),
        **extra,
    )


def _cancelled_info(
    task_id: str, queue: str, doc: dict[str, Any], at_ms: Any, broker: Broker
) -> TaskInfo:
    """A cancelled task's record; it is kept as long as a result would be."""
    ttl_ms = None
    if at_ms is not None:
        ttl_ms = int(float(at_ms) + broker.config.result_ttl_s * 1000 - time.time() * 1000)
    ttl_ms = max(0, ttl_ms) if ttl_ms is not None else None
    return _ended_info(task_id, queue, TaskState.CANCELLED, doc, ttl_ms)


def _ended_info(
    task_id: str,
    queue: str,
    state: TaskState,
    doc: dict[str, Any],
    result_ttl_ms: int | None,
    result: Any = None,
) -> TaskInfo:
    """A task's record from the document kept after it ended (its result or its cancel)."""
    return TaskInfo(
        id=task_id,
        queue=queue,
        state=state,
        name=doc.get("name", ""),
        attempts=int(doc.get("attempts", 0)),
        result=result,
        enqueued_at_ms=_int_or_none(doc.get("enqueued_at_ms")),
        finished_at_ms=doc.get("finished_at_ms"),
        result_ttl_ms=result_ttl_ms,
    )


class _Stored(NamedTuple):
    """What one queue holds about one task id (None where nothing), read by `_read_stored`."""

    payload: bytes | None
    enqueued_at: bytes | None  # µs, `ea`: only a task stored before the payload carried it
    attempts: bytes | None
    lease_deadline_ms: float | None  # in `active`: it runs
    due_at_ms: float | None  # in `scheduled`: delayed, or a retry waiting
    died_at_ms: float | None  # in `dead`
    dead_info: bytes | None
    last_error: bytes | None
    result: bytes | None
    result_ttl_ms: int  # PTTL: negative when there is no result
    rate_limited: bytes | None
    parked: bytes | None  # held back by a concurrency limit: "<slot>\n..."
    cancelled: bytes | None
    cancelled_at_ms: float | None
    cancel_requested: bool


def _read_stored(pipe: Pipeline, keys: QueueKeys, task_id: str) -> None:
    """Queue the reads that fill a `_Stored`, one command per field, in its field order."""
    pipe.hget(keys.tasks, task_id)
    pipe.hget(keys.ea, task_id)
    pipe.hget(keys.att, task_id)
    pipe.zscore(keys.active, task_id)
    pipe.zscore(keys.scheduled, task_id)
    pipe.zscore(keys.dead, task_id)
    pipe.hget(keys.dead_info, task_id)
    pipe.hget(keys.lasterr, task_id)
    pipe.get(keys.result(task_id))
    pipe.pttl(keys.result(task_id))
    pipe.hget(keys.flow_rated, task_id)
    pipe.hget(keys.flow_wait, task_id)
    pipe.hget(keys.cancelled, task_id)
    pipe.zscore(keys.cancelled_at, task_id)
    pipe.hexists(keys.cancel, task_id)


async def task_status(broker: Broker, task_id: str, queue: str | None = None) -> TaskInfo | None:
    """One task's state and record, looking in `queue` or in every known queue."""
    queues = [queue] if queue else await broker.known_queues()
    if not queues:
        return None
    n = len(_Stored._fields)
    async with broker.redis.pipeline(transaction=False) as pipe:
        for q in queues:
            _read_stored(pipe, broker.keys(q), task_id)
        res = await pipe.execute()
    for i, q in enumerate(queues):
        found = _Stored._make(res[i * n : (i + 1) * n])
        if found.cancelled is not None:
            doc = codec.loads(found.cancelled)
            return _cancelled_info(task_id, q, doc, found.cancelled_at_ms, broker)
        if found.result is not None:
            doc = codec.loads(found.result)
            ttl_ms = found.result_ttl_ms if found.result_ttl_ms > 0 else None
            return _ended_info(task_id, q, TaskState.SUCCEEDED, doc, ttl_ms, doc.get("result"))
        if found.payload is None:
            continue
        return _live_info(task_id, q, found, found.payload)
    return None


def _live_info(task_id: str, queue: str, found: _Stored, payload: bytes) -> TaskInfo:
    """The record of a task still in the queue (pending, scheduled, running, failed or dead)."""
    att = found.attempts
    lasterr = found.last_error
    extra: dict[str, Any] = {}
    if found.died_at_ms is not None:
        state = TaskState.DEAD
        record = codec.loads(found.dead_info) if found.dead_info else {}
        extra = {
            "error": record.get("error"),
            "exc_type": record.get("exc_type"),
            "traceback": record.get("traceback"),
            "reason": record.get("reason"),
            "died_at_ms": int(found.died_at_ms),
        }
    elif found.lease_deadline_ms is not None:
        state = TaskState.ACTIVE
        extra = {"lease_deadline_ms": int(found.lease_deadline_ms)}
        if found.cancel_requested:
            extra["reason"] = "cancel_requested"
        # `att` counts deliveries that ended; the one running now is one more.
        att = int(att or 0) + 1
    elif found.due_at_ms is not None:
        state = TaskState.FAILED if lasterr else TaskState.SCHEDULED
        extra = {"due_at_ms": int(found.due_at_ms)}
    else:
        state = TaskState.PENDING
    if found.parked is not None and state is TaskState.PENDING:
        slot = _s(found.parked).split("\n")[0]
        extra["waiting_on"] = f"concurrency limit ({slot_label(slot)})"
    elif found.rate_limited is not None and state in (TaskState.SCHEDULED, TaskState.FAILED):
        extra["waiting_on"] = "rate limit"
    if lasterr and state is not TaskState.DEAD:
        record = codec.loads(lasterr)
        extra.update(error=record.get("error"), exc_type=record.get("exc_type"))
        if record.get("traceback"):
            extra["traceback"] = record.get("traceback")
    return _info_from_payload(task_id, queue, state, payload, found.enqueued_at, att, **extra)
