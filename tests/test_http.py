"""The HTTP ingress against the real server: every route's success path."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest_asyncio
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from support.polling import wait_for
from test_http_support import api_client, bury, make_broker

from engine import queues as queue_ops
from engine.broker import Broker
from engine.metrics.publisher import SnapshotPublisher
from engine.metrics.recorder import MetricsRecorder
from engine.task import TaskState
from engine.worker import registry


@pytest_asyncio.fixture
async def broker(redis: Redis, prefix: str) -> Broker:
    return make_broker(redis, prefix)


@pytest_asyncio.fixture
async def api(broker: Broker) -> AsyncIterator[TestClient]:
    async with api_client(broker) as client:
        yield client


async def test_post_task_stores_it_with_every_field(api: TestClient, broker: Broker) -> None:
    before = time.time_ns() // 1_000_000
    body = {
        "name": "mail.send",
        "args": [1, "a"],
        "kwargs": {"to": "x"},
        "queue": "mail",
        "priority": "high",
        "max_retries": 5,
        "timeout": 2.5,
        "id": "my-id-1",
    }
    resp = await api.post("/v1/tasks", data=orjson.dumps(body))
    assert resp.status == 201
    assert await resp.json() == {"id": "my-id-1"}
    info = await queue_ops.task_status(broker, "my-id-1")
    assert info is not None
    assert (info.queue, info.name, info.priority, info.state) == (
        "mail",
        "mail.send",
        "high",
        TaskState.PENDING,
    )
    assert (info.args, info.kwargs, info.max_retries) == ([1, "a"], {"to": "x"}, 5)
    (task,) = (await broker.fetch("mail", 1, "w")).tasks
    assert task.timeout_s == 2.5
    # Stamped at arrival so the worker can measure the ingress stage.
    assert task.received_at_ms is not None
    assert before <= task.received_at_ms <= time.time_ns() // 1_000_000


async def test_post_task_with_delay_is_scheduled(api: TestClient, broker: Broker) -> None:
    resp = await api.post("/v1/tasks", json={"name": "later", "delay": 60})
    info = await queue_ops.task_status(broker, (await resp.json())["id"])
    assert info is not None and info.state is TaskState.SCHEDULED


async def test_batch_is_stored_across_queues(api: TestClient, broker: Broker) -> None:
    tasks = [{"name": f"t{i}", "queue": "a" if i % 2 else "b"} for i in range(10)]
    resp = await api.post("/v1/tasks/batch", json={"tasks": tasks})
    assert resp.status == 201
    ids = (await resp.json())["ids"]
    assert len(set(ids)) == 10
    stats = {s.queue: s.pending for s in await queue_ops.all_queue_stats(broker)}
    assert stats == {"a": 5, "b": 5}
    assert (await (await api.post("/v1/tasks/batch", json={"tasks": []})).json()) == {"ids": []}


async def test_batch_is_all_or_nothing(api: TestClient, broker: Broker) -> None:
    tasks = [{"name": "ok"}, {"name": "bad", "priority": "nope"}]
    resp = await api.post("/v1/tasks/batch", json={"tasks": tasks})
    assert resp.status == 400
    assert "nope" in (await resp.json())["error"]["message"]
    assert await broker.known_queues() == []


async def test_get_task_and_404(api: TestClient) -> None:
    task_id = (await (await api.post("/v1/tasks", json={"name": "x"})).json())["id"]
    resp = await api.get(f"/v1/tasks/{task_id}")
    assert resp.status == 200
    body = await resp.json()
    assert (body["id"], body["state"], body["name"], body["queue"]) == (
        task_id,
        "pending",
        "x",
        "default",
    )
    assert "enqueued_at_ms" in body
    assert (await api.get(f"/v1/tasks/{task_id}?queue=default")).status == 200
    assert (await api.get("/v1/tasks/unknown-id")).status == 404


async def test_an_invalid_queue_name_is_a_400_on_task_routes(api: TestClient) -> None:
    for resp in (
        await api.get("/v1/tasks/some-id?queue=a%7Bb"),
        await api.post("/v1/tasks/some-id/cancel?queue=a%7Bb"),
    ):
        body = await resp.json()
        assert resp.status == 400, body
        assert body["error"]["code"] == "invalid_request"
        assert "invalid queue name 'a{b'" in body["error"]["message"]


async def test_queues_pause_and_resume(api: TestClient) -> None:
    await api.post("/v1/tasks", json={"name": "x", "queue": "q1", "priority": "low"})
    (q,) = (await (await api.get("/v1/queues")).json())["queues"]
    assert q["queue"] == "q1" and q["depth"] == {"high": 0, "default": 0, "low": 1}
    assert (q["pending"], q["scheduled"], q["active"], q["dead"], q["paused"]) == (
        1,
        0,
        0,
        0,
        False,
    )
    resp = await api.post("/v1/queues/q1/pause")
    assert await resp.json() == {"queue": "q1", "paused": True}
    assert (await (await api.get("/v1/queues")).json())["queues"][0]["paused"] is True
    resp = await api.post("/v1/queues/q1/resume")
    assert await resp.json() == {"queue": "q1", "paused": False}
    assert (await (await api.get("/v1/queues")).json())["queues"][0]["paused"] is False


async def test_dead_list_filters_and_pages(api: TestClient, broker: Broker) -> None:
    a = await bury(broker, "resize", "disk full")
    b = await bury(broker, "mail", "smtp timeout")
    c = await bury(broker, "mail", "smtp timeout", queue="other")
    body = await (await api.get("/v1/dead")).json()
    assert {i["id"] for i in body["items"]} == {a, b, c} and body["cursor"] is None
    item = next(i for i in body["items"] if i["id"] == a)
    assert (item["name"], item["queue"], item["error"]) == ("resize", "jobs", "disk full")
    assert [i["id"] for i in (await (await api.get("/v1/dead?task=resize")).json())["items"]] == [a]
    got = (await (await api.get("/v1/dead?queue=jobs&error=SMTP")).json())["items"]
    assert [i["id"] for i in got] == [b]
    first = await (await api.get("/v1/dead?limit=2")).json()
    assert len(first["items"]) == 2 and first["cursor"]
    rest = await (await api.get(f"/v1/dead?limit=2&cursor={first['cursor']}")).json()
    assert {i["id"] for i in first["items"] + rest["items"]} == {a, b, c}
    assert rest["cursor"] is None


async def test_dead_groups(api: TestClient, broker: Broker) -> None:
    await bury(broker, "mail", "smtp timeout")
    await bury(broker, "mail", "smtp timeout", queue="other")
    await bury(broker, "resize", "disk full")
    groups = (await (await api.get("/v1/dead/groups")).json())["groups"]
    assert [g["count"] for g in groups] == [2, 1]
    assert groups[0]["queues"] == ["jobs", "other"] and groups[0]["tasks"] == ["mail"]
    assert len((await (await api.get("/v1/dead/groups?queue=other")).json())["groups"]) == 1


async def test_requeue_by_ids_with_and_without_queue(api: TestClient, broker: Broker) -> None:
    a = await bury(broker, "x", "boom")
    b = await bury(broker, "x", "boom", queue="other")
    resp = await api.post("/v1/dead/requeue", json={"ids": [a, b, "unknown"]})
    assert await resp.json() == {"requeued": 2}
    for task_id in (a, b):
        info = await queue_ops.task_status(broker, task_id)
        assert info is not None and info.state is TaskState.PENDING
    c = await bury(broker, "x", "boom", queue="third")  # (other's pending list holds b now)
    resp = await api.post("/v1/dead/requeue", json={"ids": [c], "queue": "jobs"})
    assert await resp.json() == {"requeued": 0}  # c is not in jobs
    resp = await api.post("/v1/dead/requeue", json={"ids": [c], "queue": "third"})
    assert await resp.json() == {"requeued": 1}


async def test_requeue_all_matching(api: TestClient, broker: Broker) -> None:
    await bury(broker, "mail", "smtp timeout")
    await bury(broker, "mail", "disk full")
    await bury(broker, "resize", "disk full")
    other = await bury(broker, "mail", "disk full", queue="other")
    body = {"all": True, "queue": "jobs", "task": "mail", "error": "DISK"}
    moved = {"requeued": 1, "newer_left": 0}
    assert await (await api.post("/v1/dead/requeue", json=body)).json() == moved
    body = {"all": True, "queue": "jobs"}
    moved = {"requeued": 2, "newer_left": 0}
    assert await (await api.post("/v1/dead/requeue", json=body)).json() == moved
    info = await queue_ops.task_status(broker, other)
    assert info is not None and info.state is TaskState.DEAD


async def test_requeue_all_acts_on_what_died_by_until_ms(api: TestClient, broker: Broker) -> None:
    shown = await bury(broker, "mail", "smtp timeout")
    seconds, micros = await broker.redis.time()
    counted_at_ms = int(seconds) * 1000 + int(micros) // 1000
    await wait_for(
        lambda: _server_ms(broker, after=counted_at_ms), timeout_s=2, what="the next ms"
    )
    newer = await bury(broker, "mail", "smtp timeout")
    body = {"all": True, "queue": "jobs", "until_ms": counted_at_ms}
    assert await (await api.post("/v1/dead/requeue", json=body)).json() == {
        "requeued": 1,
        "newer_left": 1,
    }
    states = [(await queue_ops.task_status(broker, t)).state for t in (shown, newer)]
    assert states == [TaskState.PENDING, TaskState.DEAD]
    body = {"ids": [newer], "until_ms": counted_at_ms}
    resp = await api.post("/v1/dead/requeue", json=body)
    assert resp.status == 400 and "until_ms" in (await resp.json())["error"]["message"]


async def _server_ms(broker: Broker, after: int) -> bool:
    seconds, micros = await broker.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000 > after


async def test_delete_dead(api: TestClient, broker: Broker) -> None:
    a = await bury(broker, "x", "boom")
    b = await bury(broker, "x", "boom", queue="other")
    first = await (await api.delete(f"/v1/dead/{a}")).json()
    assert first["deleted"] == 1 and first["restorable_until_ms"] > time.time() * 1000
    assert first["undo"].startswith(str(first["restorable_until_ms"]))
    second = await (await api.delete(f"/v1/dead/{b}?queue=other")).json()
    assert second["deleted"] == 1 and second["undo"] != first["undo"]
    assert (await api.delete(f"/v1/dead/{a}")).status == 404
    assert await queue_ops.task_status(broker, a) is None


async def test_workers(api: TestClient, broker: Broker) -> None:
    now = time.time()
    record = registry.WorkerRecord(
        id="h:1:abc",
        host="h",
        pid=1,
        queues=("default",),
        concurrency=4,
        in_flight=1,
        processed=10,
        failed=1,
        started_at_s=now - 5,
        last_seen_s=now,
        version="t",
    )
    await registry.heartbeat(broker, record)
    (w,) = (await (await api.get("/v1/workers")).json())["workers"]
    assert (w["id"], w["queues"], w["concurrency"]) == ("h:1:abc", ["default"], 4)


async def test_stats_and_metrics_show_the_fleet(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    recorder = MetricsRecorder("ingress-test")
    async with api_client(broker, recorder=recorder) as api:
        empty = await (await api.get("/v1/stats")).json()
        assert empty["processes"] == 0 and empty["counters"] == {}
        await api.post("/v1/tasks", json={"name": "x", "queue": "q"})
        await api.post("/v1/tasks/batch", json={"tasks": [{"name": "y", "queue": "q"}] * 3})
        await SnapshotPublisher(redis, prefix, recorder.worker_id, recorder).publish_once()
        stats = await (await api.get("/v1/stats")).json()
        assert stats["processes"] == 1
        assert stats["counters"]["enqueued"]["total"] == 4
        assert stats["counters"]["enqueued"]["per_queue"] == {"q": 4}
        enqueue = stats["stages"]["enqueue"]
        assert set(enqueue) == {"10s", "60s", "300s", "all"}
        assert enqueue["all"]["count"] == 2  # one Redis write per request
        assert set(enqueue["all"]) == {"count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"}
        assert "histogram" not in orjson.dumps(stats).decode()
        resp = await api.get("/metrics")
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
        (sample,) = families["spool_tasks_enqueued"].samples
        assert sample.value == 4 and sample.labels == {"queue": "q"}


async def test_own_recorder_is_published(redis: Redis, prefix: str) -> None:
    """Without a pool or recorder the app publishes its own metrics, so the fleet sees them."""
    async with api_client(make_broker(redis, prefix)) as api:
        assert (await api.post("/v1/tasks", json={"name": "x"})).status == 201
        # The app published once before serving.
        assert len([k async for k in redis.scan_iter(match=f"{prefix}:stats:http:*")]) == 1


async def test_probes_and_openapi(api: TestClient) -> None:
    assert await (await api.get("/healthz")).json() == {"status": "ok"}
    assert await (await api.get("/readyz")).json() == {"status": "ready"}
    doc = await (await api.get("/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")


async def test_audit_log_lists_the_api_s_own_actions_newest_first(
    api: TestClient, broker: Broker
) -> None:
    doomed = await bury(broker, "mail", "smtp timeout")
    assert (await api.post("/v1/queues/jobs/pause")).status == 200
    assert (await api.delete(f"/v1/dead/{doomed}")).status == 200
    entries = (await (await api.get("/v1/audit")).json())["entries"]
    assert [(e["action"], e["scope"], e["via"]) for e in entries] == [
        ("dead delete", f"jobs/{doomed}", "http"),
        ("pause", "queue jobs", "http"),
    ]
    assert entries[0]["held"] == 1 and entries[0]["undo"] and "undo" not in entries[1]
    assert entries[0]["at_ms"] >= entries[1]["at_ms"] > 0
    newest = (await (await api.get("/v1/audit?limit=1")).json())["entries"]
    assert [e["id"] for e in newest] == [entries[0]["id"]]
    resp = await api.get("/v1/audit?limit=0")
    assert resp.status == 400 and "limit" in (await resp.json())["error"]["message"]
