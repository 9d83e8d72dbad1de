"""Task declarations (`@task`), the registry workers look handlers up in, and task records."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from engine.limits import FlowLimits, limits_for

F = TypeVar("F", bound=Callable[..., Any])


class TaskState(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    SCHEDULED = "scheduled"  # delayed, not yet due
    ACTIVE = "active"  # running under a lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the last attempt failed; a retry is scheduled
    DEAD = "dead"
    CANCELLED = "cancelled"  # removed before it ran, or stopped while running; kept like a result


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A registered handler and its declared defaults (None: not declared).

    `queue`, `priority`, `max_retries` and `timeout_s` are what an enqueue that leaves them out
    gets; `every_s` / `cron` (with `tz`) make it periodic.
    """

    name: str
    fn: Callable[..., Any]
    is_async: bool
    timeout_s: float | None
    max_retries: int | None
    queue: str | None
    priority: str | None
    wants_context: bool
    limits: FlowLimits | None = None
    every_s: float | None = None
    cron: str | None = None
    tz: str | None = None

    @property
    def periodic(self) -> bool:
        """True for a task the workers enqueue on a schedule."""
        return self.every_s is not None or self.cron is not None


class TaskRegistry:
    """Maps task names to handlers. Workers take one; `@task` fills the default one."""

    def __init__(self) -> None:
        self._defs: dict[str, TaskDef] = {}

    def register(self, definition: TaskDef) -> None:
        """Add a handler; re-registering the same name replaces it (module reloads)."""
        self._defs[definition.name] = definition

    def get(self, name: str) -> TaskDef | None:
        """The handler registered under `name`, if any."""
        return self._defs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._defs

    def __iter__(self) -> Iterator[TaskDef]:
        return iter(list(self._defs.values()))

    def names(self) -> list[str]:
        """Registered task names, sorted."""
        return sorted(self._defs)


