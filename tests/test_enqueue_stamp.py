"""The enqueue time rides in the stored payload ("e"), not in a second hash; tasks stored by an
earlier version, with their stamp in `ea`, keep their time and leave nothing behind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from engine import codec
from engine.broker import Broker
from engine.cancel import cancel_task
from engine.config import EngineConfig
from engine.dead import get_dead
from engine.outcomes import failed, succeeded
from engine.queues import peek, queue_gauges, task_status
from engine.task import TaskSpec

Q = "stamped"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


async def server_us(redis: Redis) -> int:
    sec, usec = await redis.time()
    return int(sec) * 1_000_000 + int(usec)


async def test_every_reader_takes_the_enqueue_time_from_the_payload(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    before = await server_us(redis)
    ran, cancelled, died = await broker.enqueue(
        [TaskSpec("s.ran", queue=Q), TaskSpec("s.cancelled", queue=Q), TaskSpec("s.died", queue=Q)]
    )
    after = await server_us(redis)
    assert await redis.exists(keys.ea) == 0  # no second entry per task
    stored = codec.decode_payload(await redis.hget(keys.tasks, ran))
    assert before <= stored["e"] <= after
    lo, hi = before // 1000, after // 1000

    assert [p.enqueued_at_ms for p in await peek(broker, Q, "default", 3)] == [
        stored["e"] // 1000
    ] * 3
    (gauge,) = [g for g in await queue_gauges(broker, after / 1000) if g.queue == Q]
    assert gauge.oldest_pending_age_s is not None and gauge.oldest_pending_age_s < 5
    assert await cancel_task(broker, cancelled, Q)
    info = await task_status(broker, cancelled, Q)
    assert info is not None and lo <= (info.enqueued_at_ms or 0) <= hi  # its cancel record

    tasks = {t.id: t for t in (await broker.fetch(Q, 10, "w")).tasks}
    assert set(tasks) == {ran, died}
    assert all(t.attempt == 1 and lo <= t.enqueued_at_ms <= hi + 1 for t in tasks.values())
    t = tasks[ran]
    await broker.settle(
        Q,
        [
            succeeded(t, 1, 0, 1),
            failed(tasks[died], ValueError("x"), broker.config, retryable=False),
        ],
    )
    info = await task_status(broker, ran, Q)
    assert info is not None and info.enqueued_at_ms == int(t.enqueued_at_ms)
    item = await get_dead(broker, Q, died)
    assert item is not None and lo <= (item.enqueued_at_ms or 0) <= hi
    assert await redis.hexists(keys.tasks, ran) == 0


async def test_a_retried_task_keeps_its_first_enqueue_time(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, backoff_base_s=0.002, backoff_cap_s=0.002)
    (task_id,) = await broker.enqueue([TaskSpec("s.flaky", queue=Q)])
    first = (await broker.fetch(Q, 1, "w")).tasks[0]
    await broker.settle(Q, [failed(first, ValueError("again"), broker.config)])
    deadline = time.monotonic() + 5
    while not (got := (await broker.fetch(Q, 1, "w")).tasks) and time.monotonic() < deadline:
        await asyncio.sleep(0.002)  # the retry's backoff is 1-2 ms
    (second,) = got
    assert (second.id, second.attempt) == (task_id, 2)
    assert second.enqueued_at_ms == first.enqueued_at_ms
    assert second.ready_at_ms is not None and second.ready_at_ms >= first.fetched_at_ms


async def test_a_task_stored_by_an_earlier_version_keeps_its_time_and_leaves_nothing(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    await broker.enqueue([TaskSpec("s.new", queue=Q)])  # registers the queue
    stamp = await server_us(redis) - 5_000_000
    old = "legacy-1"
    # As versions before the stamp moved into the payload stored a task: payload without
    # "e", its enqueue time in `ea`.
    payload = codec.encode_payload(
        level="default", name="s.old", args=[], kwargs={}, max_retries=3, timeout_s=None
    )
    await redis.hset(keys.tasks, old, payload)
    await redis.hset(keys.ea, old, str(stamp))
    await redis.lpush(keys.pending["default"], old)

    listed = {p.id: p for p in await peek(broker, Q, "default", 10)}
    assert listed[old].enqueued_at_ms == stamp // 1000
    (gauge,) = [g for g in await queue_gauges(broker, stamp / 1000 + 6_000) if g.queue == Q]
    assert gauge.oldest_pending_age_s is not None and gauge.oldest_pending_age_s >= 0.9
    tasks = {t.id: t for t in (await broker.fetch(Q, 10, "w")).tasks}
    assert tasks[old].enqueued_at_ms == stamp / 1000 and tasks[old].attempt == 1
    assert tasks[old].name == "s.old"
    await broker.settle(Q, [succeeded(t, None, 0, 1) for t in tasks.values()])
    assert await redis.exists(keys.ea) == 0  # its stamp went with it
    info = await task_status(broker, old, Q)
    assert info is not None and info.enqueued_at_ms == stamp // 1000
