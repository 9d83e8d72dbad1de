"""Every error the ingress answers with: JSON shape, status, code; 503 when Redis is down."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from test_http_support import api_client, error_of, make_broker

from engine import queues as queue_ops
from engine.broker import Broker
from engine.connection import open_redis
from engine.embedded import EmbeddedServer


@pytest_asyncio.fixture
async def broker(redis: Redis, prefix: str) -> Broker:
    return make_broker(redis, prefix)


@pytest_asyncio.fixture
async def api(broker: Broker) -> AsyncIterator[TestClient]:
    async with api_client(broker, max_body_bytes=4096, max_batch=5) as client:
        yield client


BAD_TASKS = [
    (b"{not json", "invalid_json"),
    (b"", "invalid_json"),
    (b"[1, 2]", "invalid_request"),
    (b'{"args": []}', "invalid_request"),  # no name
    (b'{"name": 5}', "invalid_request"),
    (b'{"name": "x", "args": "a.png"}', "invalid_request"),
    (b'{"name": "x", "kwargs": [1]}', "invalid_request"),
    (b'{"name": "x", "queue": 7}', "invalid_request"),
    (b'{"name": "x", "max_retries": true}', "invalid_request"),
    (b'{"name": "x", "max_retries": -1}', "invalid_request"),
    (b'{"name": "x", "timeout": "10"}', "invalid_request"),
    (b'{"name": "x", "timeout": 0}', "invalid_request"),
    (b'{"name": "x", "delay": 1e308}', "invalid_request"),
    (b'{"name": "x", "colour": "red"}', "unknown_field"),
    (b'{"name": "x", "priority": "urgent"}', "invalid_task"),
    (b'{"name": "x", "queue": "a{b}"}', "invalid_task"),
    (b'{"name": "x", "queue": ""}', "invalid_task"),
    (b'{"name": "has space"}', "invalid_task"),
    (b'{"name": "x", "id": "a|b"}', "invalid_task"),
]


@pytest.mark.parametrize(("body", "code"), BAD_TASKS)
async def test_bad_task_is_400(api: TestClient, broker: Broker, body: bytes, code: str) -> None:
    resp = await api.post("/v1/tasks", data=body)
    assert await error_of(resp) == (400, code)
    assert await broker.known_queues() == []  # nothing was written


async def test_bad_batches(api: TestClient, broker: Broker) -> None:
    for body, code in [
        ({"tasks": "x"}, "invalid_request"),
        ({"tasks": [], "extra": 1}, "unknown_field"),
        ({"tasks": [{"name": "a"}, {"name": "b", "bogus": 1}]}, "unknown_field"),
        ({"tasks": [{"name": "a"}, 3]}, "invalid_request"),
    ]:
        assert await error_of(await api.post("/v1/tasks/batch", json=body)) == (400, code)
    resp = await api.post("/v1/tasks/batch", json={"tasks": [{"name": "a"}] * 6})
    assert await error_of(resp) == (413, "batch_too_large")
    assert await broker.known_queues() == []


async def test_bad_requeue_bodies(api: TestClient) -> None:
    for body in [
        {},
        {"ids": []},
        {"ids": "a"},
        {"ids": [1]},
        {"ids": ["a"], "all": True},
        {"all": False, "queue": "q"},
        {"all": True},
        {"all": True, "queue": "a b"},
        {"ids": ["a"], "task": "x"},
        {"ids": ["a"], "queue": "{x}"},
        {"what": 1},
    ]:
        status, _ = await error_of(await api.post("/v1/dead/requeue", json=body))
        assert status == 400, body
    resp = await api.post("/v1/dead/requeue", json={"ids": ["a"] * 6})
    assert await error_of(resp) == (413, "batch_too_large")


async def test_bad_queries_and_names(api: TestClient) -> None:
    for path in [
        "/v1/dead?limit=0",
        "/v1/dead?limit=x",
        "/v1/dead?limit=5000",
        "/v1/dead?cursor=%%%",
        "/v1/dead?queue=a%20b",
        "/v1/dead/groups?queue={x}",
        "/v1/tasks/abc?queue=a%20b",
        "/v1/dead/abc?queue=a%20b",
    ]:
        method = "DELETE" if path.startswith("/v1/dead/abc") else "GET"
        status, _ = await error_of(await api.request(method, path))
        assert status == 400, path
    assert await error_of(await api.post("/v1/queues/a%20b/pause")) == (400, "invalid_queue")


async def test_404_405_413(api: TestClient) -> None:
    assert await error_of(await api.get("/nope")) == (404, "not_found")
    assert await error_of(await api.get("/v1/tasks/nope")) == (404, "not_found")
    assert await error_of(await api.delete("/v1/dead/nope")) == (404, "not_found")
    resp = await api.put("/v1/tasks")
    assert await error_of(resp) == (405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    big = b'{"name": "x", "args": ["' + b"a" * 5000 + b'"]}'
    assert await error_of(await api.post("/v1/tasks", data=big)) == (413, "payload_too_large")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: aiohttp counts while reading
        yield big

    resp = await api.post("/v1/tasks", data=chunked())
    assert await error_of(resp) == (413, "payload_too_large")


async def test_bad_spec_among_coalesced_good_ones(api: TestClient, broker: Broker) -> None:
    """Concurrent single posts share one write; a bad one fails alone."""
    import asyncio

    bodies = [{"name": "ok"}] * 5 + [{"name": "x", "priority": "urgent"}] + [{"name": "ok"}] * 5
    resps = await asyncio.gather(*(api.post("/v1/tasks", json=b) for b in bodies))
    assert [r.status for r in resps] == [201] * 5 + [400] + [201] * 5
    (stats,) = await queue_ops.all_queue_stats(broker)
    assert stats.pending == 10


async def test_internal_error_hides_the_traceback(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(_broker: Broker) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(queue_ops, "all_queue_stats", boom)
    with caplog.at_level(logging.ERROR, logger="spool.http"):
        resp = await api.get("/v1/queues")
    assert await error_of(resp) == (500, "internal")
    assert "internal detail" not in await resp.text()
    assert "internal detail" in caplog.text and "Traceback" in caplog.text


@pytest_asyncio.fixture
async def dead_api(
    embedded_server_factory: Callable[..., EmbeddedServer], prefix: str
) -> AsyncIterator[TestClient]:
    """A client whose Redis server has been stopped."""
    server = embedded_server_factory()
    redis = await open_redis(server.url)
    try:
        async with api_client(make_broker(redis, prefix)) as client:
            server.stop()
            yield client
    finally:
        await redis.aclose()


async def test_503_with_retry_after_when_redis_is_down(dead_api: TestClient) -> None:
    requests = [
        ("POST", "/v1/tasks", {"name": "x"}),
        ("POST", "/v1/tasks/batch", {"tasks": [{"name": "x"}]}),
        ("GET", "/v1/tasks/abc", None),
        ("GET", "/v1/queues", None),
        ("GET", "/v1/dead", None),
        ("POST", "/v1/dead/requeue", {"ids": ["a"]}),
        ("GET", "/v1/stats", None),
        ("GET", "/metrics", None),
        ("GET", "/v1/workers", None),
        ("GET", "/readyz", None),
        ("POST", "/v1/queues/q/pause", None),
    ]
    for method, path, body in requests:
        t0 = time.monotonic()
        resp = await dead_api.request(method, path, json=body)
        assert await error_of(resp) == (503, "redis_unavailable"), path
        assert resp.headers["Retry-After"] == "1"
        assert time.monotonic() - t0 < 3.0, path  # fail fast, no long retries
    assert (await dead_api.get("/healthz")).status == 200  # the process itself is alive
