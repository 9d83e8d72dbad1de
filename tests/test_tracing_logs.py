"""OpenTelemetry from enqueue to handler (the SDK's in-memory exporter), and the failed-attempt
log line: WARNING, with the task's fields in JSON, never its arguments."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.asyncio import Redis
from test_http_support import make_broker

from engine import tracing
from engine.config import EngineConfig
from engine.logs import JsonFormatter
from engine.task import TaskDef, TaskRegistry, TaskSpec
from engine.worker.handler import HandlerRunner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()


async def _ok(x: int) -> int:
    return x


async def _boom(secret: str) -> None:
    raise ValueError("card declined")


def _runner() -> HandlerRunner:
    registry = TaskRegistry()
    for name, fn in (("ok", _ok), ("boom", _boom)):
        registry.register(TaskDef(name, fn, True, None, None, "default", "default", False))
    return HandlerRunner(
        EngineConfig(max_retries=1),
        registry,
        "w-test",
        default_timeout_s=None,
        threads=1,
        clock=time.monotonic,
    )


async def test_a_trace_goes_from_the_enqueue_to_the_handler(
    redis: Redis, prefix: str, spans: InMemorySpanExporter
) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec("ok", args=[1], queue="jobs"), TaskSpec("boom", ["s"],
                                                                           queue="jobs")])
    fetched = (await broker.fetch("jobs", 10, "w-test")).tasks
    assert all(t.trace_parent for t in fetched)
    runner = _runner()
    for t in fetched:
        await runner.run(t, 0)
    runner.shutdown()
    finished = spans.get_finished_spans()
    producers = {s.name: s for s in finished if s.kind == SpanKind.PRODUCER}
    consumers = {s.name: s for s in finished if s.kind == SpanKind.CONSUMER}
    assert set(producers) == {"ok publish", "boom publish"}
    assert set(consumers) == {"ok process", "boom process"}
    for name in ("ok", "boom"):
        prod, cons = producers[f"{name} publish"], consumers[f"{name} process"]
        assert cons.context.trace_id == prod.context.trace_id  # one trace
        assert cons.parent is not None and cons.parent.span_id == prod.context.span_id
        assert [link.context.span_id for link in cons.links] == [prod.context.span_id]
        assert prod.attributes["messaging.destination.name"] == "jobs"
    assert consumers["boom process"].status.status_code == StatusCode.ERROR
    assert "card declined" in (consumers["boom process"].status.description or "")
    assert consumers["ok process"].status.status_code != StatusCode.ERROR


async def test_without_tracing_nothing_is_carried(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec("ok", args=[1], queue="jobs")])
    (t,) = (await broker.fetch("jobs", 1, "w-test")).tasks
    assert t.trace_parent is None


async def test_a_failed_attempt_is_a_warning_with_fields_not_arguments(
    redis: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(redis, prefix, max_retries=1)
    await broker.enqueue([TaskSpec("boom", ["4111-1111-1111-1111"], queue="pay")])
    (t,) = (await broker.fetch("pay", 1, "w-test")).tasks
    runner = _runner()
    with caplog.at_level(logging.WARNING, logger="spool.task"):
        outcome, _, _ = await runner.run(t, 0)
    runner.shutdown()
    assert outcome.kind == "r"
    (record,) = [r for r in caplog.records if r.name == "spool.task"]
    assert record.levelno == logging.WARNING
    doc = orjson.loads(JsonFormatter().format(record))
    assert (doc["task_id"], doc["queue"], doc["task"], doc["attempt"]) == (t.id, "pay", "boom", 1)
    assert "ValueError: card declined" in doc["msg"] and "retrying" in doc["msg"]
    assert "4111" not in doc["msg"]


def test_without_the_extra_everything_works_and_enable_says_what_to_install() -> None:
    """opentelemetry made unimportable: the engine imports and `enable()` names the extra."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import engine.broker, engine.worker.handler, engine.tracing as t\n"
        "try:\n    t.enable()\nexcept RuntimeError as e:\n    print(e)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "pip install 'spool-console[otel]'" in res.stdout
