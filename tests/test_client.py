"""The producer API (`engine.Client`) against the real server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import Client, EngineConfig, TaskDeadError, TaskSpec, TaskState
from engine.outcomes import failed, succeeded

Q = "default"


def make_client(redis: Redis, prefix: str, **overrides: Any) -> Client:
    return Client(redis=redis, config=EngineConfig(prefix=prefix, **overrides))


async def complete_next(client: Client, value: Any, queue: str = Q) -> str:
    """Play a worker: wait for one task, complete it with `value`."""
    broker = client.broker
    deadline = time.monotonic() + 5
    while not (tasks := (await broker.fetch(queue, 1, "test-worker")).tasks):
        assert time.monotonic() < deadline
        await broker.wait_for_work([queue], timeout_s=0.2)
    now = int(time.time() * 1000)
    assert await broker.settle(queue, [succeeded(tasks[0], value, now, now)]) == [True]
    return tasks[0].id


async def test_enqueue_and_result(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        tid = await client.enqueue("resize", args=["a.png"], kwargs={"w": 10}, priority="high")
        info = await client.status(tid)
        assert info is not None and info.state is TaskState.PENDING
        assert (info.name, info.args, info.kwargs) == ("resize", ["a.png"], {"w": 10})
        assert info.priority == "high"
        worker = asyncio.create_task(complete_next(client, {"ok": True}))
        assert await client.result(tid, timeout=5) == {"ok": True}
        assert await worker == tid
        done = await client.status(tid)
        assert done is not None and done.state is TaskState.SUCCEEDED
    # The client did not own the connection, so it is still usable.
    assert await redis.ping()


async def test_enqueue_many_specs_and_dicts(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        ids = await client.enqueue_many(
            [
                TaskSpec(name="a", queue="q1"),
                {"name": "b", "queue": "q1", "priority": "low", "args": [1]},
                {"name": "c", "queue": "q2", "delay": 60, "id": "fixed"},
            ]
        )
        assert len(ids) == 3 and ids[2] == "fixed"
        stats = {s.queue: s for s in await client.queues()}
        assert stats["q1"].depth_by_level == {"high": 0, "default": 1, "low": 1}
        assert stats["q2"].scheduled == 1
        with pytest.raises(ValueError, match="unknown task fields: colour"):
            await client.enqueue_many([{"name": "x", "colour": "red"}])
        with pytest.raises(ValueError, match="needs a name"):
            await client.enqueue_many([{"args": [1]}])


async def test_client_refusals(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        with pytest.raises(TypeError, match="argument 0 of task 'resize'"):
            await client.enqueue("resize", args=[object()])
        with pytest.raises(TypeError, match="keyword argument 'cb' of task 'resize'"):
            await client.enqueue("resize", kwargs={"cb": print})
        with pytest.raises(TypeError, match="must be a list or tuple"):
            await client.enqueue("resize", args="a.png")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown priority"):
            await client.enqueue("resize", priority="asap")
        with pytest.raises(ValueError, match="invalid queue name"):
            await client.enqueue("resize", queue="{slot}")
        with pytest.raises(ValueError, match="invalid queue name"):
            await client.enqueue("resize", queue="my queue")


async def test_idempotent_enqueue_through_client(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        a = await client.enqueue("t", id="order-17")
        b = await client.enqueue("t", id="order-17")
        assert a == b == "order-17"
        assert (await client.queues())[0].pending == 1
        await complete_next(client, 17)
        await client.enqueue("t", id="order-17")
        assert (await client.queues())[0].pending == 0
        assert await client.result("order-17", timeout=1) == 17


async def test_result_ttl_is_configured(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix, result_ttl_s=120) as client:
        tid = await client.enqueue("t")
        await complete_next(client, "v")
        ttl = await redis.pttl(client.broker.keys(Q).result(tid))
        assert 0 < ttl <= 120_000
        info = await client.status(tid)
        assert info is not None and info.result_ttl_ms is not None and info.result_ttl_ms <= 120_000


async def test_result_raises_for_dead_unknown_and_slow(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        tid = await client.enqueue("boom", max_retries=0)
        (task,) = (await client.broker.fetch(Q, 1, "w")).tasks
        outcome = failed(task, RuntimeError("kaput 9"), client.config)
        assert await client.broker.settle(Q, [outcome]) == [True]
        with pytest.raises(TaskDeadError, match="kaput 9") as info:
            await client.result(tid, timeout=1)
        assert info.value.info.state is TaskState.DEAD
        assert info.value.info.exc_type == "RuntimeError"
        assert info.value.info.attempts == 1
        with pytest.raises(KeyError, match="unknown task id"):
            await client.result("no-such-task", timeout=1)
        slow = await client.enqueue("slow")
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="still pending"):
            await client.result(slow, timeout=0.1)
        assert time.monotonic() - start < 2
        assert len((await client.dead_letters()).items) == 1


async def test_pause_resume_through_client(redis: Redis, prefix: str) -> None:
    async with make_client(redis, prefix) as client:
        await client.enqueue("t")
        await client.pause(Q)
        assert (await client.broker.fetch(Q, 5, "w")).tasks == []
        await client.resume(Q)
        assert len((await client.broker.fetch(Q, 5, "w")).tasks) == 1


async def test_unconnected_client_says_so() -> None:
    client = Client("redis://127.0.0.1:1/0")
    with pytest.raises(RuntimeError, match="not connected"):
        _ = client.broker


async def test_client_survives_server_restart(
    embedded_server_factory: Callable[..., Any], prefix: str
) -> None:
    server = embedded_server_factory()
    async with Client(server.url, config=EngineConfig(prefix=prefix)) as client:
        await client.enqueue("before")
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while server.running:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        await asyncio.to_thread(server.start)
        # The pooled connection is dead; the call reconnects (retry) and reloads the script.
        tid = await client.enqueue("after")
        info = await client.status(tid)
        assert info is not None and info.state is TaskState.PENDING
