"""The broker's Lua scripts on the real server: priorities, leases, retries, orphans, wake-ups."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis
from redis.backoff import ConstantBackoff

from engine import codec
from engine.broker import Broker
from engine.browse import active_page
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.keys import HASHTABLE_MEMBER
from engine.outcomes import backoff_delay_s, failed, succeeded
from engine.queues import queue_stats, task_status
from engine.task import FetchedTask, TaskSpec, TaskState

T = TypeVar("T")
Q = "jobs"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


async def server_ms(redis: Redis) -> int:
    sec, usec = await redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def poll(fn: Callable[[], Awaitable[T]], deadline_s: float = 5.0) -> T:
    """Call `fn` until it returns something truthy; fail after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {deadline_s} s (last: {value!r})")
        await asyncio.sleep(0.005)


async def fetch_one(
    broker: Broker, worker: str = "w1", lease_s: float | None = None
) -> FetchedTask:
    got = (await broker.fetch(Q, 1, worker, lease_s)).tasks
    assert len(got) == 1, got
    return got[0]


async def enqueue(broker: Broker, name: str = "t", **kw: Any) -> str:
    return (await broker.enqueue([TaskSpec(name=name, queue=kw.pop("queue", Q), **kw)]))[0]


def ok(task: FetchedTask, value: Any) -> Any:
    now = int(time.time() * 1000)
    return succeeded(task, value, now, now)


# -- priorities ------------------------------------------------------------------------------


async def test_strict_priority_across_levels_and_fifo_within(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    order = ["low", "default", "high", "low", "high", "default", "high", "low"]
    specs = [
        TaskSpec(name=f"{level}-{i}", queue=Q, priority=level) for i, level in enumerate(order)
    ]
    # Mixed: some in one batch, some one at a time.
    await broker.enqueue(specs[:4])
    for spec in specs[4:]:
        await broker.enqueue([spec])
    names = []
    while tasks := (await broker.fetch(Q, 1, "w")).tasks:
        names.append(tasks[0].name)
    expected = [
        *(s.name for s in specs if s.priority == "high"),
        *(s.name for s in specs if s.priority == "default"),
        *(s.name for s in specs if s.priority == "low"),
    ]
    assert names == expected


async def test_one_fetch_spans_levels_in_order(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec(name=f"l{i}", queue=Q, priority="low") for i in range(3)])
    await broker.enqueue([TaskSpec(name=f"h{i}", queue=Q, priority="high") for i in range(2)])
    got = (await broker.fetch(Q, 4, "w")).tasks
    assert [t.name for t in got] == ["h0", "h1", "l0", "l1"]
    assert [t.level for t in got] == ["high", "high", "low", "low"]
    assert len({t.token for t in got}) == 1  # one lease token per fetch call
    assert [t.name for t in (await broker.fetch(Q, 10, "w")).tasks] == ["l2"]


async def test_custom_levels_per_queue(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, queue_levels={"mail": ("urgent", "bulk")})
    assert broker.keys("mail").levels == ("urgent", "bulk")
    await broker.enqueue([TaskSpec(name="b1", queue="mail", priority="bulk")])
    await broker.enqueue([TaskSpec(name="u1", queue="mail", priority="urgent")])
    await broker.enqueue([TaskSpec(name="b2", queue="mail", priority="bulk")])
    got = (await broker.fetch("mail", 10, "w")).tasks
    assert [t.name for t in got] == ["u1", "b1", "b2"]
    with pytest.raises(ValueError, match="unknown priority 'default'"):
        await broker.enqueue([TaskSpec(name="x", queue="mail", priority="default")])
    # No priority given: the queue's middle level (of two, the lower one).
    await broker.enqueue([TaskSpec(name="x", queue="mail")])
    assert [t.level for t in (await broker.fetch("mail", 10, "w")).tasks] == ["bulk"]
    # Other queues keep the default levels.
    assert broker.keys(Q).levels == ("high", "default", "low")


