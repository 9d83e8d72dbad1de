"""Item 7, durable enqueue: confirmed by the AOF on disk (WAITAOF) or a replica (WAIT); a clear
DurabilityError (HTTP 503) where neither can confirm it."""

from __future__ import annotations

from collections.abc import Callable

from test_http_support import api_client

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.durable import enqueue_durably
from engine.embedded import EmbeddedServer
from engine.errors import DurabilityError
from engine.task import TaskSpec


async def test_durable_enqueue_is_confirmed_by_the_aof(aof_server: EmbeddedServer) -> None:
    redis = await open_redis(aof_server.url)
    broker = Broker(redis, EngineConfig(prefix="fault-durable"))
    try:
        ids = await enqueue_durably(broker, [TaskSpec(name="ws.sleep", args=[1])] * 3)
        assert len(ids) == 3
        assert await redis.hlen(broker.keys("default").tasks) == 3
        async with api_client(broker) as http:
            resp = await http.post("/v1/tasks", json={"name": "x.y", "durable": True})
            assert resp.status == 201, await resp.text()
    finally:
        await redis.aclose()


async def test_durable_enqueue_refused_clearly_without_aof_or_replica(
    embedded_server_factory: Callable[..., EmbeddedServer],
) -> None:
    server = embedded_server_factory(persistence=False)
    redis = await open_redis(server.url)
    broker = Broker(redis, EngineConfig(prefix="fault-durable"))
    try:
        try:
            await enqueue_durably(broker, [TaskSpec(name="ws.sleep", args=[1])], timeout_s=0.2)
        except DurabilityError as exc:
            assert "AOF" in str(exc) or "replica" in str(exc)
        else:
            raise AssertionError("a durable enqueue without AOF or replica must not succeed")
        async with api_client(broker) as http:
            resp = await http.post("/v1/tasks", json={"name": "x.y", "durable": True})
            assert resp.status == 503
            assert "not confirmed durable" in (await resp.json())["error"]["message"]
            resp = await http.post("/v1/tasks", json={"name": "x.y"})
            assert resp.status == 201
    finally:
        await redis.aclose()
