"""Fuzz the ingress with hypothesis: arbitrary bodies, types, paths and queries never get a 5xx
while Redis is up (bounded: a few hundred examples per route family, a few seconds each)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.http.server import build_app
from engine.http.validation import TASK_FIELDS

SETTINGS = settings(
    max_examples=200,
    deadline=None,  # latency depends on the shared server; the bound is max_examples
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Plausible values per field, mixed with anything at all, so both sides of each check run.
field_values = {
    "name": st.sampled_from(["x", "mail.send", "", "a b", "é" * 3, "x" * 300]),
    "args": st.lists(json_values, max_size=3),
    "kwargs": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "queue": st.sampled_from(["default", "q1", "", "a{b}", "x" * 200, "ü"]),
    "priority": st.sampled_from(["high", "default", "low", "urgent", ""]),
    "max_retries": st.integers(-5, 2000),
    "timeout": st.floats(-1, 1e9),
    "delay": st.floats(-1, 1e12) | st.integers(-(2**70), 2**70),
    "eta": st.floats(-1, 1e12) | st.integers(-(2**70), 2**70),
    "id": st.text(max_size=30),
    "unique_for": st.floats(-1, 1e12) | st.integers(-(2**70), 2**70),
    "unique_key": st.text(max_size=30),
    "unique_until": st.sampled_from(["window", "done", "later", ""]),
    # Not True: a durable enqueue on the tests' server (no AOF, no replica) waits, then 503s.
    "durable": st.sampled_from([False, None, "yes", 1]),
}
task_bodies = st.fixed_dictionaries(
    {},
    optional={k: field_values[k] | json_values for k in TASK_FIELDS} | {"bogus": json_values},
)
bodies = task_bodies | json_values


def encode(value: Any) -> bytes:
    """Stdlib json: unlike orjson it also writes Infinity, NaN and integers over 64 bits."""
    return json.dumps(value).encode()


@pytest.fixture
def env(redis_url: str, prefix: str) -> Iterator[tuple[asyncio.AbstractEventLoop, TestClient]]:
    """A loop of the test's own (hypothesis drives a sync test) with a client on the app."""
    loop = asyncio.new_event_loop()

    async def setup() -> tuple[TestClient, Any]:
        redis = await open_redis(redis_url)
        broker = Broker(redis, EngineConfig(prefix=prefix, max_retries=0))
        client = TestClient(TestServer(build_app(broker, max_batch=20)))
        await client.start_server()
        return client, redis

    client, redis = loop.run_until_complete(setup())
    try:
        yield loop, client
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(redis.aclose())
        loop.close()


def send(
    env: tuple[asyncio.AbstractEventLoop, TestClient],
    method: str,
    path: str,
    data: bytes | None = None,
) -> int:
    loop, client = env

    async def go() -> int:
        async with client.request(method, path, data=data) as resp:
            body = await resp.read()
            assert resp.status < 500, (method, path, data, resp.status, body)
            if resp.status >= 400:
                assert b'"error"' in body and b"Traceback" not in body
            return resp.status

    return loop.run_until_complete(go())


@SETTINGS
@given(body=bodies)
def test_post_task(env: Any, body: Any) -> None:
    send(env, "POST", "/v1/tasks", encode(body))


@SETTINGS
@given(body=st.fixed_dictionaries({"tasks": st.lists(task_bodies, max_size=25)}) | bodies)
def test_post_batch(env: Any, body: Any) -> None:
    send(env, "POST", "/v1/tasks/batch", encode(body))


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "ids": st.lists(st.text(max_size=10), max_size=25) | json_values,
            "all": st.just(True) | json_values,
            "queue": field_values["queue"] | json_values,
            "task": st.text(max_size=5) | json_values,
            "error": st.text(max_size=5) | json_values,
        },
    )
    | bodies
)
def test_post_requeue(env: Any, body: Any) -> None:
    send(env, "POST", "/v1/dead/requeue", encode(body))


@SETTINGS
@given(body=st.binary(max_size=200))
def test_raw_bytes(env: Any, body: bytes) -> None:
    send(env, "POST", "/v1/tasks", body)


segments = st.text(min_size=1, max_size=20).map(lambda s: quote(s, safe=""))
queries = st.dictionaries(
    st.sampled_from(["queue", "task", "error", "limit", "cursor", "x"]),
    st.text(max_size=12) | st.integers(-5, 5000).map(str),
    max_size=4,
).map(lambda q: "&".join(f"{k}={quote(v, safe='')}" for k, v in q.items()))
paths = st.one_of(
    st.builds("/v1/tasks/{}".format, segments),
    st.builds("/v1/dead/{}".format, segments),
    st.builds("/v1/queues/{}/pause".format, segments),
    st.builds("/v1/queues/{}/resume".format, segments),
    st.sampled_from(
        [
            "/v1/dead",
            "/v1/dead/groups",
            "/v1/queues",
            "/v1/workers",
            "/v1/stats",
            "/metrics",
            "/healthz",
            "/readyz",
            "/v1/openapi.json",
            "/v1/tasks",
        ]
    ),
    st.lists(segments, max_size=4).map(lambda p: "/" + "/".join(p)),
)


@SETTINGS
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]), path=paths, query=queries)
def test_paths_and_queries(env: Any, method: str, path: str, query: str) -> None:
    send(env, method, f"{path}?{query}" if query else path)
