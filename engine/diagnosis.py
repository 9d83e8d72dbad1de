"""Why isn't it moving? One queue's diagnosis, computed from facts read in one pass.

`gather_facts` reads what Redis and the fleet records say about a queue (counts, pause flag,
next due time, the names of the next pending tasks, the live workers that read it, flow
control waits, tasks whose lease expired, server memory); `diagnose` turns facts into reasons
with a plain sentence each. `diagnose` is a pure function, so every rule is tested on
hand-made facts; `diagnose_queue` is both together, and turns a Redis failure into
`redis_down` instead of raising. The console, `GET /v1/queues/{queue}/diagnosis` and the CLI
all show this one result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import codec
from engine.broker import Broker, _s
from engine.queues import QueueStats, enqueue_times_ms, queue_stats
from engine.worker.registry import WorkerRecord, list_workers

#: Codes that mean the queue cannot make progress; the others explain slowness.
BLOCKING = frozenset(
    {"paused", "no_consumer", "no_handler", "scheduled_only", "redis_down", "memory_full"}
)
#: Pending tasks whose names are checked against the fleet's handlers (per level, next out).
NAME_SAMPLE = 50
#: used_memory at or above this share of maxmemory counts as full (writes start failing).
MEMORY_FULL_SHARE = 0.95


@dataclass(frozen=True, slots=True)
class Reason:
    """One fact that holds the queue back: a stable `code` and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A queue's verdict: whether it can make progress, and every reason found."""

    queue: str
    moving: bool
    reasons: tuple[Reason, ...] = ()
    oldest_pending_age_s: float | None = None

    @property
    def sentence(self) -> str:
        """The first reason's message, or a short all-clear."""
        if self.reasons:
            return self.reasons[0].message
        return "moving" if self.moving else "not moving"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: {"queue", "moving", "reasons": [{"code", "message"}]}."""
        return {
            "queue": self.queue,
            "moving": self.moving,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "oldest_pending_age_s": self.oldest_pending_age_s,
        }


@dataclass(frozen=True, slots=True)
class QueueFacts:
    """What is known about one queue at one moment (inputs of `diagnose`)."""

    queue: str
    pending: int
    scheduled: int
    active: int
    paused: bool
    next_due_in_s: float | None = None
    consumers: int = 0  # live worker processes reading this queue
    slots: int = 0  # their concurrency, summed
    in_flight: int = 0  # their tasks in flight (all queues they read)
    #: Names of the next pending tasks and the handler names of the consumers (None: a
    #: consumer did not announce its handlers, so no name can be called unhandled).
    pending_names: frozenset[str] = field(default_factory=frozenset)
    handled_names: frozenset[str] | None = None
    waiting_rate: int = 0
    waiting_concurrency: int = 0
    lease_expired: int = 0  # live tasks whose lease expired at least once
    memory_used: int = 0
    memory_max: int = 0  # 0: no maxmemory set
    drain_per_s: float | None = None  # recent completions per second, when known
    oldest_pending_age_s: float | None = None  # since enqueue, of the next task out per level


def duration_text(seconds: float) -> str:
    """Seconds as people read them: `42 s`, `4 min 10 s`, `2 h 5 min`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def diagnose(f: QueueFacts) -> Diagnosis:
    """The reasons `f` shows, most fundamental first; `moving` unless one of them blocks."""
    reasons: list[Reason] = []
    if f.memory_max and f.memory_used >= MEMORY_FULL_SHARE * f.memory_max:
        share = f.memory_used / f.memory_max
        reasons.append(
            Reason(
                "memory_full",
                f"Redis memory is {share:.0%} of maxmemory: results and retries fail to write",
            )
        )
    if f.paused:
        reasons.append(Reason("paused", "paused: workers take no task until it is resumed"))
    waiting = f.pending + f.scheduled
    if waiting and f.consumers == 0:
        reasons.append(
            Reason("no_consumer", f"no live worker reads this queue ({f.pending:,} pending)")
        )
    elif f.pending and f.handled_names is not None:
        missing = sorted(_unhandled(f))
        if missing:
            shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
            reasons.append(Reason("no_handler", f"no live worker can run {shown}"))
    if f.pending == 0 and f.scheduled and not f.active:
        due = "" if f.next_due_in_s is None else f": next due in {duration_text(f.next_due_in_s)}"
        reasons.append(Reason("scheduled_only", f"{f.scheduled:,} scheduled, none due{due}"))
    if f.pending and f.consumers and f.slots and f.in_flight >= f.slots:
        eta = ""
        if f.drain_per_s:
            eta = (
                f"; ~{duration_text(f.pending / f.drain_per_s)} to drain at {f.drain_per_s:,.0f}/s"
            )
        reasons.append(
            Reason("saturated", f"all {f.slots:,} slots busy, {f.pending:,} waiting{eta}")
        )
    if f.waiting_rate or f.waiting_concurrency:
        parts = []
        if f.waiting_rate:
            parts.append(f"{f.waiting_rate:,} for a rate slot")
        if f.waiting_concurrency:
            parts.append(f"{f.waiting_concurrency:,} for a concurrency slot")
        reasons.append(Reason("limited", "held back by limits: " + ", ".join(parts)))
    if f.lease_expired:
        reasons.append(
            Reason(
                "crash_loop",
                f"{f.lease_expired:,} task(s) lost their lease: a worker died or stalled"
                " while running them",
            )
        )
    # A queue whose next tasks are only partly unhandled still moves for the others.
    partial = bool(f.pending_names - _unhandled(f))
    blocking = [
        r for r in reasons if r.code in BLOCKING and not (r.code == "no_handler" and partial)
    ]
    return Diagnosis(f.queue, not blocking, tuple(reasons), f.oldest_pending_age_s)


