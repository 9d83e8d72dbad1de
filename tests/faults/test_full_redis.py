"""Item 6: a full Redis (maxmemory reached, noeviction): enqueue refused clearly, held work
finishes, nothing acknowledged is lost, everything recovers when memory frees."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import pytest
from support.polling import wait_for
from support.workers import wait_running

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded import EmbeddedServer, find_free_port
from engine.errors import RedisFull
from engine.task import TaskSpec

from .conftest import Workers, all_succeeded, figure, succeeded


async def test_full_redis_refuses_enqueue_finishes_held_work_and_recovers(
    aof_server: EmbeddedServer,
    workers_factory: Callable[[str, str], Workers],
) -> None:
    prefix = "fault-full"
    port = find_free_port()
    redis = await open_redis(aof_server.url)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    workers = workers_factory(prefix, aof_server.url)
    proc = workers.start(aof_server.url, "--concurrency", "4", "--http", f"127.0.0.1:{port}")
    specs = [TaskSpec(name="ws.sleep", kwargs={"ms": 300}) for _ in range(60)]
    try:
        await wait_running(proc, 20)
        ids = await broker.enqueue(specs)
        await wait_for(lambda: succeeded(broker, ids[:4]), 10, "the worker is busy")

        used = int((await redis.info("memory"))["used_memory"])
        # Below what is used: freeing a payload does not get Redis under the limit again.
        await redis.config_set("maxmemory", used - 200_000)
        # Held work still settles past the limit: completions keep coming while full.
        before = await succeeded(broker, ids)
        refused = 0
        with pytest.raises(RedisFull, match="full"):
            for _ in range(50):  # until the limit bites (the first call usually does)
                ids += await broker.enqueue([TaskSpec(name="ws.sleep", kwargs={"ms": 20})] * 20)
        refused += 1
        full_at = time.monotonic()
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/v1/tasks", json={"name": "ws.sleep", "args": [1]}
        ) as resp:
            assert resp.status == 503
            assert resp.headers.get("Retry-After")
            message = (await resp.json())["error"]["message"]
            assert "full" in message
        await wait_for(
            lambda: _succeeded_more(broker, ids, before), 10, "held tasks settle while full"
        )
        during = await succeeded(broker, ids)

        await redis.config_set("maxmemory", 0)
        freed = time.monotonic()
        ids += await broker.enqueue([TaskSpec(name="ws.sleep", kwargs={"ms": 1})])
        await wait_for(
            lambda: all_succeeded(broker, ids),
            20,
            "every acknowledged task done after memory frees",
        )
        completed = await succeeded(broker, ids)
        figure(
            "full Redis",
            acknowledged=len(ids),
            completed=completed,
            lost=len(ids) - completed,
            completed_while_full=during,
            full_for_s=round(freed - full_at, 2),
            all_done_after_free_s=round(time.monotonic() - freed, 2),
            refused_calls=refused,
        )
        assert completed == len(ids)
        assert proc.poll() is None  # the worker kept running throughout
    finally:
        await redis.config_set("maxmemory", 0)
        await redis.aclose()


async def _succeeded_more(broker: Broker, ids: list[str], than: int) -> bool:
    return await succeeded(broker, ids) > than
