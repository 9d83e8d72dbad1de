"""Cancelling running tasks: the worker holding one stops it within a second."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from support.polling import wait_for
from support.workers import Procs

from engine import Client, EngineConfig, TaskCancelledError, TaskContext, TaskState, task
from engine import queues as queue_ops
from engine.task import TaskRegistry
from engine.worker.pool import PoolSettings, WorkerPool

Q = "default"


@pytest_asyncio.fixture
async def setup(redis: Redis, prefix: str) -> AsyncIterator[tuple[Client, WorkerPool, dict]]:
    reg = TaskRegistry()
    seen: dict[str, Any] = {"async": asyncio.Event(), "sync": threading.Event(), "ran": []}

    @task(name="t.sleepy", registry=reg)
    async def sleepy(ctx: TaskContext) -> str:
        seen["ran"].append(ctx.id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["async"].set()
            raise
        return "finished"

    @task(name="t.polling", registry=reg)
    def polling(ctx: TaskContext) -> str:
        deadline = time.monotonic() + 30
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)
        if ctx.cancelled:
            seen["sync"].set()
        return "returned"

    config = EngineConfig(prefix=prefix, lease_s=0.9)
    async with Client(redis=redis, config=config, registry=reg) as client:
        pool = WorkerPool(
            client.broker,
            PoolSettings(queues=(Q,), concurrency=1, idle_block_s=0.05),
            registry=reg,
        )
        await pool.start()
        await asyncio.wait_for(pool.cancels.subscribed.wait(), 5)
        try:
            yield client, pool, seen
        finally:
            await asyncio.wait_for(pool.stop(grace_s=1), 10)


async def started(client: Client, tid: str) -> bool:
    info = await client.status(tid)
    return info is not None and info.state is TaskState.ACTIVE


async def test_an_async_handler_gets_cancelled_error(setup: Any) -> None:
    client, pool, seen = setup
    tid = await client.enqueue("t.sleepy")
    await wait_for(lambda: tid in seen["ran"], 5, "the handler runs")
    t0 = time.monotonic()
    assert await client.cancel(tid) is True
    with pytest.raises(TaskCancelledError):
        await client.result(tid, timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert seen["async"].is_set()
    info = await client.status(tid)
    assert info is not None and info.state is TaskState.CANCELLED and info.attempts == 1
    assert pool.counts["cancelled"] == 1 and pool.counts["failed"] == 0
    # The slot lives on: the next task runs.
    again = await client.enqueue("t.sleepy")
    await wait_for(lambda: again in seen["ran"], 5, "the slot runs the next task")
    await client.cancel(again)


async def test_a_sync_handler_sees_ctx_cancelled(setup: Any) -> None:
    client, _pool, seen = setup
    tid = await client.enqueue("t.polling")
    await wait_for(lambda: started(client, tid), 5, "running")
    t0 = time.monotonic()
    assert await client.cancel(tid) is True
    with pytest.raises(TaskCancelledError):
        await client.result(tid, timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert seen["sync"].is_set()


async def test_a_fetched_task_not_started_yet_never_runs(setup: Any) -> None:
    client, pool, seen = setup
    first = await client.enqueue("t.sleepy")
    await wait_for(lambda: first in seen["ran"], 5, "the only slot is busy")
    second = await client.enqueue("t.sleepy")
    await wait_for(lambda: second in pool.leases.inflight, 5, "the second is prefetched")
    assert await client.cancel(second) is True
    await client.cancel(first)
    with pytest.raises(TaskCancelledError):
        await client.result(second, timeout=5)
    assert second not in seen["ran"]


async def test_lease_renewal_reports_a_cancel_whose_message_was_lost(setup: Any) -> None:
    client, pool, seen = setup
    await pool.cancels.stop()  # as if the subscription were down when the message went out
    tid = await client.enqueue("t.sleepy")
    await wait_for(lambda: tid in seen["ran"], 5, "the handler runs")
    assert await client.cancel(tid) is True
    with pytest.raises(TaskCancelledError):
        await client.result(tid, timeout=5)  # renewal every lease_s / 3 = 0.3 s
    assert seen["async"].is_set()


async def test_real_worker_processes_stop_cancelled_tasks(
    redis: Redis,
    prefix: str,
    procs: Procs,
) -> None:
    config = EngineConfig(prefix=prefix, lease_s=1.0)
    async with Client(redis=redis, config=config, registry=TaskRegistry()) as client:
        worker = procs.start("--concurrency", "4")
        key = f"{prefix}:seen"
        a = await client.enqueue("ws.until_cancelled", args=[key])
        s = await client.enqueue("ws.sync_until_cancelled", args=[key])
        await wait_for(lambda: started(client, a), 20, "async task running in the process")
        await wait_for(lambda: started(client, s), 20, "sync task running in the process")
        await asyncio.sleep(0.5)  # the worker subscribes right after it starts fetching
        t0 = time.monotonic()
        assert await client.cancel(a) is True
        assert await client.cancel(s) is True
        for tid in (a, s):
            with pytest.raises(TaskCancelledError):
                await client.result(tid, timeout=10)
        assert time.monotonic() - t0 < 1.5
        assert await redis.hgetall(key) == {a.encode(): b"cancelled", s.encode(): b"True"}
        stats = await queue_ops.queue_stats(client.broker, Q)
        assert (stats.pending, stats.active, stats.scheduled, stats.dead) == (0, 0, 0, 0)
        worker.terminate()
        await asyncio.to_thread(worker.wait, 20)
