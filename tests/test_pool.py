"""The in-process worker pool against a real server: handlers, timeouts, bad input, drains."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from support.polling import wait_for

from engine.broker import Broker
from engine.client import Client
from engine.config import EngineConfig
from engine.dead import DeadItem, get_dead
from engine.queues import queue_stats, task_status
from engine.task import TaskContext, TaskRegistry, TaskSpec, TaskState, task
from engine.worker.pool import PoolSettings, WorkerPool

Q = "default"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    cfg: dict[str, Any] = {"lease_s": 1.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}
    cfg.update(overrides)
    return Broker(redis, EngineConfig(prefix=prefix, **cfg))


def make_settings(**overrides: Any) -> PoolSettings:
    base: dict[str, Any] = {
        "concurrency": 8,
        "idle_block_s": 0.2,
        "grace_s": 2.0,
        "heartbeat_s": 0.2,
        "scaler_tick_s": 0.1,
        "metrics_interval_s": 0.2,
    }
    base.update(overrides)
    return PoolSettings(**base)


@asynccontextmanager
async def running(broker: Broker, reg: TaskRegistry, **settings: Any) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(broker, make_settings(**settings), registry=reg)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop(grace_s=1.0)


async def enqueue(broker: Broker, name: str, *args: Any, **kw: Any) -> str:
    return (await broker.enqueue([TaskSpec(name=name, args=args, queue=Q, **kw)]))[0]


async def dead_item(broker: Broker, task_id: str, timeout_s: float = 10.0) -> DeadItem:
    item: DeadItem = await wait_for(
        lambda: get_dead(broker, Q, task_id), timeout_s, f"task {task_id} dead"
    )
    return item


async def assert_still_works(broker: Broker, pool: WorkerPool) -> None:
    """The pool keeps serving after whatever the test threw at it."""
    assert pool.snapshot().running
    tid = await enqueue(broker, "spool.noop")
    info = await wait_for(lambda: task_status(broker, tid, Q), what="noop result")
    await wait_for(
        lambda: _state(broker, tid, TaskState.SUCCEEDED), what=f"{tid} succeeded ({info})"
    )


async def _state(broker: Broker, tid: str, state: TaskState) -> bool:
    info = await task_status(broker, tid, Q)
    return info is not None and info.state is state


# -- handlers ---------------------------------------------------------------------------------


async def test_async_and_sync_handlers_see_their_context(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()

    @task(name="t.async", registry=reg)
    async def on_loop(x: int, ctx: TaskContext) -> dict[str, Any]:
        return {"x": x, "id": ctx.id, "attempt": ctx.attempt, "queue": ctx.queue}

    @task(name="t.sync", registry=reg)
    def in_thread(x: int, ctx: TaskContext) -> dict[str, Any]:
        return {
            "x": x * 2,
            "id": ctx.id,
            "attempt": ctx.attempt,
            "thread": threading.current_thread().name,
        }

    broker = make_broker(redis, prefix)
    client = await Client(config=broker.config, redis=redis).connect()
    async with running(broker, reg):
        a = await client.enqueue("t.async", [21])
        s = await client.enqueue("t.sync", [21])
        ra = await client.result(a, timeout=10)
        rs = await client.result(s, timeout=10)
    assert ra == {"x": 21, "id": a, "attempt": 1, "queue": Q}
    assert rs["x"] == 42 and rs["id"] == s and rs["attempt"] == 1
    assert rs["thread"].startswith("spool-sync")  # plain functions run off the event loop


async def test_attempt_grows_on_retry(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    seen: list[int] = []

    @task(name="t.third_time_lucky", registry=reg)
    async def lucky(ctx: TaskContext) -> int:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("transient")
        return ctx.attempt

    broker = make_broker(redis, prefix)
    client = await Client(config=broker.config, redis=redis).connect()
    async with running(broker, reg):
        tid = await client.enqueue("t.third_time_lucky", max_retries=5)
        assert await client.result(tid, timeout=10) == 3
    assert seen == [1, 2, 3]


async def test_pool_drains_2000_tasks_in_batches_each_once(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    runs: Counter[str] = Counter()

    @task(name="t.mark", registry=reg)
    async def mark(ctx: TaskContext) -> None:
        runs[ctx.id] += 1

    broker = make_broker(redis, prefix, lease_s=5.0)
    ids = await broker.enqueue([TaskSpec("t.mark", queue=Q) for _ in range(2000)])
    fetches = 0
    real_fetch = broker.fetch

    async def counting_fetch(*args: Any, **kw: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return await real_fetch(*args, **kw)

    broker.fetch = counting_fetch  # type: ignore[method-assign]
    async with running(broker, reg, concurrency=32) as pool:
        await wait_for(lambda: pool.counts["succeeded"] >= 2000, 20, "2000 settled")
        stats = await queue_stats(broker, Q)
        snap = pool.snapshot()
    assert stats.pending == 0 and stats.active == 0 and stats.dead == 0
    assert len(runs) == 2000 and set(runs) == set(ids)
    assert max(runs.values()) == 1, "a task ran twice"
    assert snap.processed == 2000 and snap.late_rejected == 0
    assert fetches < 2000 / 8, f"{fetches} fetches for 2000 tasks: not batched"
    async with redis.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.exists(broker.keys(Q).result(tid))
        assert all(await pipe.execute())


# -- timeouts ---------------------------------------------------------------------------------


async def test_async_timeout_retries_then_dead_letter(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    starts: list[int] = []

    @task(name="t.hang", registry=reg, timeout=0.2)
    async def hang(ctx: TaskContext) -> None:
        starts.append(ctx.attempt)
        await asyncio.sleep(60)

    broker = make_broker(redis, prefix)
    async with running(broker, reg) as pool:
        tid = await enqueue(broker, "t.hang", max_retries=1)
        item = await dead_item(broker, tid)
        assert item.exc_type == "TimeoutError"
        assert "timed out after 0.2 s" in item.error
        assert item.reason == "timeout"
        assert item.attempts == 2 and starts == [1, 2]
        await wait_for(lambda: pool.counts["dead"] == 1)
        assert pool.counts["retried"] == 1
        assert pool.snapshot().in_flight == 0  # the slot is free again
        await assert_still_works(broker, pool)


async def test_per_task_timeout_overrides_the_handler_default(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()

    @task(name="t.slowish", registry=reg, timeout=30)
    async def slowish() -> str:
        await asyncio.sleep(5)
        return "late"

    broker = make_broker(redis, prefix)
    async with running(broker, reg):
        t0 = time.monotonic()
        tid = await enqueue(broker, "t.slowish", max_retries=0, timeout_s=0.1)
        item = await dead_item(broker, tid)
    assert item.exc_type == "TimeoutError" and "0.1 s" in item.error
    assert time.monotonic() - t0 < 3


async def test_sync_timeout_counts_stuck_thread_until_it_returns(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    release = threading.Event()

    @task(name="t.block", registry=reg, timeout=0.2)
    def block() -> str:
        release.wait(10)
        return "done"

    broker = make_broker(redis, prefix)
    try:
        async with running(broker, reg) as pool:
            tid = await enqueue(broker, "t.block", max_retries=0)
            item = await dead_item(broker, tid)
            assert item.exc_type == "TimeoutError"
            assert "sync handler" in item.error and item.attempts == 1
            assert pool.snapshot().stuck_threads == 1
            await assert_still_works(broker, pool)  # the event loop is not blocked
            release.set()
            await wait_for(lambda: pool.snapshot().stuck_threads == 0, what="thread returned")
            # The late return changes nothing: the task stays dead.
            assert (await task_status(broker, tid, Q)).state is TaskState.DEAD  # type: ignore[union-attr]
    finally:
        release.set()


# -- bad input --------------------------------------------------------------------------------


async def test_a_task_nobody_handles_dies_as_no_handler_after_the_grace(
    redis: Redis, prefix: str
) -> None:
    broker = make_broker(redis, prefix)
    async with running(broker, TaskRegistry()) as pool:
        pool.routing.grace_s = 1.0
        pool.routing.retry_after_ms = 100
        t0 = time.monotonic()
        tid = await enqueue(broker, "nobody.handles.this", max_retries=5)
        item = await dead_item(broker, tid)
        assert time.monotonic() - t0 >= 1.0  # handed back meanwhile, not dead at once
        assert item.attempts == 1  # only the delivery that gave up counts; hand-backs do not
        assert item.exc_type == "NoHandler" and item.reason == "no_handler"
        assert "nobody.handles.this" in item.error and "no live worker" in item.error
        assert pool.counts["handed_back"] >= 2
        await assert_still_works(broker, pool)


async def test_undecodable_payload_goes_straight_to_dlq(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    async with running(broker, TaskRegistry()) as pool:
        await broker.register_queues([Q])
        await redis.hset(keys.tasks, "garbage-1", b"\x00not json{")
        await redis.hset(keys.tasks, "garbage-2", b'{"l":"default","x":1}')  # JSON, not a task
        await redis.lpush(keys.pending["default"], "garbage-1", "garbage-2")
        await redis.lpush(keys.wake, b"1")
        for tid in ("garbage-1", "garbage-2"):
            item = await dead_item(broker, tid)
            assert item.attempts == 1
            assert item.exc_type == "UndecodablePayload" and item.reason == "undecodable"
            assert "undecodable payload" in item.error
        await assert_still_works(broker, pool)


async def test_unserialisable_result_retries_then_dlq(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()

    @task(name="t.returns_object", registry=reg)
    async def returns_object() -> object:
        return object()

    broker = make_broker(redis, prefix)
    async with running(broker, reg) as pool:
        tid = await enqueue(broker, "t.returns_object", max_retries=2)
        item = await dead_item(broker, tid)
        assert item.attempts == 3
        assert item.exc_type == "TypeError"
        assert "returned a object, which JSON cannot carry" in item.error
        await assert_still_works(broker, pool)


async def test_exception_retries_then_dlq_with_traceback(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    calls: list[int] = []

    @task(name="t.boom", registry=reg)
    def boom(n: int, ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError(f"boom {n}")

    broker = make_broker(redis, prefix)
    async with running(broker, reg) as pool:
        tid = await enqueue(broker, "t.boom", 42, max_retries=2)
        item = await dead_item(broker, tid)
        assert calls == [1, 2, 3] and item.attempts == 3
        assert item.exc_type == "ValueError" and item.error == "boom 42"
        assert "Traceback" in item.traceback and "in boom" in item.traceback
        assert "ValueError: boom 42" in item.traceback
        assert item.worker == pool.worker_id
        await wait_for(lambda: pool.counts["dead"] == 1 and pool.counts["retried"] == 2)
        await assert_still_works(broker, pool)


# -- shutdown ---------------------------------------------------------------------------------


async def test_drain_keeps_renewing_leases_of_running_tasks(redis: Redis, prefix: str) -> None:
    """A task longer than the lease that finishes inside the grace period is not reclaimed
    by another process's reaper while its worker drains."""
    reg = TaskRegistry()
    runs: Counter[str] = Counter()
    started = asyncio.Event()

    @task(name="t.long", registry=reg)
    async def long(ctx: TaskContext) -> str:
        runs[ctx.id] += 1
        started.set()
        await asyncio.sleep(1.5)
        return "ok"

    broker_a = make_broker(redis, prefix, lease_s=0.5)
    broker_b = make_broker(redis, prefix, lease_s=0.5)
    pool_a = WorkerPool(broker_a, make_settings(concurrency=1), registry=reg)
    await pool_a.start()
    tid = await enqueue(broker_a, "t.long")
    await asyncio.wait_for(started.wait(), 5)
    # B runs the reaper too; it would take the task over if A's lease lapsed.
    async with running(broker_b, reg, concurrency=1):
        await pool_a.stop(grace_s=5)
        assert pool_a.counts["late"] == 0
        assert pool_a.counts["succeeded"] == 1
        await asyncio.sleep(0)  # let B run a round
    assert runs == {tid: 1}
    info = await task_status(broker_a, tid, Q)
    assert info is not None and info.state is TaskState.SUCCEEDED and info.attempts == 1


