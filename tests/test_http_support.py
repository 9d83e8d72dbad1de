"""Helpers shared by the HTTP tests (no tests here): a client on a real app, dead letters."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from engine.broker import Broker
from engine.config import EngineConfig
from engine.http.server import build_app
from engine.outcomes import failed
from engine.task import TaskSpec


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    """A broker on the test's prefix; tasks die on their first failure unless told otherwise."""
    overrides.setdefault("max_retries", 0)
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


@contextlib.asynccontextmanager
async def api_client(broker: Broker, **kwargs: Any) -> AsyncIterator[TestClient]:
    """A TestClient on `build_app(broker, **kwargs)`, served on a free loopback port."""
    async with TestClient(TestServer(build_app(broker, **kwargs))) as client:
        yield client


async def bury(broker: Broker, name: str, error: str, queue: str = "jobs") -> str:
    """Enqueue one task and kill it with `error`; return its id."""
    (task_id,) = await broker.enqueue([TaskSpec(name=name, queue=queue, args=[1])])
    (task,) = (await broker.fetch(queue, 1, "w-test")).tasks
    outcome = failed(task, RuntimeError(error), broker.config)
    assert await broker.settle(queue, [outcome]) == [True]
    return task_id


async def error_of(resp: Any) -> tuple[int, str]:
    """(status, error code) of an error response, checking the error shape on the way."""
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in body["error"]["message"]
    return resp.status, body["error"]["code"]
