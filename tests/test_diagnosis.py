"""Why isn't it moving? The rules on hand-made facts, then against the real server and HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from redis.asyncio import Redis
from test_http_support import api_client, make_broker

from engine import queues as queue_ops
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.diagnosis import QueueFacts, diagnose, diagnose_queue
from engine.embedded import EmbeddedServer
from engine.task import TaskSpec
from engine.worker import registry


def _codes(f: QueueFacts) -> list[str]:
    return [r.code for r in diagnose(f).reasons]


def test_an_empty_queue_moves_with_no_reason() -> None:
    d = diagnose(QueueFacts("q", pending=0, scheduled=0, active=0, paused=False))
    assert d.moving and d.reasons == () and d.sentence == "moving"


def test_each_rule_from_facts() -> None:
    base = {"queue": "q", "scheduled": 0, "active": 0, "paused": False}
    f = QueueFacts(pending=5, consumers=1, slots=4, **base)
    assert diagnose(f).moving and _codes(f) == []
    paused = QueueFacts(pending=5, consumers=1, slots=4, **{**base, "paused": True})
    assert not diagnose(paused).moving and _codes(paused) == ["paused"]
    none = QueueFacts(pending=5, **base)
    assert not diagnose(none).moving and _codes(none) == ["no_consumer"]
    assert "5 pending" in diagnose(none).sentence
    busy = QueueFacts(pending=600, consumers=2, slots=8, in_flight=8, drain_per_s=100, **base)
    d = diagnose(busy)
    assert d.moving and _codes(busy) == ["saturated"]
    assert "all 8 slots busy, 600 waiting; ~6 s to drain" in d.sentence
    later = QueueFacts(
        pending=0, consumers=1, slots=4, next_due_in_s=250, **{**base, "scheduled": 3}
    )
    assert not diagnose(later).moving and diagnose(later).sentence == (
        "3 scheduled, none due: next due in 4 min 10 s"
    )
    limited = QueueFacts(pending=9, consumers=1, slots=4, waiting_rate=7, **base)
    assert diagnose(limited).moving and _codes(limited) == ["limited"]
    crashing = QueueFacts(pending=1, consumers=1, slots=4, lease_expired=2, **base)
    assert _codes(crashing) == ["crash_loop"]
    full = QueueFacts(pending=1, consumers=1, slots=4, memory_used=99, memory_max=100, **base)
    assert not diagnose(full).moving and _codes(full) == ["memory_full"]


def test_no_handler_blocks_only_when_no_next_task_can_run() -> None:
    base = {"queue": "q", "pending": 4, "scheduled": 0, "active": 0, "paused": False}
    fleet = {"consumers": 1, "slots": 4, "handled_names": frozenset({"a"})}
    only_b = QueueFacts(pending_names=frozenset({"b"}), **fleet, **base)
    assert not diagnose(only_b).moving
    assert diagnose(only_b).sentence == "no live worker can run b"
    mixed = QueueFacts(pending_names=frozenset({"a", "b"}), **fleet, **base)
    assert diagnose(mixed).moving and _codes(mixed) == ["no_handler"]
    unknown = QueueFacts(pending_names=frozenset({"b"}), **{**fleet, "handled_names": None}, **base)
    assert _codes(unknown) == []  # a worker that did not announce its handlers may run b


def _worker(queue: str, tasks: tuple[str, ...], in_flight: int = 0) -> registry.WorkerRecord:
    now = time.time()
    return registry.WorkerRecord(
        id=f"h:1:{queue}", host="h", pid=1, queues=(queue,), concurrency=2, in_flight=in_flight,
        processed=0, failed=0, started_at_s=now - 5, last_seen_s=now, version="t", tasks=tasks,
    )  # fmt: skip


async def test_diagnosis_from_the_server(redis: Redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await broker.enqueue([TaskSpec("mail.send", queue="mail") for _ in range(3)])
    d = await diagnose_queue(broker, "mail")
    assert not d.moving and [r.code for r in d.reasons] == ["no_consumer"]
    assert d.oldest_pending_age_s is not None and 0 <= d.oldest_pending_age_s < 60
    await registry.heartbeat(broker, _worker("mail", ("report.build",)))
    d = await diagnose_queue(broker, "mail")
    assert [r.code for r in d.reasons] == ["no_handler"] and "mail.send" in d.sentence
    await registry.heartbeat(broker, _worker("mail", ("mail.send",), 2))
    d = await diagnose_queue(broker, "mail", drain_per_s=3.0)
    assert d.moving and [r.code for r in d.reasons] == ["saturated"]
    await queue_ops.pause(broker, "mail")
    assert [r.code for r in (await diagnose_queue(broker, "mail")).reasons] == [
        "paused",
        "saturated",
    ]
    await broker.enqueue([TaskSpec("mail.send", queue="later", delay_s=90)])
    await registry.heartbeat(broker, _worker("later", ("mail.send",)))
    d = await diagnose_queue(broker, "later")
    assert not d.moving and d.reasons[0].code == "scheduled_only"
    assert re.search(r"next due in 1 min (2\d|30) s$", d.sentence), d.sentence


async def test_redis_down_is_a_diagnosis_not_an_error(
    embedded_server_factory: Callable[..., EmbeddedServer],
) -> None:
    server = embedded_server_factory()
    client = await open_redis(server.url)
    try:
        broker = Broker(client, EngineConfig(prefix="diag"))
        await broker.enqueue([TaskSpec("x", queue="q")])
        server.stop()
        d = await diagnose_queue(broker, "q")
        assert not d.moving and d.reasons[0].code == "redis_down"
        assert d.sentence.startswith("Redis unreachable: ")
    finally:
        await client.aclose()


async def test_http_serves_the_diagnosis(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec("mail.send", queue="mail")])
    async with api_client(broker) as api:
        resp = await api.get("/v1/queues/mail/diagnosis")
        assert resp.status == 200
        doc = await resp.json()
        assert 0 <= doc.pop("oldest_pending_age_s") < 60
        assert doc == {
            "queue": "mail",
            "moving": False,
            "reasons": [
                {"code": "no_consumer", "message": "no live worker reads this queue (1 pending)"}
            ],
        }
        empty = await (await api.get("/v1/queues/idle/diagnosis")).json()
        assert empty == {
            "queue": "idle",
            "moving": True,
            "reasons": [],
            "oldest_pending_age_s": None,
        }
        bad = await api.get("/v1/queues/a%20b/diagnosis")
        assert bad.status == 400