def _unhandled(f: QueueFacts) -> frozenset[str]:
    if f.handled_names is None:
        return frozenset()
    return f.pending_names - f.handled_names


def _consumers(workers: list[WorkerRecord], queue: str) -> list[WorkerRecord]:
    return [w for w in workers if queue in w.queues]


async def _pending_names(broker: Broker, queue: str) -> frozenset[str]:
    keys = broker.keys(queue)
    async with broker.redis.pipeline(transaction=False) as pipe:
        for key in keys.pending_keys:
            pipe.lrange(key, -NAME_SAMPLE, -1)  # fetch pops from the right: the next out
        lists = await pipe.execute()
    ids = list(dict.fromkeys(_s(x) for ids in lists for x in ids))
    if not ids:
        return frozenset()
    names = set()
    for payload in await broker.redis.hmget(keys.tasks, ids):
        p = codec.read_payload(payload)
        if p.error is None:
            names.add(p.name)
    return frozenset(names)


async def gather_facts(
    broker: Broker,
    queue: str,
    *,
    stats: QueueStats | None = None,
    workers: list[WorkerRecord] | None = None,
    drain_per_s: float | None = None,
) -> QueueFacts:
    """Read the facts of `queue` (pass `stats`/`workers` already read to save round trips)."""
    keys = broker.keys(queue)
    redis = broker.redis
    if stats is None:
        stats = await queue_stats(broker, queue)
    if workers is None:
        workers = await list_workers(redis, broker.config.prefix)
    readers = _consumers(workers, queue)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrange(keys.scheduled, 0, 0, withscores=True)
        pipe.hlen(keys.crash)
        for key in keys.pending_keys:
            pipe.lindex(key, -1)  # fetch pops from the right: the tail waited longest
        scheduled_head, lease_expired, *heads = await pipe.execute()
    head_ids = [_s(x) for x in heads if x is not None]
    stamps = [ms for ms in await enqueue_times_ms(broker, queue, head_ids) if ms]
    oldest = max(0.0, time.time() - min(stamps) / 1000) if stamps else None
    info = await redis.info("memory")
    next_due = None
    if scheduled_head:
        next_due = max(0.0, float(scheduled_head[0][1]) / 1000 - time.time())
    handled: frozenset[str] | None = None
    if readers and all(w.tasks for w in readers):
        handled = frozenset(name for w in readers for name in w.tasks)
    flow = stats.flow
    return QueueFacts(
        queue=queue,
        pending=stats.pending,
        scheduled=stats.scheduled,
        active=stats.active,
        paused=stats.paused,
        next_due_in_s=next_due,
        consumers=len(readers),
        slots=sum(w.concurrency for w in readers),
        in_flight=sum(w.in_flight for w in readers),
        pending_names=await _pending_names(broker, queue) if stats.pending else frozenset(),
        handled_names=handled,
        waiting_rate=flow.waiting_rate if flow else 0,
        waiting_concurrency=flow.waiting_concurrency if flow else 0,
        lease_expired=int(lease_expired),
        memory_used=int(info.get("used_memory", 0)),
        memory_max=int(info.get("maxmemory", 0)),
        drain_per_s=drain_per_s,
        oldest_pending_age_s=oldest,
    )


async def diagnose_queue(
    broker: Broker, queue: str, *, drain_per_s: float | None = None
) -> Diagnosis:
    """Gather `queue`'s facts and diagnose them; Redis unreachable is itself the diagnosis."""
    try:
        facts = await gather_facts(broker, queue, drain_per_s=drain_per_s)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        return Diagnosis(
            queue,
            False,
            (Reason("redis_down", f"Redis unreachable: {type(exc).__name__}: {exc}"[:200]),),
        )
    return diagnose(facts)
