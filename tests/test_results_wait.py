"""Results without polling: `result()` and `GET /v1/tasks/{id}?wait=` wake on the task's end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from test_http_support import api_client, error_of

from engine import Client, EngineConfig, TaskDeadError
from engine import queues as queue_ops
from engine.broker import Broker
from engine.outcomes import failed, succeeded
from engine.task import FetchedTask, TaskRegistry

Q = "default"


def make_client(redis: Redis, prefix: str, **overrides: Any) -> Client:
    return Client(
        redis=redis, config=EngineConfig(prefix=prefix, **overrides), registry=TaskRegistry()
    )


async def fetch_one(broker: Broker, queue: str = Q) -> FetchedTask:
    (task,) = (await broker.fetch(queue, 1, "w-test")).tasks
    return task


async def finish(broker: Broker, task: FetchedTask, value: Any) -> float:
    """Settle `task` as succeeded; returns the monotonic time the settle returned."""
    now = int(time.time() * 1000)
    assert await broker.settle(task.queue, [succeeded(task, value, now, now)]) == [True]
    return time.monotonic()


def count_status_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every state read, so a test can tell waiting from polling."""
    seen: list[str] = []
    original = queue_ops.task_status

    async def counting(broker: Broker, task_id: str, queue: str | None = None) -> Any:
        seen.append(task_id)
        return await original(broker, task_id, queue)

    monkeypatch.setattr(queue_ops, "task_status", counting)
    return seen


async def test_result_wakes_on_the_end_without_polling(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_client(redis, prefix) as client:
        tid = await client.enqueue("job")
        task = await fetch_one(client.broker)
        reads = count_status_reads(monkeypatch)
        waiter = asyncio.create_task(client.result(tid, timeout=10))
        await asyncio.sleep(1.0)  # a poll loop would have read the state many times by now
        assert not waiter.done()
        settled_at = await finish(client.broker, task, {"ok": 1})
        assert await waiter == {"ok": 1}
        woke_after = time.monotonic() - settled_at
        assert woke_after < 0.25, f"woke {woke_after * 1000:.0f} ms after the end"
        # Once before registering, once after (the race check), once for the final record.
        assert len(reads) <= 3, reads
        keys = client.broker.keys(Q)
        assert await redis.hlen(keys.waiting) == 0  # the end removed the registration


async def test_a_dead_end_and_a_timeout(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix, max_retries=0) as client:
        dead = await client.enqueue("job")
        slow = await client.enqueue("job")
        task = await fetch_one(client.broker)
        waiter = asyncio.create_task(client.result(dead, timeout=10))
        await asyncio.sleep(0.1)
        outcome = failed(task, RuntimeError("boom"), client.broker.config)
        assert await client.broker.settle(Q, [outcome]) == [True]
        with pytest.raises(TaskDeadError, match="boom"):
            await waiter
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.result(slow, timeout=0.3)
        assert 0.25 < time.monotonic() - t0 < 2
        # A waiter that gave up withdrew its registration.
        assert await redis.hlen(client.broker.keys(Q).waiting) == 0
        with pytest.raises(KeyError):
            await client.result("never-enqueued", timeout=1)


async def test_a_lease_expiry_that_buries_wakes_the_waiter(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix, max_retries=0, lease_s=0.2) as client:
        tid = await client.enqueue("job")
        await fetch_one(client.broker)  # the "worker" dies holding it
        waiter = asyncio.create_task(client.result(tid, timeout=10))
        await asyncio.sleep(0.4)
        await client.broker.reap(Q)
        with pytest.raises(TaskDeadError, match="lease expired"):
            await asyncio.wait_for(waiter, 1)


async def test_many_waiters_share_one_reader(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        ids = await client.enqueue_many([{"name": "job", "args": [i]} for i in range(300)])
        waiters = [asyncio.create_task(client.result(t, timeout=20)) for t in ids]
        await asyncio.sleep(0.2)
        fetched = (await client.broker.fetch(Q, 300, "w")).tasks
        now = int(time.time() * 1000)
        outcomes = [succeeded(t, t.args[0], now, now) for t in fetched]
        assert all(await client.broker.settle(Q, outcomes))
        assert await asyncio.gather(*waiters) == list(range(300))
        # One XREAD loop for the queue, not one per waiter: the pool (10) was never exhausted.
        assert await redis.hlen(client.broker.keys(Q).waiting) == 0


async def test_http_wait_answers_when_the_task_ends(redis: Redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix), registry=TaskRegistry())
    async with api_client(broker) as api:
        tid = (await (await api.post("/v1/tasks", json={"name": "job"})).json())["id"]
        task = await fetch_one(broker)

        async def finish_later() -> float:
            await asyncio.sleep(0.5)
            return await finish(broker, task, "done")

        ender = asyncio.create_task(finish_later())
        resp = await api.get(f"/v1/tasks/{tid}", params={"wait": "10"})
        answered_at = time.monotonic()
        body = await resp.json()
        assert (resp.status, body["state"], body["result"]) == (200, "succeeded", "done")
        assert answered_at - await ender < 0.25
        # Not ended in time: the current state, after the wait.
        other = (await (await api.post("/v1/tasks", json={"name": "job"})).json())["id"]
        t0 = time.monotonic()
        resp = await api.get(f"/v1/tasks/{other}", params={"wait": "0.3"})
        assert (await resp.json())["state"] == "pending"
        assert time.monotonic() - t0 >= 0.25
        resp = await api.get(f"/v1/tasks/{other}", params={"wait": "31"})
        assert await error_of(resp) == (400, "invalid_request")
