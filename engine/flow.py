"""Flow control: rate and concurrency limits declared on tasks, unique enqueues, queue settings.

The limits are enforced by the server inside the fetch/settle/reap scripts (`lua/flow.lua`),
so they hold for every worker process sharing the Redis. Workers publish the limits of the
tasks they run into the queue's `flow:limits` hash when they start; this module builds those
specs, reads them back for operators, and computes uniqueness digests for producers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from engine.broker import Broker, _s
from engine.limits import FlowLimits
from engine.task import TaskDef


async def publish_limits(broker: Broker, queues: Iterable[str], defs: Iterable[TaskDef]) -> None:
    """Write the limits of the tasks this worker runs into each queue it serves.

    A task declared without limits clears any left by an older deployment.
    """
    defs = list(defs)
    async with broker.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            key = broker.keys(queue).flow_limits
            for d in defs:
                if d.limits is None:
                    pipe.hdel(key, d.name)
                else:
                    pipe.hset(key, d.name, d.limits.spec())
        await pipe.execute()


async def set_limits(broker: Broker, queue: str, name: str, limits: FlowLimits | None) -> None:
    """Declare (or with None clear) one task name's limits on one queue, as a worker would."""
    key = broker.keys(queue).flow_limits
    if limits is None:
        await broker.redis.hdel(key, name)
    else:
        await broker.redis.hset(key, name, limits.spec())


async def set_max_wait(broker: Broker, queue: str, max_wait_s: float | None) -> None:
    """Serve a lower-level task before newer higher ones once it waited `max_wait_s` (None: off)."""
    meta = broker.keys(queue).meta
    if max_wait_s is None or max_wait_s <= 0:
        await broker.redis.hdel(meta, "max_wait_ms")
    else:
        await broker.redis.hset(meta, "max_wait_ms", int(max_wait_s * 1000))


@dataclass(frozen=True, slots=True)
class QueueFlow:
    """What flow control is doing on one queue, for the console, HTTP and /metrics."""

    limits: dict[str, str]  # task name -> "50/s, 5 at once"
    running_limited: dict[str, int]  # slot ("mail.send" or "sync.account[acct-1]") -> running
    waiting_rate: int  # tasks holding a reserved rate slot
    waiting_concurrency: int  # tasks parked until a concurrency slot frees
    throttled_rate: int  # hand-backs so far
    throttled_concurrency: int
    starved_served: int  # lower-level tasks served early by max_wait
    max_wait_s: float | None
    unique_locks: int


def slot_label(slot: str) -> str:
    """`n\\tmail.send` -> `mail.send`; `k\\tsync.account\\t"a1"` -> `sync.account["a1"]`."""
    parts = slot.split("\t")
    if len(parts) == 3:
        return f"{parts[1]}[{parts[2]}]"
    return parts[-1]


async def queue_flow(broker: Broker, queue: str) -> QueueFlow:
    """Read one queue's limits, slots in use, waiting tasks and counters."""
    keys = broker.keys(queue)
    async with broker.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.flow_limits)
        pipe.hgetall(keys.flow_count)
        pipe.hlen(keys.flow_rated)
        pipe.zcard(keys.flow_parked)
        pipe.hmget(keys.meta, "throttled_rate", "throttled_conc", "starved", "max_wait_ms")
        pipe.hlen(keys.unique)
        limits_raw, counts, rated, parked, meta, uniques = await pipe.execute()
    limits = {}
    for name, raw in limits_raw.items():
        doc = orjson.loads(raw)
        parts = []
        if "rate" in doc:
            parts.append(str(doc["rate"]))
        if "c" in doc:
            parts.append(f"{doc['c']} at once")
        if "kc" in doc:
            parts.append(f"{doc['kc']} at once per {doc.get('ka')}")
        limits[_s(name)] = ", ".join(parts)
    t_rate, t_conc, starved, max_wait = meta
    return QueueFlow(
        limits=dict(sorted(limits.items())),
        running_limited={slot_label(_s(k)): int(v) for k, v in sorted(counts.items())},
        waiting_rate=int(rated),
        waiting_concurrency=int(parked),
        throttled_rate=int(t_rate or 0),
        throttled_concurrency=int(t_conc or 0),
        starved_served=int(starved or 0),
        max_wait_s=int(max_wait) / 1000 if max_wait else None,
        unique_locks=int(uniques),
    )

