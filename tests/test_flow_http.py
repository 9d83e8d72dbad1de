"""Flow control over HTTP: unique enqueues, limit states in task records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from test_http_support import api_client, make_broker

from engine import flow
from engine.broker import Broker
from engine.queues import queue_stats
from engine.task import TaskRegistry, TaskSpec, task


@pytest_asyncio.fixture
async def broker(redis: Redis, prefix: str) -> Broker:
    return make_broker(redis, prefix)


@pytest_asyncio.fixture
async def api(broker: Broker) -> AsyncIterator[TestClient]:
    async with api_client(broker) as client:
        yield client


async def test_twenty_concurrent_unique_posts_store_one_task(
    api: TestClient, broker: Broker
) -> None:
    body = {"name": "report.build", "args": ["d"], "unique_for": 60}
    replies = await asyncio.gather(*(api.post("/v1/tasks", json=body) for _ in range(20)))
    assert {r.status for r in replies} == {201}
    ids = {(await r.json())["id"] for r in replies}
    assert len(ids) == 1
    assert (await queue_stats(broker, "default")).pending == 1
    keyed = {"name": "report.build", "args": ["x"], "unique_key": "day:d", "unique_for": 600}
    batch = await api.post("/v1/tasks/batch", json={"tasks": [keyed, {**keyed, "args": ["y"]}]})
    first, second = (await batch.json())["ids"]
    assert first == second


async def test_bad_unique_fields_are_400(api: TestClient) -> None:
    for body in (
        {"name": "r", "unique_for": 0},
        {"name": "r", "unique_for": 5, "unique_until": "later"},
        {"name": "r", "unique_key": "k"},
        {"name": "r", "unique_key": "", "unique_for": 5},
    ):
        resp = await api.post("/v1/tasks", json=body)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["message"]


async def test_task_record_says_it_waits_on_a_concurrency_limit(
    api: TestClient, broker: Broker
) -> None:
    reg = TaskRegistry()

    @task(name="one.at.a.time", concurrency=1, registry=reg)
    async def handler() -> None:
        return None

    await flow.publish_limits(broker, ["default"], reg)
    ids = [(await (await api.post("/v1/tasks", json={"name": "one.at.a.time"})).json())["id"]
           for _ in range(2)]
    assert len((await broker.fetch("default", 10, "w")).tasks) == 1
    records = [await (await api.get(f"/v1/tasks/{i}")).json() for i in ids]
    waiting = [r for r in records if r["state"] == "pending"]
    assert len(waiting) == 1
    assert waiting[0]["waiting_on"] == "concurrency limit (one.at.a.time)"


async def test_queue_view_and_metrics_show_limits_and_hand_backs(
    api: TestClient, broker: Broker
) -> None:
    reg = TaskRegistry()

    @task(name="mail.send", rate_limit="50/s", concurrency=5, registry=reg)
    async def send(to: str) -> None:
        return None

    await flow.publish_limits(broker, ["default"], reg)
    await broker.enqueue([TaskSpec("mail.send", args=[str(i)]) for i in range(4)])
    assert len((await broker.fetch("default", 10, "w")).tasks) == 1  # 3 wait for a rate slot
    (view,) = (await (await api.get("/v1/queues")).json())["queues"]
    assert view["flow"]["limits"] == {"mail.send": "50/s, 5 at once"}
    assert view["flow"]["running_limited"] == {"mail.send": 1}
    assert (view["flow"]["waiting_rate"], view["flow"]["throttled_rate"]) == (3, 3)
    text = await (await api.get("/metrics")).text()
    samples = {
        (s.name, s.labels.get("queue"), s.labels.get("limit")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("spool_throttled_total", "default", "rate")] == 3
    assert samples[("spool_limited_waiting", "default", "rate")] == 3
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"spool_throttled", "spool_limited_waiting"} <= families