async def test_unknown_priority_is_refused(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    with pytest.raises(ValueError, match="unknown priority 'urgent'"):
        await enqueue(broker, priority="urgent")
    assert await redis.exists(broker.keys(Q).tasks) == 0


@pytest.mark.parametrize("queue", ["a{b", "a}b", "{q}", "with space", "tab\tq", "nl\n", ""])
async def test_bad_queue_names_are_refused(redis: Redis, prefix: str, queue: str) -> None:
    broker = make_broker(redis, prefix)
    with pytest.raises(ValueError, match="invalid queue name"):
        await broker.enqueue([TaskSpec(name="t", queue=queue)])
    with pytest.raises(ValueError, match="invalid queue name"):
        broker.keys(queue)
    with pytest.raises(ValueError, match="invalid queue name"):
        EngineConfig(prefix=prefix, queue_levels={queue: ("a",)})
    assert [k async for k in redis.scan_iter(match=f"{prefix}:*")] == []


# -- enqueue -----------------------------------------------------------------------------------


async def test_enqueue_many_is_one_script_call_per_queue(
    embedded_server_factory: Callable[..., Any], prefix: str
) -> None:
    server = embedded_server_factory()
    redis = await open_redis(server.url)
    try:
        broker = make_broker(redis, prefix)
        await enqueue(broker)  # loads the script and registers the queue
        await enqueue(broker, queue="other")

        async def script_calls() -> int:
            stats = await redis.info("commandstats")
            return int(stats.get("cmdstat_fcall", {}).get("calls", 0))

        before = await script_calls()
        specs = [
            TaskSpec(name="t", queue=Q, priority=("high", "default", "low")[i % 3])
            for i in range(300)
        ]
        ids = await broker.enqueue(specs)
        assert await script_calls() - before == 1
        assert len(set(ids)) == 300
        mixed = [TaskSpec(name="t", queue=q) for q in (Q, "other") * 50]
        before = await script_calls()
        await broker.enqueue(mixed)
        assert await script_calls() - before == 2
        stats = await queue_stats(broker, Q)
        assert stats.depth_by_level == {"high": 100, "default": 151, "low": 100}
    finally:
        await redis.aclose()


async def test_enqueue_returns_ids_and_stores_payload(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    given = "my-id-1"
    ids = await broker.enqueue(
        [
            TaskSpec(name="a", queue=Q, args=[1, "x"], kwargs={"k": [1, 2]}, id=given),
            TaskSpec(name="b", queue=Q, max_retries=7, timeout_s=2.5),
        ]
    )
    assert ids[0] == given
    assert len(ids[1]) == 22 and ids[1].isalnum() and ids[1] != given
    got = {t.id: t for t in (await broker.fetch(Q, 10, "w")).tasks}
    a, b = got[given], got[ids[1]]
    assert (a.name, a.args, a.kwargs) == ("a", [1, "x"], {"k": [1, 2]})
    assert (a.attempt, a.max_retries) == (1, 3)
    assert (b.max_retries, b.timeout_s) == (7, 2.5)
    assert a.enqueued_at_ms <= a.fetched_at_ms
    assert await redis.sismember(broker.globals.queues, Q)


@pytest.mark.parametrize("mode", ["delay", "eta"])
async def test_delayed_enqueue_is_not_fetchable_before_due(
    redis: Redis, prefix: str, mode: str
) -> None:
    broker = make_broker(redis, prefix)
    delay = 0.15
    kw = {"delay_s": delay} if mode == "delay" else {"eta_s": time.time() + delay}
    before = await server_ms(redis)
    task_id = await enqueue(broker, **kw)
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.SCHEDULED
    assert info.due_at_ms is not None and info.due_at_ms >= before + 100
    res = await broker.fetch(Q, 10, "w")
    assert res.tasks == [] and res.next_due_ms == info.due_at_ms
    got = await poll(lambda: _tasks(broker))
    assert [t.id for t in got] == [task_id]
    # It only came once the server's clock passed the due time.
    assert got[0].fetched_at_ms >= info.due_at_ms
    # Its queue wait starts when it became runnable, not at enqueue (end to end still does).
    assert got[0].ready_at_ms is not None and got[0].ready_at_ms >= info.due_at_ms
    assert got[0].enqueued_at_ms < info.due_at_ms
    assert got[0].fetched_at_ms - got[0].ready_at_ms < got[0].fetched_at_ms - got[0].enqueued_at_ms


async def _tasks(broker: Broker) -> list[FetchedTask]:
    return (await broker.fetch(Q, 10, "w")).tasks


async def test_eta_in_the_past_and_delay_with_eta_refused(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    task_id = await enqueue(broker, eta_s=time.time() - 60)
    assert [t.id for t in await _tasks(broker)] == [task_id]
    with pytest.raises(ValueError, match="not both"):
        await enqueue(broker, delay_s=1, eta_s=time.time())


async def test_idempotent_enqueue_by_id(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await enqueue(broker, name="first", id="same")
    await enqueue(broker, name="second", id="same")
    await broker.enqueue([TaskSpec(name="third", queue=Q, id="same")] * 3)
    stats = await queue_stats(broker, Q)
    assert stats.pending == 1
    task = await fetch_one(broker)
    assert task.name == "first"
    # While it runs, and after it completed (result still there), the id is the same task.
    await enqueue(broker, name="again", id="same")
    assert (await broker.fetch(Q, 10, "w")).tasks == []
    assert await broker.settle(Q, [ok(task, 1)]) == [True]
    await enqueue(broker, name="again", id="same")
    assert (await queue_stats(broker, Q)).pending == 0
    info = await task_status(broker, "same", Q)
    assert info is not None and info.state is TaskState.SUCCEEDED and info.result == 1


@pytest.mark.parametrize("bad_id", ["", "has space", "x" * 201, "trailing\n", "a|b"])
async def test_bad_task_ids_are_refused(redis: Redis, prefix: str, bad_id: str) -> None:
    broker = make_broker(redis, prefix)
    with pytest.raises(ValueError, match="invalid task id"):
        await enqueue(broker, id=bad_id)


@pytest.mark.parametrize("bad_name", ["", "two words", 'quo"te', "nl\n", "back\\slash"])
async def test_bad_task_names_are_refused(redis: Redis, prefix: str, bad_name: str) -> None:
    broker = make_broker(redis, prefix)
    with pytest.raises(ValueError, match="invalid task name"):
        await enqueue(broker, name=bad_name)


async def test_unencodable_arguments_name_the_argument(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    with pytest.raises(TypeError, match=r"argument 1 of task 'resize'"):
        await enqueue(broker, name="resize", args=["ok", object()])
    with pytest.raises(TypeError, match=r"keyword argument 'when' of task 'resize'"):
        await enqueue(broker, name="resize", args=[1], kwargs={"size": 3, "when": {1, 2}})
    # A bad task in a batch refuses the whole batch before any I/O.
    with pytest.raises(TypeError, match="argument 0"):
        await broker.enqueue(
            [TaskSpec(name="good", queue=Q), TaskSpec(name="bad", queue=Q, args=[b"bytes"])]
        )
    assert await redis.exists(broker.keys(Q).tasks) == 0


# -- leases ------------------------------------------------------------------------------------


async def test_fetch_leases_into_active_with_fresh_tokens(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, lease_s=30)
    ids = await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(3)])
    before = await server_ms(redis)
    first = (await broker.fetch(Q, 2, "w1")).tasks
    second = (await broker.fetch(Q, 2, "w2")).tasks
    assert [t.id for t in first + second] == ids
    assert first[0].token != second[0].token
    assert first[0].token.endswith("|w1") and second[0].token.endswith("|w2")
    keys = broker.keys(Q)
    deadlines = dict(await redis.zrange(keys.active, 0, -1, withscores=True))
    assert deadlines.pop(HASHTABLE_MEMBER.encode()) == float("inf")
    assert len(deadlines) == 3
    for score in deadlines.values():
        assert before + 30_000 <= score <= await server_ms(redis) + 30_000
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.active) == (0, 3)


async def test_active_and_lease_are_hash_tables_that_no_reader_counts_as_a_task(
    redis: Redis, prefix: str
) -> None:
    # Listpacks (Redis's form for small zsets and hashes) scan every entry on each lookup; the
    # member that keeps these two hash tables must not show up as a task anywhere.
    broker = make_broker(redis, prefix, lease_s=0.05)
    keys = broker.keys(Q)
    await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(2)])
    held = (await broker.fetch(Q, 2, "w")).tasks
    assert len(held) == 2
    assert await redis.object("encoding", keys.active) == b"skiplist"
    assert await redis.object("encoding", keys.lease) == b"hashtable"
    assert (await queue_stats(broker, Q)).active == 2
    page = await active_page(broker, Q)
    assert page.total == 2 and sorted(t.id for t in page.tasks) == sorted(t.id for t in held)
    # Leases run out: the reaper requeues the two tasks and leaves the member alone.
    reaped = await poll(lambda: _reap_requeued(broker))
    assert reaped.requeued == 2 and reaped.dead == 0
    assert (await queue_stats(broker, Q)).active == 0
    assert (await active_page(broker, Q)).tasks == ()
    assert await redis.zscore(keys.active, HASHTABLE_MEMBER) == float("inf")
    again = (await broker.fetch(Q, 2, "w")).tasks
    assert len(again) == 2 and HASHTABLE_MEMBER not in {t.id for t in again}
    await broker.settle(Q, [succeeded(t, None, 0, 1) for t in again])
    assert (await queue_stats(broker, Q)).active == 0


