"""Queue inspection and control against the real server: stats, peek, status, pause/resume."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from engine.broker import Broker
from engine.config import EngineConfig
from engine.outcomes import failed, succeeded
from engine.queues import (
    _read_stored,
    _Stored,
    all_queue_stats,
    pause,
    peek,
    queue_stats,
    resume,
    task_status,
)
from engine.task import TaskSpec, TaskState

Q = "jobs"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


async def test_stats_count_every_place(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, max_retries=0)
    await broker.enqueue(
        [TaskSpec(name="t", queue=Q, priority=p) for p in ("high", "low", "low", "default")]
        + [TaskSpec(name="later", queue=Q, delay_s=60)]
    )
    got = (await broker.fetch(Q, 2, "w")).tasks  # high + default
    assert await broker.settle(Q, [failed(got[0], RuntimeError("x"), broker.config)]) == [True]
    stats = await queue_stats(broker, Q)
    assert stats.levels == ("high", "default", "low")
    assert stats.depth_by_level == {"high": 0, "default": 0, "low": 2}
    assert (stats.pending, stats.scheduled, stats.active, stats.dead) == (2, 1, 1, 1)
    assert stats.paused is False and stats.late_rejected == 0 and stats.dead_evicted == 0
    await pause(broker, Q)
    assert (await queue_stats(broker, Q)).paused is True


async def test_all_queue_stats_lists_known_queues(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec(name="t", queue=q) for q in ("b", "a", "b")])
    stats = await all_queue_stats(broker)
    assert [(s.queue, s.pending) for s in stats] == [("a", 1), ("b", 2)]
    assert await broker.known_queues() == ["a", "b"]


async def test_peek_shows_fetch_order(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    ids = await broker.enqueue(
        [TaskSpec(name=f"t{i}", queue=Q, args=[i], kwargs={"i": i}) for i in range(6)]
    )
    await broker.enqueue([TaskSpec(name="h", queue=Q, priority="high")])
    first = await peek(broker, Q, "default", 4)
    assert [p.id for p in first] == ids[:4]
    assert [(p.name, p.args, p.kwargs) for p in first[:2]] == [
        ("t0", [0], {"i": 0}),
        ("t1", [1], {"i": 1}),
    ]
    assert all(p.state is TaskState.PENDING and p.priority == "default" for p in first)
    assert [p.name for p in await peek(broker, Q, "high", 10)] == ["h"]
    assert await peek(broker, Q, "low", 10) == []
    fetched = (await broker.fetch(Q, 5, "w")).tasks
    assert [t.id for t in fetched[1:]] == [p.id for p in first]
    assert [p.id for p in await peek(broker, Q, "default", 10)] == ids[4:]
    with pytest.raises(ValueError, match="unknown priority"):
        await peek(broker, Q, "nope")


async def test_peek_zero_returns_nothing(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(3)])
    assert await peek(broker, Q, "default", 0) == []


async def test_status_walks_through_every_state(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, max_retries=1, backoff_base_s=60)
    cfg = broker.config
    pending_id, = await broker.enqueue([TaskSpec(name="p", queue=Q, args=[1])])
    delayed_id, = await broker.enqueue([TaskSpec(name="d", queue=Q, delay_s=60)])

    async def state(task_id: str) -> TaskState | None:
        info = await task_status(broker, task_id)  # searches every known queue
        return None if info is None else info.state

    assert await state(pending_id) is TaskState.PENDING
    info = await task_status(broker, pending_id, Q)
    assert info is not None and info.args == [1] and info.name == "p" and info.attempts == 0
    assert info.enqueued_at_ms is not None
    assert await state(delayed_id) is TaskState.SCHEDULED
    (task,) = (await broker.fetch(Q, 10, "w")).tasks
    assert await state(pending_id) is TaskState.ACTIVE
    active = await task_status(broker, pending_id, Q)
    assert active is not None and active.lease_deadline_ms and active.attempts == 1
    assert await broker.settle(Q, [failed(task, RuntimeError("oops"), cfg)]) == [True]
    retrying = await task_status(broker, pending_id, Q)
    assert retrying is not None and retrying.state is TaskState.FAILED
    assert retrying.error == "oops" and retrying.due_at_ms is not None
    await redis.zadd(broker.keys(Q).scheduled, {pending_id: 0})  # due now
    (task,) = (await broker.fetch(Q, 10, "w")).tasks
    assert task.attempt == 2
    assert await broker.settle(Q, [failed(task, RuntimeError("oops again"), cfg)]) == [True]
    dead = await task_status(broker, pending_id, Q)
    assert dead is not None and dead.state is TaskState.DEAD and dead.died_at_ms
    assert dead.error == "oops again" and dead.attempts == 2

    ok_id, = await broker.enqueue([TaskSpec(name="ok", queue=Q, priority="high")])
    (task,) = (await broker.fetch(Q, 1, "w")).tasks
    now = int(time.time() * 1000)
    assert await broker.settle(Q, [succeeded(task, [1], now, now)]) == [True]
    done = await task_status(broker, ok_id)
    assert done is not None and done.state is TaskState.SUCCEEDED and done.result == [1]
    assert done.to_dict()["state"] == "succeeded"
    assert await task_status(broker, "never-seen") is None


async def test_status_queues_one_read_per_field(redis: Redis, prefix: str) -> None:
    """`task_status` slices the pipeline's replies by `_Stored`'s fields: a read added to one
    side only would shift every field after it."""
    broker = Broker(redis, EngineConfig(prefix=prefix))
    async with redis.pipeline(transaction=False) as pipe:
        _read_stored(pipe, broker.keys("default"), "t1")
        assert len(pipe) == len(_Stored._fields)


async def test_pause_and_resume(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await pause(broker, Q)
    # Enqueues still land while paused.
    await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(2)])
    assert (await broker.fetch(Q, 10, "w")).tasks == []
    assert (await queue_stats(broker, Q)).pending == 2
    await resume(broker, Q)
    assert (await queue_stats(broker, Q)).paused is False
    # Resume wakes idle fetchers.
    assert await broker.wait_for_work([Q], timeout_s=0.5) is True
    assert len((await broker.fetch(Q, 10, "w")).tasks) == 2
