"""Cancel: pending, scheduled, retrying and running tasks; idempotent; never retried or dead."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from test_http_support import api_client, error_of

from engine import Client, EngineConfig, TaskCancelledError, TaskState
from engine import queues as queue_ops
from engine.broker import Broker
from engine.outcomes import failed, succeeded
from engine.task import TaskRegistry, TaskSpec

Q = "default"


def make_client(redis: Redis, prefix: str, **overrides: Any) -> Client:
    return Client(
        redis=redis, config=EngineConfig(prefix=prefix, **overrides), registry=TaskRegistry()
    )


async def state_of(client: Client, tid: str) -> TaskState | None:
    info = await client.status(tid)
    return None if info is None else info.state


async def test_pending_scheduled_and_retrying_tasks_are_removed(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix, max_retries=3) as client:
        pending = await client.enqueue("job", args=[1], priority="low")
        later = await client.enqueue("job", args=[2], delay=60)
        retrying = await client.enqueue("job", args=[3])
        keep = await client.enqueue("job", args=[4])
        (first,) = (await client.broker.fetch(Q, 1, "w")).tasks  # the oldest high/default one
        assert first.id == retrying
        await client.broker.settle(Q, [failed(first, RuntimeError("later"), client.config)])
        assert await state_of(client, retrying) is TaskState.FAILED
        waiter = asyncio.create_task(client.result(pending, timeout=10))
        await asyncio.sleep(0.1)
        for tid in (pending, later, retrying):
            assert await client.cancel(tid) is True
            assert await client.cancel(tid) is False  # idempotent
            info = await client.status(tid)
            assert info is not None and info.state is TaskState.CANCELLED
            assert info.result_ttl_ms is not None and info.result_ttl_ms > 0
        with pytest.raises(TaskCancelledError):
            await waiter
        stats = await queue_ops.queue_stats(client.broker, Q)
        assert (stats.pending, stats.scheduled, stats.dead) == (1, 0, 0)
        # Nothing cancelled comes back: only `keep` is fetched, ever.
        promoted = (await client.broker.fetch(Q, 10, "w")).tasks
        assert [t.id for t in promoted] == [keep]
        assert await client.cancel("no-such-task") is False


async def test_an_ended_task_is_not_cancelled(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        tid = await client.enqueue("job")
        (task,) = (await client.broker.fetch(Q, 1, "w")).tasks
        now = int(time.time() * 1000)
        await client.broker.settle(Q, [succeeded(task, 5, now, now)])
        assert await client.cancel(tid) is False
        assert await client.result(tid) == 5


async def test_a_running_task_is_signalled_and_ends_cancelled_whatever_it_returns(
    redis: Redis, prefix: str
) -> None:
    async with make_client(redis, prefix) as client:
        tid = await client.enqueue("job")
        (task,) = (await client.broker.fetch(Q, 1, "worker-7")).tasks
        pubsub = redis.pubsub()
        await pubsub.subscribe(client.broker.globals.cancel_channel("worker-7"))
        assert await client.cancel(tid) is True
        message = None
        deadline = time.monotonic() + 5
        while message is None and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        await pubsub.aclose()
        assert message is not None and message["data"] == f"{Q}\n{tid}".encode()
        assert await client.cancel(tid) is False  # already requested
        info = await client.status(tid)
        assert info is not None and info.state is TaskState.ACTIVE
        assert info.reason == "cancel_requested"
        # Lease renewal tells the worker too (for a lost message).
        assert await client.broker.extend(Q, [(tid, task.token)]) == [2]
        now = int(time.time() * 1000)
        assert await client.broker.settle(Q, [succeeded(task, "late", now, now)]) == [True]
        with pytest.raises(TaskCancelledError):
            await client.result(tid, timeout=1)
        stats = await queue_ops.queue_stats(client.broker, Q)
        assert (stats.active, stats.dead, stats.scheduled) == (0, 0, 0)


async def test_a_failing_cancelled_task_is_not_retried(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix, max_retries=5) as client:
        tid = await client.enqueue("job")
        (task,) = (await client.broker.fetch(Q, 1, "w")).tasks
        assert await client.cancel(tid) is True
        await client.broker.settle(Q, [failed(task, RuntimeError("x"), client.config)])
        assert await state_of(client, tid) is TaskState.CANCELLED
        assert (await queue_ops.queue_stats(client.broker, Q)).scheduled == 0


async def test_a_cancelled_task_whose_worker_died_ends_cancelled(
    redis: Redis, prefix: str
) -> None:
    async with make_client(redis, prefix, lease_s=0.2) as client:
        tid = await client.enqueue("job")
        await client.broker.fetch(Q, 1, "w")
        assert await client.cancel(tid) is True
        await asyncio.sleep(0.3)
        await client.broker.reap(Q)
        assert await state_of(client, tid) is TaskState.CANCELLED
        stats = await queue_ops.queue_stats(client.broker, Q)
        assert (stats.pending, stats.active, stats.dead) == (0, 0, 0)


async def test_cancelled_records_expire_with_the_result_ttl(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix, result_ttl_s=0.2) as client:
        tid = await client.enqueue("job")
        assert await client.cancel(tid) is True
        await asyncio.sleep(0.3)
        await client.broker.reap(Q)
        assert await client.status(tid) is None


async def test_http_cancel(redis: Redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix), registry=TaskRegistry())
    (tid,) = await broker.enqueue([TaskSpec("job")])
    async with api_client(broker) as api:
        resp = await api.post(f"/v1/tasks/{tid}/cancel")
        assert resp.status == 200
        assert await resp.json() == {"id": tid, "cancelled": True, "state": "cancelled"}
        resp = await api.post(f"/v1/tasks/{tid}/cancel")
        assert await resp.json() == {"id": tid, "cancelled": False, "state": "cancelled"}
        assert (await (await api.get(f"/v1/tasks/{tid}")).json())["state"] == "cancelled"
        resp = await api.post("/v1/tasks/nope/cancel")
        assert await error_of(resp) == (404, "not_found")