async def test_expired_lease_is_reaped_and_refetched(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, lease_s=10, max_retries=3)
    task_id = await enqueue(broker)
    lost = await fetch_one(broker, "w1", lease_s=0.05)
    assert lost.attempt == 1
    # A second fetcher sees nothing while the lease is live.
    assert (await broker.fetch(Q, 10, "w2")).tasks == []
    reaped = await poll(lambda: _reap_requeued(broker))
    assert reaped.requeued == 1 and reaped.dead == 0
    info = await task_status(broker, task_id, Q)
    assert info is not None
    assert info.state is TaskState.PENDING
    assert info.error == "lease expired (worker lost)"
    assert info.exc_type == "LeaseExpired"
    again = await fetch_one(broker, "w2")
    assert again.id == task_id and again.attempt == 2 and again.token != lost.token


async def _reap_requeued(broker: Broker) -> Any:
    res = await broker.reap(Q)
    return res if res.requeued or res.dead else None


async def test_late_completion_with_stale_token_is_rejected(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    task_id = await enqueue(broker)
    old = await fetch_one(broker, "w1", lease_s=0.05)
    await poll(lambda: _reap_requeued(broker))
    new = await fetch_one(broker, "w2")
    # The old owner finishes while the new one runs: rejected and counted.
    assert await broker.settle(Q, [ok(old, "old")]) == [False]
    assert (await queue_stats(broker, Q)).late_rejected == 1
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.ACTIVE
    assert await broker.settle(Q, [ok(new, "new")]) == [True]
    # And once more after the new owner's result is in: still rejected.
    assert await broker.settle(Q, [failed(old, RuntimeError("boom"), broker.config)]) == [False]
    assert (await queue_stats(broker, Q)).late_rejected == 2
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.SUCCEEDED and info.result == "new"


async def test_settle_batch_mixes_accepted_and_rejected(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, max_retries=0)
    await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(3)])
    a, b, c = (await broker.fetch(Q, 3, "w")).tasks
    assert await broker.settle(Q, [ok(a, 1)]) == [True]
    flags = await broker.settle(Q, [ok(a, 2), failed(b, ValueError("x"), broker.config), ok(c, 3)])
    assert flags == [False, True, True]
    stats = await queue_stats(broker, Q)
    assert (stats.active, stats.dead, stats.late_rejected) == (0, 1, 1)


