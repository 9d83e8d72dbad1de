"""Flow control in the scripts, driven through the broker: limits, hand-backs, slots, uniqueness."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from redis.asyncio import Redis

from engine import flow
from engine.bench.params import BenchParams
from engine.broker import Broker
from engine.config import EngineConfig
from engine.limits import parse_rate
from engine.outcomes import Outcome, succeeded
from engine.queues import queue_stats
from engine.task import FetchedTask, TaskRegistry, TaskSpec, TaskState, task

Q = "default"


def done(t: FetchedTask) -> Outcome:
    return succeeded(t, None, t.fetched_at_ms, t.fetched_at_ms)


def make_broker(redis: Redis, prefix: str, lease_s: float = 10.0) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, lease_s=lease_s))


async def declare(broker: Broker, **limits: object) -> TaskRegistry:
    reg = TaskRegistry()

    @task(name="f.limited", registry=reg, **limits)  # type: ignore[arg-type]
    async def limited(account: str = "none", n: int = 0) -> None:
        return None

    @task(name="f.free", registry=reg)
    async def free() -> None:
        return None

    await flow.publish_limits(broker, [Q], reg)
    return reg


async def test_concurrency_per_name_parks_extra_tasks_and_settle_lets_one_through(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    await declare(broker, concurrency=3)
    ids = await broker.enqueue([TaskSpec("f.limited", args=[f"a{i}"]) for i in range(8)])
    free = await broker.enqueue([TaskSpec("f.free") for _ in range(4)])
    got = (await broker.fetch(Q, 20, "w")).tasks
    names = sorted(t.name for t in got)
    assert names.count("f.limited") == 3 and names.count("f.free") == 4
    state = await flow.queue_flow(broker, Q)
    assert state.waiting_concurrency == 5 and state.running_limited == {"f.limited": 3}
    assert state.throttled_concurrency == 5
    parked = [i for i in ids if i not in {t.id for t in got}]
    info = await broker_status(broker, parked[0])
    assert info.state is TaskState.PENDING and "concurrency" in (info.waiting_on or "")
    first = next(t for t in got if t.name == "f.limited")
    assert await broker.settle(Q, [done(first)]) == [True]
    again = (await broker.fetch(Q, 20, "w")).tasks
    assert [t.id for t in again] == [parked[0]]  # the oldest parked task, and only one
    assert (await flow.queue_flow(broker, Q)).running_limited == {"f.limited": 3}
    assert (await broker.fetch(Q, 20, "w")).tasks == []  # nothing else runnable
    assert free  # unlimited tasks were not held behind the limited ones


async def broker_status(broker: Broker, task_id: str):
    from engine.queues import task_status

    info = await task_status(broker, task_id, Q)
    assert info is not None
    return info


async def test_concurrency_per_key_positional_and_keyword(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await declare(broker, concurrency=1, concurrency_key="account")
    await broker.enqueue(
        [
            TaskSpec("f.limited", args=["a"]),
            TaskSpec("f.limited", kwargs={"account": "a"}),
            TaskSpec("f.limited", args=["b"]),
            TaskSpec("f.limited", kwargs={"account": "b", "n": 2}),
            TaskSpec("f.limited"),  # the default value is a key too
        ]
    )
    got = (await broker.fetch(Q, 10, "w")).tasks
    keys = sorted(t.args[0] if t.args else t.kwargs.get("account", "none") for t in got)
    assert keys == ["a", "b", "none"]
    state = await flow.queue_flow(broker, Q)
    assert state.running_limited == {
        'f.limited["a"]': 1,
        'f.limited["b"]': 1,
        'f.limited["none"]': 1,
    }
    assert state.waiting_concurrency == 2


async def test_rate_limit_reserves_spaced_slots_without_using_attempts(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    await declare(broker, rate_limit="20/s")  # one token every 50 ms
    ids = await broker.enqueue([TaskSpec("f.limited") for _ in range(5)])
    res = await broker.fetch(Q, 10, "w")
    assert len(res.tasks) == 1
    assert res.next_due_ms is not None and 40 <= res.next_due_ms - res.now_ms <= 50
    scheduled = await redis.zrange(broker.keys(Q).scheduled, 0, -1, withscores=True)
    due = sorted(int(score) for _, score in scheduled)
    assert [b - a for a, b in itertools.pairwise(due)] == [50, 50, 50]
    waiting = [i for i in ids if i != res.tasks[0].id]
    info = await broker_status(broker, waiting[0])
    assert info.state is TaskState.SCHEDULED and "rate" in (info.waiting_on or "")
    assert info.attempts == 0
    got = [res.tasks[0]]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while len(got) < 5 and loop.time() < deadline:
        got += (await broker.fetch(Q, 10, "w")).tasks
        await asyncio.sleep(0.01)
    assert sorted(t.id for t in got) == sorted(ids)
    assert all(t.attempt == 1 for t in got)  # waiting used no attempt


async def test_removed_limits_leave_nothing_behind(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    for limits, waiting in (({"rate_limit": "10/s"}, (2, 0)), ({"concurrency": 1}, (0, 2))):
        await declare(broker, **limits)
        await broker.enqueue([TaskSpec("f.limited") for _ in range(3)])
        (running,) = (await broker.fetch(Q, 10, "w")).tasks
        state = await flow.queue_flow(broker, Q)
        assert (state.waiting_rate, state.waiting_concurrency) == waiting
        await declare(broker)  # a deployment without limits
        await broker.reap(Q)  # parked tasks go back
        loop = asyncio.get_running_loop()
        got, deadline = [], loop.time() + 2
        while len(got) < 2 and loop.time() < deadline:
            got += (await broker.fetch(Q, 10, "w")).tasks
            await asyncio.sleep(0.01)
        assert len(got) == 2
        await broker.settle(Q, [done(t) for t in [running, *got]])
        for key in (keys.flow_rated, keys.flow_held, keys.flow_count, keys.flow_wait):
            assert await redis.hlen(key) == 0, key
        assert await redis.zcard(keys.flow_parked) == 0


async def test_reaped_lease_gives_the_slot_back(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, lease_s=0.05)
    await declare(broker, concurrency=1)
    await broker.enqueue([TaskSpec("f.limited") for _ in range(2)])
    (held,) = (await broker.fetch(Q, 10, "w")).tasks
    assert (await broker.fetch(Q, 10, "w")).tasks == []
    await asyncio.sleep(0.1)
    reaped = await broker.reap(Q)
    assert reaped.requeued == 1
    # The reaped task and the parked one: exactly one of them runs.
    got = (await broker.fetch(Q, 10, "w")).tasks
    assert len(got) == 1
    state = await flow.queue_flow(broker, Q)
    assert state.running_limited == {"f.limited": 1} and state.waiting_concurrency == 1
    assert held.id


async def test_release_on_shutdown_frees_slots(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await declare(broker, concurrency=1)
    await broker.enqueue([TaskSpec("f.limited") for _ in range(2)])
    (held,) = (await broker.fetch(Q, 10, "w")).tasks
    assert await broker.release(Q, [(held.id, held.token)]) == 1
    got = (await broker.fetch(Q, 10, "w")).tasks
    assert len(got) == 1
    assert (await flow.queue_flow(broker, Q)).running_limited == {"f.limited": 1}


async def test_raised_limit_unparks_through_the_reaper(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await declare(broker, concurrency=1)
    await broker.enqueue([TaskSpec("f.limited") for _ in range(3)])
    assert len((await broker.fetch(Q, 10, "w")).tasks) == 1
    await declare(broker, concurrency=3)
    await broker.reap(Q)
    assert len((await broker.fetch(Q, 10, "w")).tasks) == 2


async def test_twenty_concurrent_unique_enqueues_make_one_task(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    specs = [TaskSpec("f.report", args=["d"], unique_for=60) for _ in range(20)]
    ids = await asyncio.gather(*(broker.enqueue([s]) for s in specs))
    assert len({i[0] for i in ids}) == 1
    stats = await queue_stats(broker, Q)
    assert stats.pending == 1
    other = await broker.enqueue([TaskSpec("f.report", args=["e"], unique_for=60)])
    assert other[0] != ids[0][0]
    keyed = await broker.enqueue(
        [
            TaskSpec("f.report", args=["x"], unique_key="day:d", unique_for=600),
            TaskSpec("f.report", args=["y"], unique_key="day:d", unique_for=600),
        ]
    )
    assert keyed[0] == keyed[1]


async def test_unique_window_ends_on_done_only_when_asked(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    done_id = (await broker.enqueue([TaskSpec("f.a", unique_for=60, unique_until="done")]))[0]
    win_id = (await broker.enqueue([TaskSpec("f.b", unique_for=60)]))[0]
    got = (await broker.fetch(Q, 10, "w")).tasks
    assert await broker.settle(Q, [done(t) for t in got]) == [True, True]
    again_done = (await broker.enqueue([TaskSpec("f.a", unique_for=60, unique_until="done")]))[0]
    again_win = (await broker.enqueue([TaskSpec("f.b", unique_for=60)]))[0]
    assert again_done != done_id  # the first one ended: a new task
    assert again_win == win_id  # still within the window


async def test_unique_window_expires(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    first = (await broker.enqueue([TaskSpec("f.a", unique_for=0.05)]))[0]
    assert (await broker.enqueue([TaskSpec("f.a", unique_for=0.05)]))[0] == first
    await asyncio.sleep(0.08)
    assert (await broker.enqueue([TaskSpec("f.a", unique_for=0.05)]))[0] != first
    await broker.reap(Q)


async def test_max_wait_serves_an_old_low_task_before_newer_high_ones(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    await flow.set_max_wait(broker, Q, 0.05)
    (low,) = await broker.enqueue([TaskSpec("f.x", priority="low")])
    await asyncio.sleep(0.07)
    await broker.enqueue([TaskSpec("f.x", priority="high") for _ in range(5)])
    got = (await broker.fetch(Q, 1, "w")).tasks
    assert [t.id for t in got] == [low]
    assert (await flow.queue_flow(broker, Q)).starved_served == 1
    await flow.set_max_wait(broker, Q, None)
    (low2,) = await broker.enqueue([TaskSpec("f.x", priority="low")])
    await asyncio.sleep(0.07)
    got = (await broker.fetch(Q, 10, "w")).tasks
    assert [t.id for t in got][-1] == low2  # strict priority again


async def test_max_wait_keeps_every_level_in_order_when_nothing_starves(
    redis: Redis, prefix: str
) -> None:
    """A full fetch with max_wait on gives its pops back and takes them again: the order
    within and across levels is exactly strict priority, FIFO, when nothing waited too long."""
    broker = make_broker(redis, prefix)
    await flow.set_max_wait(broker, Q, 60)
    high = await broker.enqueue([TaskSpec("f.x", priority="high") for _ in range(3)])
    low = await broker.enqueue([TaskSpec("f.x", priority="low") for _ in range(3)])
    default = await broker.enqueue([TaskSpec("f.x") for _ in range(3)])
    order = []
    for n in (2, 2, 3, 10):  # every fetch but the last is full
        order += [t.id for t in (await broker.fetch(Q, n, "w")).tasks]
    assert order == high + default + low
    assert (await flow.queue_flow(broker, Q)).starved_served == 0


def test_bad_limits_are_refused_at_declaration() -> None:
    reg = TaskRegistry()
    for kwargs in (
        {"rate_limit": "fast"},
        {"rate_limit": "0/s"},
        {"concurrency": 0},
        {"concurrency_key": "account"},
        {"concurrency": 1, "concurrency_key": "nope"},
    ):
        with pytest.raises(ValueError):
            task(name="f.bad", registry=reg, **kwargs)(lambda account: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BenchParams(rate_limit="lots")
    assert parse_rate("100/m").interval_ms == 600
    assert parse_rate("5/10s").interval_ms == 2000


async def test_bad_unique_arguments_are_refused(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    for spec in (
        TaskSpec("f.a", unique_for=-1),
        TaskSpec("f.a", unique_for=1, unique_until="later"),
        TaskSpec("f.a", unique_key="k"),
    ):
        with pytest.raises(ValueError):
            await broker.enqueue([spec])