async def test_stop_releases_prefetched_tasks_without_counting(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    gate = asyncio.Event()

    @task(name="t.gated", registry=reg)
    async def gated() -> str:
        await gate.wait()
        return "ok"

    broker = make_broker(redis, prefix)
    pool = WorkerPool(broker, make_settings(concurrency=2, prefetch_ratio=1.0), registry=reg)
    ids = await broker.enqueue([TaskSpec("t.gated", queue=Q) for _ in range(4)])
    await pool.start()
    await wait_for(lambda: pool.snapshot().in_flight == 2 and pool.snapshot().prefetched == 2)
    stopping = asyncio.create_task(pool.stop(grace_s=5))
    await wait_for(lambda: _pending_is(broker, 2), what="prefetched released")
    gate.set()
    await stopping
    states = {tid: await task_status(broker, tid, Q) for tid in ids}
    done = [i for i in states.values() if i is not None and i.state is TaskState.SUCCEEDED]
    pending = [i for i in states.values() if i is not None and i.state is TaskState.PENDING]
    assert len(done) == 2 and len(pending) == 2
    assert all(i.attempts == 0 for i in pending)
    stats = await queue_stats(broker, Q)
    assert stats.active == 0 and stats.pending == 2


async def _pending_is(broker: Broker, n: int) -> bool:
    return (await queue_stats(broker, Q)).pending == n


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_stop_with_nothing_to_do_is_quick(
    redis: Redis, prefix: str, concurrency: int
) -> None:
    broker = make_broker(redis, prefix)
    pool = WorkerPool(broker, make_settings(concurrency=concurrency), registry=TaskRegistry())
    await pool.start()
    await wait_for(lambda: pool.publisher.published > 0)
    t0 = time.monotonic()
    await pool.stop()
    assert time.monotonic() - t0 < 1.0
    assert not pool.snapshot().running


async def test_redelivery_after_lease_expiry_runs_alone(redis: Redis, prefix: str) -> None:
    """A task whose worker died mid-run comes back as a suspect: it runs with no other task
    in flight, so a second crash charges only itself."""
    reg = TaskRegistry()
    running_now: set[str] = set()
    overlaps: list[tuple[str, set[str]]] = []

    @task(name="t.work", registry=reg)
    async def work(ctx: TaskContext) -> int:
        running_now.add(ctx.id)
        await asyncio.sleep(0.02)
        running_now.discard(ctx.id)
        return ctx.attempt

    @task(name="t.suspect", registry=reg)
    async def suspect(ctx: TaskContext) -> int:
        overlaps.append((ctx.id, set(running_now)))
        return ctx.attempt

    broker = make_broker(redis, prefix, lease_s=0.2)
    (sus,) = await broker.enqueue([TaskSpec("t.suspect", queue=Q)])
    # A worker takes it and vanishes; the reaper brings it back with one lease expiry.
    assert len((await broker.fetch(Q, 1, "ghost")).tasks) == 1
    others = await broker.enqueue([TaskSpec("t.work", queue=Q) for _ in range(4)])
    await wait_for(lambda: _reaped(broker), what="lease expiry reaped")  # behind those 4
    others += await broker.enqueue([TaskSpec("t.work", queue=Q) for _ in range(26)])
    async with running(broker, reg, concurrency=8) as pool:
        await wait_for(lambda: pool.counts["succeeded"] == 31, what="all done")
    assert overlaps == [(sus, set())]
    for tid in [sus, *others]:
        info = await task_status(broker, tid, Q)
        assert info is not None and info.state is TaskState.SUCCEEDED
    assert (await task_status(broker, sus, Q)).attempts == 2  # type: ignore[union-attr]


async def _reaped(broker: Broker) -> bool:
    return (await broker.reap(Q)).requeued == 1


@pytest.mark.parametrize("reaction", ["returns", "raises"])
async def test_a_handler_that_swallows_its_cancel_leaves_later_timeouts_intact(
    redis: Redis, prefix: str, reaction: str
) -> None:
    """The watchdog's cancel is caught by the handler: its mark must not stay on the slot."""
    reg = TaskRegistry()

    @task(name="t.swallow", registry=reg, timeout=0.2)
    async def swallow() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if reaction == "raises":
                raise RuntimeError("cleanup failed") from None
        return "ignored the cancel"

    @task(name="t.slow", registry=reg, timeout=0.2)
    async def slow() -> str:
        await asyncio.sleep(2)
        return "ran to the end"

    broker = make_broker(redis, prefix)
    async with running(broker, reg, concurrency=1):  # one slot: the second task runs in it
        first = await enqueue(broker, "t.swallow", max_retries=0)
        await wait_for(lambda: _ended(broker, first), what="the swallowing task ended")
        started = time.monotonic()
        second = await enqueue(broker, "t.slow", max_retries=0)
        await wait_for(lambda: _ended(broker, second), what="the slow task ended")
        took = time.monotonic() - started
        info = await task_status(broker, second, Q)
        assert info is not None and info.state is TaskState.DEAD, info  # not SUCCEEDED
        assert took < 1.5, f"a 0.2 s timeout took {took:.2f} s to hold"
        # The swallowing task itself ran past its timeout: it fails as a timeout too.
        item = await dead_item(broker, first)
        assert (item.reason, item.exc_type) == ("timeout", "TimeoutError")


async def _ended(broker: Broker, tid: str) -> bool:
    info = await task_status(broker, tid, Q)
    return info is not None and info.state in (TaskState.SUCCEEDED, TaskState.DEAD)