default_registry = TaskRegistry()


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a handler may learn about the run it is in (declare a `ctx` keyword to get it).

    `cancelled` turns true when someone cancels the task while it runs: a plain (threaded)
    handler cannot be interrupted, so a long one should look at it now and then and return.
    """

    id: str
    queue: str
    name: str
    attempt: int
    max_retries: int
    cancel_event: threading.Event | None = field(default=None, repr=False, compare=False)

    @property
    def cancelled(self) -> bool:
        """True once a cancel of this task was requested."""
        return self.cancel_event is not None and self.cancel_event.is_set()


def task(
    name: str | None = None,
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
    queue: str | None = None,
    priority: str | None = None,
    registry: TaskRegistry | None = None,
    rate_limit: str | None = None,
    rate_burst: int = 1,
    concurrency: int | None = None,
    concurrency_key: str | None = None,
    every: float | None = None,
    cron: str | None = None,
    tz: str | None = None,
) -> Callable[[F], F]:
    """Declare a handler. Works on async and plain functions; returns the function unchanged.

    `queue`, `priority`, `max_retries` and `timeout` are the defaults of every enqueue of this
    task (the Python client, HTTP, the console); explicit values there win. `every` (seconds)
    or `cron` (a crontab line, UTC unless `tz` names a zone) make it periodic: the workers that
    have it enqueue it once per tick, fleet-wide (see `engine.schedule`).

    A handler that declares a keyword parameter named `ctx` receives a `TaskContext`.
    Fleet-wide limits (enforced by the server, see engine/flow.py): `rate_limit="50/s"`
    (`N/s`, `N/m`, `N/h`; `rate_burst` tasks may run back to back), `concurrency=5` at once,
    or with `concurrency_key="account"` that many at once per value of that argument.
    """
    if every is not None and cron is not None:
        raise ValueError("give every or cron, not both")
    if every is not None and not every > 0:
        raise ValueError(f"every must be a positive number of seconds, got {every!r}")
    if tz is not None and cron is None:
        raise ValueError("tz applies to cron schedules only")
    if cron is not None:
        from engine.schedule import validate_cron

        validate_cron(cron, tz)

    def decorate(fn: F) -> F:
        params = inspect.signature(fn).parameters
        limits = limits_for(fn, rate_limit, concurrency, concurrency_key, rate_burst)
        definition = TaskDef(
            name=name or f"{fn.__module__}.{fn.__qualname__}",
            fn=fn,
            is_async=asyncio.iscoroutinefunction(fn),
            timeout_s=timeout,
            max_retries=max_retries,
            queue=queue,
            priority=priority,
            wants_context="ctx" in params,
            limits=limits,
            every_s=None if every is None else float(every),
            cron=cron,
            tz=tz,
        )
        if definition.periodic:
            from engine.declared import check_arguments

            try:
                check_arguments(definition, (), {})
            except TypeError as exc:
                raise ValueError(f"a periodic task is called without arguments: {exc}") from None
        (registry or default_registry).register(definition)
        fn.__spool_task__ = definition  # type: ignore[attr-defined]
        return fn

    return decorate


@dataclass(slots=True)
class TaskSpec:
    """What a producer asks for. `delay_s` and `eta_s` (epoch seconds) are exclusive.

    `queue`, `priority`, `max_retries` and `timeout_s` left as None take the task's declared
    defaults (`@task(...)`), then the engine's.
    """

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: str | None = None
    max_retries: int | None = None
    timeout_s: float | None = None
    delay_s: float | None = None
    eta_s: float | None = None
    id: str | None = None
    received_at_ms: int | None = None
    # Unique tasks: within `unique_for` seconds, another enqueue with the same name and
    # arguments (or the same `unique_key`) returns this task's id; `unique_until="done"` also
    # ends the window when the task ends.
    unique_for: float | None = None
    unique_key: str | None = None
    unique_until: str = "window"


@dataclass(slots=True)
class FetchedTask:
    """A task handed to a worker under a lease. `decode_error` is set for corrupt payloads.

    Not frozen: one is built per task on the hot path, and frozen construction costs ~2x.
    """

    id: str
    queue: str
    name: str
    level: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    max_retries: int
    timeout_s: float | None
    enqueued_at_ms: float  # server clock, µs resolution
    fetched_at_ms: float
    token: str
    received_at_ms: int | None = None
    decode_error: str | None = None
    ready_at_ms: float | None = None  # a delayed, retried or reaped task became runnable
    trace_parent: str | None = None  # W3C traceparent of the enqueue's span (engine.tracing)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """Everything known about one task, for `Client.status`, the HTTP API and the console."""

    id: str
    queue: str
    state: TaskState
    name: str = ""
    priority: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    max_retries: int = 0
    result: Any = None
    error: str | None = None
    exc_type: str | None = None
    traceback: str | None = None
    reason: str | None = None
    enqueued_at_ms: int | None = None
    lease_deadline_ms: int | None = None
    due_at_ms: int | None = None
    died_at_ms: int | None = None
    finished_at_ms: int | None = None
    result_ttl_ms: int | None = None
    waiting_on: str | None = None  # "rate limit" / "concurrency limit ..." when held back

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (state as its string), omitting empty optional fields."""
        out: dict[str, Any] = {"id": self.id, "queue": self.queue, "state": str(self.state)}
        for key in (
            "name",
            "priority",
            "args",
            "kwargs",
            "attempts",
            "max_retries",
            "result",
            "error",
            "exc_type",
            "traceback",
            "reason",
            "enqueued_at_ms",
            "lease_deadline_ms",
            "due_at_ms",
            "died_at_ms",
            "finished_at_ms",
            "result_ttl_ms",
            "waiting_on",
        ):
            value = getattr(self, key)
            if value is not None and value != "":
                out[key] = value
        return out


class TaskCancelledError(RuntimeError):
    """Raised by `Client.result` for a task that was cancelled."""

    def __init__(self, info: TaskInfo) -> None:
        self.info = info
        super().__init__(f"task {info.id} ({info.name}) was cancelled")


class TaskDeadError(RuntimeError):
    """Raised by `Client.result` for a task that ended in the dead-letter queue."""

    def __init__(self, info: TaskInfo) -> None:
        self.info = info
        super().__init__(
            f"task {info.id} ({info.name}) is dead after {info.attempts} attempt(s): {info.error}"
        )