async def test_extend_renews_live_leases_only(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(2)])
    live = await fetch_one(broker, "w1", lease_s=5)
    short = await fetch_one(broker, "w1", lease_s=0.05)
    before = await redis.zscore(keys.active, live.id)
    assert before is not None
    assert await broker.extend(Q, [(live.id, live.token)], lease_s=60) == [True]
    after = await redis.zscore(keys.active, live.id)
    assert after is not None and after >= before + 50_000
    # A wrong token never renews.
    assert await broker.extend(Q, [(live.id, "nope|w9")]) == [False]

    # Expired but not yet reaped: extending fails and does not resurrect it.
    async def expired() -> bool:
        score = await redis.zscore(keys.active, short.id)
        return score is not None and score < await server_ms(redis)

    await poll(expired)
    stale_score = await redis.zscore(keys.active, short.id)
    assert await broker.extend(Q, [(short.id, short.token), (live.id, live.token)]) == [False, True]
    assert await redis.zscore(keys.active, short.id) == stale_score
    assert (await broker.reap(Q)).requeued == 1
    # Reclaimed by another worker: the old token fails, the new one works.
    new = await fetch_one(broker, "w2", lease_s=5)
    assert new.id == short.id
    assert await broker.extend(Q, [(short.id, short.token)]) == [False]
    assert await broker.extend(Q, [(new.id, new.token)]) == [True]
    # After completion there is nothing to extend.
    assert await broker.settle(Q, [ok(new, None)]) == [True]
    assert await broker.extend(Q, [(new.id, new.token)]) == [False]
    assert await redis.zscore(keys.active, new.id) is None


