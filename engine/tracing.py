"""OpenTelemetry traces, optional (`pip install 'spool-console[otel]'`), off until `enable()`.

A producer span per enqueued task ("<name> publish", kind PRODUCER) whose W3C `traceparent`
travels in the task's payload; the worker runs the handler inside a consumer span ("<name>
process", kind CONSUMER) that is the producer span's child and links to it, so a trace goes
from the code that enqueued to the handler that ran, across processes and retries.

Nothing of OpenTelemetry is imported until `enable()` is called: without the extra, and in a
process that never enables tracing, the hot paths pay one `is None` test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.task import FetchedTask, TaskSpec

#: The tracer once `enable()` ran, else None (checked on every enqueue and every run).
tracer: Any = None
_propagator: Any = None


def enable(tracer_provider: Any = None) -> None:
    """Trace enqueues and handler runs with `tracer_provider` (default: the global one).

    Raises `RuntimeError` with the install command when the extra is missing.
    """
    global tracer, _propagator
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        raise RuntimeError(
            "OpenTelemetry is not installed: pip install 'spool-console[otel]'"
        ) from None
    tracer = trace.get_tracer("spool", tracer_provider=tracer_provider)
    _propagator = TraceContextTextMapPropagator()


def disable() -> None:
    """Stop tracing (tests; a process that wants its hot path back)."""
    global tracer, _propagator
    tracer = _propagator = None


@contextlib.contextmanager
def producer_spans(specs: Sequence[TaskSpec]) -> Iterator[list[str | None]]:
    """One PRODUCER span per spec around the enqueue; yields each one's `traceparent`."""
    if tracer is None:
        yield [None] * len(specs)
        return
    from opentelemetry.trace import SpanKind, set_span_in_context

    spans = []
    parents: list[str | None] = []
    for spec in specs:
        span = tracer.start_span(
            f"{spec.name} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "spool",
                "messaging.operation.type": "publish",
                "messaging.destination.name": spec.queue,
                "spool.task.name": spec.name,
            },
        )
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=set_span_in_context(span))
        spans.append(span)
        parents.append(carrier.get("traceparent"))
    try:
        yield parents
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(_error(str(exc)))
        raise
    finally:
        for span in spans:
            span.end()


@contextlib.contextmanager
def consumer_span(task: FetchedTask) -> Iterator[Any]:
    """A CONSUMER span around one handler run, child of and linked to the producer span."""
    from opentelemetry.trace import Link, SpanKind, get_current_span

    parent = None
    links = []
    if task.trace_parent:
        parent = _propagator.extract({"traceparent": task.trace_parent})
        producer = get_current_span(parent).get_span_context()
        if producer.is_valid:
            links.append(Link(producer))
    attributes = {
        "messaging.system": "spool",
        "messaging.operation.type": "process",
        "messaging.destination.name": task.queue,
        "messaging.message.id": task.id,
        "spool.task.name": task.name,
        "spool.attempt": task.attempt,
    }
    with tracer.start_as_current_span(
        f"{task.name} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def record_failure(span: Any, exc_type: str, error: str) -> None:
    """Mark the consumer span failed with the attempt's error."""
    span.set_attribute("error.type", exc_type)
    span.set_status(_error(f"{exc_type}: {error}"))


def _error(message: str) -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, message)
