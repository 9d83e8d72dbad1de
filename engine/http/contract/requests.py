"""Request bodies and query strings of the HTTP API, with the limits msgspec enforces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from engine.task import TaskSpec

#: Upper bounds keep arithmetic on the values finite (a 1e308 s delay overflows int()).
MAX_RETRIES = 1000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_DELAY_S = 366 * 24 * 3600.0
#: Epoch seconds up to the year 2200: beyond that an eta is a unit mistake (ms, µs).
MAX_ETA_S = 7_258_118_400.0
MAX_PAGE = 1000

Retries = Annotated[int, Meta(ge=0, le=MAX_RETRIES, description="retries after the first run")]
Timeout = Annotated[
    float, Meta(gt=0, le=MAX_TIMEOUT_S, description="seconds a run may take before it fails")
]
Delay = Annotated[float, Meta(ge=0, le=MAX_DELAY_S, description="seconds before it may run")]
Eta = Annotated[
    float, Meta(ge=0, le=MAX_ETA_S, description="epoch seconds when it may run (not with delay)")
]
PageSize = Annotated[int, Meta(ge=1, le=MAX_PAGE, description="page size")]


class Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused (a typo must not be silently ignored)."""


class Query(Struct, kw_only=True):
    """A query string: unknown parameters are ignored, as HTTP clients and proxies add some."""


class TaskRequest(Body):
    """One task to enqueue. null in an optional field means its default."""

    name: Annotated[
        str, Meta(description="registered task name: 1-200 characters, no whitespace or quotes")
    ]
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: (
        Annotated[str, Meta(description="queue name (absent: the task's declared queue, else "
                            "default)")]
        | None
    ) = None
    priority: (
        Annotated[str, Meta(description="a level of the queue (high, default, low unless "
                            "configured; absent: the task's declared priority, else the "
                            "middle level)")]
        | None
    ) = None
    max_retries: Retries | None = None
    timeout: Timeout | None = None
    delay: Delay | None = None
    eta: Eta | None = None
    id: (
        Annotated[
            str,
            Meta(description="your own id (1-200 characters, no whitespace or '|'): "
                 "enqueueing a known id again is a no-op"),
        ]
        | None
    ) = None
    unique_for: (
        Annotated[
            float,
            Meta(gt=0, le=MAX_DELAY_S, description="seconds during which an equal task (same "
                 "name and arguments, or same unique_key) is not stored again: its id is returned"),
        ]
        | None
    ) = None
    unique_key: (
        Annotated[
            str, Meta(min_length=1, max_length=500, description="what makes tasks equal "
                      "(instead of name and arguments); needs unique_for"),
        ]
        | None
    ) = None
    unique_until: (
        Annotated[
            Literal["window", "done"],
            Meta(description="'done' also ends the window when the first task ends"),
        ]
        | None
    ) = None
    durable: (
        Annotated[
            bool,
            Meta(description="answer only once a replica (or the AOF on disk) has the task; "
                 "503 when that is not confirmed within 1 s (in a batch: any item makes the "
                 "whole batch durable)"),
        ]
        | None
    ) = None

    def to_spec(self, received_at_ms: int | None = None) -> TaskSpec:
        """The engine's `TaskSpec` of this request (null fields take their defaults)."""
        return TaskSpec(
            name=self.name,
            args=self.args or [],
            kwargs=self.kwargs or {},
            # Absent or null: the task's declared option, else the engine's default. "" is
            # passed on for the engine to refuse as a name.
            queue=self.queue,
            priority=self.priority,
            max_retries=self.max_retries,
            timeout_s=self.timeout,
            delay_s=self.delay,
            eta_s=self.eta,
            id=self.id,
            received_at_ms=received_at_ms,
            unique_for=self.unique_for,
            unique_key=self.unique_key,
            unique_until=self.unique_until or "window",
        )


class BatchRequest(Body):
    """Tasks enqueued all or nothing (the item limit is the server's `max_batch`)."""

    tasks: list[TaskRequest]


class RequeueRequest(Body):
    """Either `ids` (with `queue` optional) or `all: true` with a `queue` and optional filters."""

    ids: list[Annotated[str, Meta(min_length=1)]] | None = None
    # `Literal[True]` would say it, but msgspec 0.20 and older refuse bool literals: the schema says
    # const true and `requeue_scope` refuses false.
    all: Annotated[bool, Meta(extra_json_schema={"const": True})] | None = None
    queue: str | None = None
    task: Annotated[str, Meta(description="exact task name (with all)")] | None = None
    error: Annotated[str, Meta(description="substring of the error (with all)")] | None = None
    until_ms: (
        Annotated[
            int,
            Meta(
                ge=0,
                description="with all: only letters that died at or before this time (ms since "
                "the epoch), e.g. when a scope was counted and shown; the request's arrival "
                "is the cut-off either way",
            ),
        ]
        | None
    ) = None


class RestoreRequest(Body):
    """Which delete to undo: the token its reply (or its audit entry) carries."""

    undo: Annotated[str, Meta(description="undo token: 13-digit expiry ms, '-', 8 hex digits")]


class TaskQuery(Query):
    """Query of GET /v1/tasks/{id} and DELETE /v1/dead/{id}."""

    queue: Annotated[str, Meta(description="the task's queue (faster; else searched)")] | None = (
        None
    )


class TaskWaitQuery(TaskQuery):
    """Query of GET /v1/tasks/{id}."""

    wait: (
        Annotated[
            float,
            Meta(ge=0, le=30, description="seconds to wait for the task to end (at most 30); "
                 "the answer comes as soon as it ends, else its state when the time is up"),
        ]
        | None
    ) = None


class DeadFilterQuery(Query):
    """Filters of the dead-letter routes."""

    queue: Annotated[str, Meta(description="only this queue")] | None = None
    task: Annotated[str, Meta(description="exact task name")] | None = None
    error: Annotated[str, Meta(description="case-insensitive substring of the error")] | None = (
        None
    )


class DeadListQuery(DeadFilterQuery):
    """Filters and paging of GET /v1/dead."""

    limit: PageSize = 50
    cursor: Annotated[str, Meta(description="from the previous page")] | None = None


class AuditQuery(Query):
    """Query of GET /v1/audit."""

    limit: PageSize = 50