async def test_release_puts_unfinished_tasks_next_without_counting(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    ids = await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(3)])
    first = await fetch_one(broker, "w1")
    assert first.id == ids[0]
    assert await broker.release(Q, [(first.id, "stale|w9")]) == 0
    assert await broker.release(Q, [(first.id, first.token)]) == 1
    assert await broker.release(Q, [(first.id, first.token)]) == 0  # once only
    assert await broker.settle(Q, [ok(first, 1)]) == [False]
    again = await fetch_one(broker, "w2")
    assert again.id == ids[0] and again.attempt == 1
    stats = await queue_stats(broker, Q)
    assert (stats.active, stats.pending) == (1, 2)


# -- retries, backoff, dead letters ------------------------------------------------------------


def _raise_and_catch(message: str) -> ValueError:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


async def test_retry_due_time_follows_backoff_with_injected_rand(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, backoff_base_s=2.0, backoff_cap_s=300)
    task_id = await enqueue(broker, max_retries=5)
    for attempt, rand in ((1, 0.0), (2, 1.0), (3, 0.5)):
        task = await fetch_one(broker)
        assert task.attempt == attempt
        error = _raise_and_catch(f"try {attempt}")
        outcome = failed(task, error, broker.config, rand=lambda r=rand: r)
        expected_ms = int(backoff_delay_s(attempt, 2.0, 300, lambda r=rand: r) * 1000)
        assert outcome.kind == "r" and outcome.delay_ms == expected_ms
        lo = await server_ms(redis)
        assert await broker.settle(Q, [outcome]) == [True]
        hi = await server_ms(redis)
        info = await task_status(broker, task_id, Q)
        assert info is not None and info.state is TaskState.FAILED
        assert info.error == f"try {attempt}" and info.exc_type == "ValueError"
        assert info.due_at_ms is not None
        assert lo + expected_ms <= info.due_at_ms <= hi + expected_ms
        # Make it due now, so the next attempt is fetchable without waiting for the backoff.
        await redis.zadd(broker.keys(Q).scheduled, {task_id: 0})
    ceilings = [2.0, 4.0, 8.0]
    low = [backoff_delay_s(a, 2.0, 300, lambda: 0.0) for a in (1, 2, 3)]
    assert low == [c / 2 for c in ceilings]
    assert [backoff_delay_s(a, 2.0, 300, lambda: 1.0) for a in (1, 2, 3)] == ceilings
    assert backoff_delay_s(20, 2.0, 300, lambda: 1.0) == 300


async def test_random_jitter_stays_in_window(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, backoff_base_s=1.0, backoff_cap_s=10)
    await broker.enqueue([TaskSpec(name="t", queue=Q) for _ in range(20)])
    tasks = (await broker.fetch(Q, 20, "w")).tasks
    outcomes = [failed(t, RuntimeError("x"), broker.config) for t in tasks]
    lo = await server_ms(redis)
    assert all(await broker.settle(Q, outcomes))
    hi = await server_ms(redis)
    due = dict(await redis.zrange(broker.keys(Q).scheduled, 0, -1, withscores=True))
    assert len(due) == 20
    delays = {o.delay_ms for o in outcomes}
    assert len(delays) > 1  # really jittered
    for score in due.values():
        assert lo + 500 <= score <= hi + 1000


async def test_retries_end_in_dead_letters_with_traceback(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, backoff_base_s=0.01, backoff_cap_s=0.02)
    task_id = await enqueue(broker, name="flaky", max_retries=2)
    attempts = []
    for _ in range(3):
        task = (await poll(lambda: _tasks(broker)))[0]
        attempts.append(task.attempt)
        outcome = failed(task, _raise_and_catch("disk 7 full"), broker.config)
        assert await broker.settle(Q, [outcome]) == [True]
    assert attempts == [1, 2, 3]
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.DEAD
    assert info.error == "disk 7 full" and info.exc_type == "ValueError"
    assert info.traceback and "_raise_and_catch" in info.traceback
    assert "ValueError: disk 7 full" in info.traceback
    assert info.attempts == 3 and info.reason == "error"
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.scheduled, stats.active, stats.dead) == (0, 0, 0, 1)
    assert (await broker.fetch(Q, 10, "w")).tasks == []


async def test_non_retryable_failure_goes_straight_to_dead(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    task_id = await enqueue(broker, max_retries=5)
    task = await fetch_one(broker)
    outcome = failed(
        task,
        None,
        broker.config,
        message="no handler",
        exc_type="UnknownTask",
        retryable=False,
        reason="unknown_task",
    )
    assert outcome.kind == "d"
    assert await broker.settle(Q, [outcome]) == [True]
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.DEAD and info.reason == "unknown_task"


async def test_crash_loop_buries_with_last_worker(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, crash_limit=2, max_retries=10)
    task_id = await enqueue(broker)
    await fetch_one(broker, "worker-a", lease_s=0.05)
    first = await poll(lambda: _reap_requeued(broker))
    assert (first.requeued, first.dead) == (1, 0)
    await fetch_one(broker, "worker-b", lease_s=0.05)
    second = await poll(lambda: _reap_requeued(broker))
    assert (second.requeued, second.dead, second.crash_looped) == (0, 1, 1)
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.DEAD
    assert info.reason == "crash_loop"
    assert info.error is not None and "worker-b" in info.error
    record = codec.loads(await redis.hget(broker.keys(Q).dead_info, task_id))
    assert record["worker"] == "worker-b" and record["crashes"] == 2 and record["attempts"] == 2


async def test_lease_expiry_counts_as_attempt_until_out_of_retries(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix, crash_limit=100, max_retries=1)
    task_id = await enqueue(broker)
    await fetch_one(broker, "w1", lease_s=0.05)
    assert (await poll(lambda: _reap_requeued(broker))).requeued == 1
    await fetch_one(broker, "w2", lease_s=0.05)
    assert (await poll(lambda: _reap_requeued(broker))).dead == 1
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.state is TaskState.DEAD
    assert info.reason == "lease_expired" and info.error == "lease expired (worker lost)"


# -- results -----------------------------------------------------------------------------------


async def test_results_carry_their_ttl(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, result_ttl_s=90)
    task_id = await enqueue(broker)
    task = await fetch_one(broker)
    assert await broker.settle(Q, [ok(task, {"size": [1, 2]})]) == [True]
    keys = broker.keys(Q)
    ttl = await redis.pttl(keys.result(task_id))
    assert 0 < ttl <= 90_000
    # Nothing but the result is left of the task.
    assert await redis.hexists(keys.tasks, task_id) == 0
    assert await redis.hexists(keys.att, task_id) == 0
    assert await redis.hexists(keys.lease, task_id) == 0
    info = await task_status(broker, task_id, Q)
    assert info is not None and info.result == {"size": [1, 2]} and info.attempts == 1
    assert info.result_ttl_ms is not None and 0 < info.result_ttl_ms <= 90_000


# -- orphans -----------------------------------------------------------------------------------


async def test_reap_drops_active_ids_without_payload(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    await redis.zadd(keys.active, {"ghost": 1})
    await redis.hset(keys.lease, "ghost", "x|w")
    res = await broker.reap(Q)
    assert res.orphans == 1 and res.requeued == 0
    assert await redis.zcard(keys.active) == 0
    assert await redis.hexists(keys.lease, "ghost") == 0


async def test_repair_puts_back_payloads_in_no_list(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    placed = await enqueue(broker, name="placed")
    payload = codec.encode_payload(
        level="high", name="lost", args=[1], kwargs={}, max_retries=3, timeout_s=None
    )
    await redis.hset(keys.tasks, "lost-id", payload)
    assert await broker.repair(Q) == 1
    assert await broker.repair(Q) == 0  # idempotent
    got = (await broker.fetch(Q, 10, "w")).tasks
    assert [(t.id, t.name, t.args) for t in got] == [
        ("lost-id", "lost", [1]),
        (placed, "placed", []),
    ]


async def test_corrupt_payload_is_handed_out_with_decode_error(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    await redis.hset(keys.tasks, "bad", b'{"l":"default","n":')
    await redis.lpush(keys.pending["default"], "bad")
    (task,) = (await broker.fetch(Q, 10, "w")).tasks
    assert task.id == "bad" and task.decode_error is not None


# -- wake-ups ----------------------------------------------------------------------------------


async def test_wait_for_work_wakes_promptly_on_enqueue(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    waiter_redis = await open_redis(str(_url_of(redis)))
    try:
        waiter = Broker(waiter_redis, broker.config)
        waiting = asyncio.get_running_loop().create_future()

        async def wait() -> tuple[bool, float]:
            waiting.set_result(None)
            start = time.monotonic()
            woke = await waiter.wait_for_work([Q, "other"], timeout_s=5.0)
            return woke, time.monotonic() - start

        job = asyncio.create_task(wait())
        await waiting
        await enqueue(broker)
        woke, elapsed = await asyncio.wait_for(job, 10)
        assert woke is True
        assert elapsed < 1.0
        assert [t.name for t in await _tasks(broker)] == ["t"]
    finally:
        await waiter_redis.aclose()


async def test_wait_for_work_times_out(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    start = time.monotonic()
    assert await broker.wait_for_work([Q], timeout_s=0.1) is False
    assert 0.05 <= time.monotonic() - start < 2.0


def _url_of(redis: Redis) -> str:
    kw = redis.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


# -- paused queue --------------------------------------------------------------------------------


async def test_fetch_on_paused_queue_yields_nothing(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    from engine.queues import pause, resume

    await enqueue(broker)
    await pause(broker, Q)
    assert (await broker.fetch(Q, 10, "w")).tasks == []
    await resume(broker, Q)
    assert len((await broker.fetch(Q, 10, "w")).tasks) == 1


# -- the server dies ---------------------------------------------------------------------------


def _kill(server: Any) -> None:
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.running:  # poll() reaps the child
        assert time.monotonic() < deadline, "server did not die"
        time.sleep(0.005)


async def test_server_killed_and_restarted_next_call_succeeds(
    embedded_server_factory: Callable[..., Any], prefix: str
) -> None:
    # AOF with fsync on every write: what was enqueued before the SIGKILL survives it.
    server = embedded_server_factory(persistence=True, extra_args=("--appendfsync", "always"))
    redis = await open_redis(server.url, retries=3)
    try:
        broker = make_broker(redis, prefix)
        before = await enqueue(broker, name="before")
        _kill(server)
        server.start()  # same port; the pooled connection is dead
        # The next call hits the dead connection, reconnects and reloads the scripts.
        after = await enqueue(broker, name="after")
        got = (await broker.fetch(Q, 10, "w")).tasks
        assert [t.id for t in got] == [before, after]
    finally:
        await redis.aclose()


async def test_server_comes_back_while_client_retries(
    embedded_server_factory: Callable[..., Any], prefix: str
) -> None:
    server = embedded_server_factory()
    # Generous retries: the server is restarted from a thread while the call is retrying.
    redis = await open_redis(server.url, retries=40, backoff=ConstantBackoff(0.05))
    try:
        broker = make_broker(redis, prefix)
        await enqueue(broker, name="warm-up")
        _kill(server)
        restarter = threading.Thread(target=server.start)
        restarter.start()
        try:
            task_id = await enqueue(broker, name="during")
            stats = await queue_stats(broker, Q)
        finally:
            await asyncio.to_thread(restarter.join)
        assert server.ping()
        assert stats.pending >= 1
        assert task_id in [t.id for t in (await broker.fetch(Q, 10, "w")).tasks]
    finally:
        await redis.aclose()


async def test_large_batches_cross_the_script_chunk_size_whole(redis: Redis, prefix: str) -> None:
    # 4,500 tasks: the scripts write and read in chunks of 4,000 values (Lua's unpack limit);
    # every task must be stored, fetched and settled exactly once across the chunk border.
    broker = make_broker(redis, prefix)
    given = [f"given-{i}" for i in range(10)]
    specs = [TaskSpec("t", [i], queue=Q) for i in range(4490)]
    specs += [TaskSpec("t", queue=Q, id=g) for g in given]
    specs.append(TaskSpec("t", queue=Q, id=given[0]))  # a duplicate inside the same batch
    ids = await broker.enqueue(specs)
    assert len(set(ids)) == 4500 and ids[-1] == given[0]
    assert (await queue_stats(broker, Q)).pending == 4500
    fetched: list[FetchedTask] = []
    while len(fetched) < 4500:
        got = (await broker.fetch(Q, 256, "w")).tasks
        assert got, len(fetched)
        fetched += got
    assert sorted(t.id for t in fetched) == sorted(set(ids))
    assert all(t.attempt == 1 for t in fetched)
    flags = await broker.settle(Q, [succeeded(t, i, 0, 0) for i, t in enumerate(fetched)])
    assert flags == [True] * 4500
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.active) == (0, 0)
    keys = broker.keys(Q)
    assert await redis.hlen(keys.tasks) == 0
    assert await redis.hkeys(keys.lease) == [HASHTABLE_MEMBER.encode()]  # no task's lease
    # Settling the same outcomes again is stale: nothing applied twice.
    assert await broker.settle(Q, [succeeded(t, 0, 0, 0) for t in fetched[:5]]) == [False] * 5


async def test_attempts_count_deliveries_across_retry_expiry_and_release(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix, lease_s=0.05, backoff_base_s=0.001, backoff_cap_s=0.001)
    (task_id,) = await broker.enqueue([TaskSpec("t", queue=Q, max_retries=5)])
    first = (await broker.fetch(Q, 1, "w")).tasks[0]
    assert first.attempt == 1
    active = await task_status(broker, task_id, Q)
    assert active is not None and active.attempts == 1  # the running delivery counts
    assert await broker.release(Q, [(first.id, first.token)]) == 1  # not counted
    second = (await broker.fetch(Q, 1, "w")).tasks[0]
    assert second.attempt == 1
    try:
        raise ValueError("boom")
    except ValueError as exc:
        assert await broker.settle(Q, [failed(second, exc, broker.config)]) == [True]

    async def next_delivery() -> list[FetchedTask]:
        return (await broker.fetch(Q, 1, "w")).tasks

    (third,) = await poll(next_delivery)  # once its backoff is over
    assert third.attempt == 2

    async def requeued() -> int:
        return (await broker.reap(Q)).requeued

    assert await poll(requeued) == 1  # the lease expired: that delivery counts too
    (fourth,) = await poll(next_delivery)
    assert fourth.attempt == 3


async def test_wait_and_fetch_returns_the_task_that_woke_it(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    waiting = asyncio.create_task(broker.wait_and_fetch([Q], Q, 10, "w1", 5.0))
    await asyncio.sleep(0.05)  # let the BLPOP park (a late one would just return at once)
    (task_id,) = await broker.enqueue([TaskSpec("t", queue=Q)])
    res = await asyncio.wait_for(waiting, 3.0)
    assert [t.id for t in res.tasks] == [task_id] and res.tasks[0].attempt == 1
    assert (await queue_stats(broker, Q)).active == 1  # leased by that one round trip


async def test_nudge_ends_a_wait_and_a_flushed_script_cache_is_reloaded(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    await redis.script_flush()  # the pipelined EVALSHA meets NOSCRIPT: loaded and run again
    waiting = asyncio.create_task(broker.wait_and_fetch([Q, "other"], Q, 10, "w1", 30.0))
    await asyncio.sleep(0.05)
    await broker.nudge(Q, "w1")
    res = await asyncio.wait_for(waiting, 3.0)
    assert res.tasks == []
    assert await redis.exists(broker.keys(Q).nudge("w1")) == 0  # the token was taken
    await broker.nudge(Q, "w2")  # nobody waits: the token expires rather than staying
    assert 0 < await redis.pttl(broker.keys(Q).nudge("w2")) <= 60_000
