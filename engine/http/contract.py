"""Every request and response body of the HTTP API, declared once as msgspec Structs.

The server decodes request bodies and query strings straight into these types (msgspec checks
types, ranges and unknown fields in C) and the OpenAPI document is generated from them
(`engine.http.openapi`), so what is published is what is enforced. Names, queues, priorities
and ids are checked by the engine itself, which names the offending value.

To add a field: add it here (with its `Meta` limits) and read it where the request is turned
into an engine call. To add a route: declare its types here and one `Route` in `routes.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from engine.task import TaskSpec

if TYPE_CHECKING:
    from engine.queues import QueueStats

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


class Reply(Struct, omit_defaults=True, kw_only=True):
    """A response body: optional fields that are empty are left out."""


# ---- requests -------------------------------------------------------------------------------


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


# ---- responses ------------------------------------------------------------------------------


class ErrorDetail(Reply):
    """What went wrong: a stable code and a one-line message."""

    code: str
    message: str


class ErrorReply(Reply):
    """The one error shape of every 4xx/5xx."""

    error: ErrorDetail


TaskStateName = Literal[
    "pending", "scheduled", "active", "succeeded", "failed", "dead", "cancelled"
]


class CancelReply(Reply):
    """What a cancel did: `cancelled` is true when this request cancelled the task (a running
    one is stopped by its worker and ends `cancelled`); `state` is its state now."""

    id: str
    cancelled: bool
    state: TaskStateName | None = None


class ScheduleView(Reply):
    """One periodic task: its timing, queue, and last and next run (epoch ms)."""

    name: str
    queue: str
    next_run_ms: int
    every_s: float | None = None
    cron: str | None = None
    tz: str | None = None
    last_run_ms: int | None = None


class ScheduleList(Reply):
    """Every periodic task the workers run."""

    schedules: list[ScheduleView]


class Created(Reply):
    """The id of the stored task."""

    id: str


class CreatedBatch(Reply):
    """The ids of the stored tasks, in request order."""

    ids: list[str]




class TaskView(Reply):
    """One task's state and record (empty fields left out)."""

    id: str
    queue: str
    state: TaskStateName
    name: str | None = None
    priority: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    attempts: int | None = None
    max_retries: int | None = None
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
    waiting_on: (
        Annotated[str, Meta(description="why a waiting task is held back: a rate or "
                            "concurrency limit")]
        | None
    ) = None


class FlowView(Reply, omit_defaults=False):
    """Flow control on a queue: declared limits, what waits on them, hand-back counters."""

    limits: dict[str, str]
    running_limited: dict[str, int]
    waiting_rate: int
    waiting_concurrency: int
    throttled_rate: int
    throttled_concurrency: int
    starved_served: int
    max_wait_s: float | None
    unique_locks: int


class QueueView(Reply):
    """A queue's depths and state."""

    queue: str
    levels: list[str]
    depth: dict[str, int]
    pending: int
    scheduled: int
    active: int
    dead: int
    paused: bool
    late_rejected: int
    dead_evicted: int
    flow: FlowView | None = None


def queue_view(s: QueueStats) -> QueueView:
    """A queue's stats as the API (and `spool-console queues --json`) shows them."""
    return QueueView(
        queue=s.queue,
        levels=list(s.levels),
        depth=s.depth_by_level,
        pending=s.pending,
        scheduled=s.scheduled,
        active=s.active,
        dead=s.dead,
        paused=s.paused,
        late_rejected=s.late_rejected,
        dead_evicted=s.dead_evicted,
        flow=None if s.flow is None else msgspec.convert(s.flow, FlowView, from_attributes=True),
    )


class QueueList(Reply):
    """Every known queue."""

    queues: list[QueueView]


class QueueState(Reply):
    """A queue after pause or resume."""

    queue: str
    paused: bool


class DiagnosisReason(Reply):
    """One fact holding a queue back: a stable code (paused, no_consumer, no_handler,
    saturated, scheduled_only, limited, crash_loop, redis_down, memory_full) and a sentence."""

    code: str
    message: str


class QueueDiagnosis(Reply, omit_defaults=False):
    """Why a queue is (not) moving: `moving` is false when a reason blocks all progress."""

    queue: str
    moving: bool
    reasons: list[DiagnosisReason] = []
    oldest_pending_age_s: float | None = None  # of the next task out, across levels


class DeadView(Reply):
    """One dead letter, whole."""

    id: str
    queue: str
    name: str
    priority: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    error: str
    exc_type: str
    traceback: str
    reason: str
    worker: str
    fingerprint: str
    died_at_ms: int
    enqueued_at_ms: int | None = None


class DeadPage(Reply, omit_defaults=False):
    """A page of dead letters, newest first."""

    items: list[DeadView]
    cursor: Annotated[str, Meta(description="pass back for the next page")] | None = None


class DeadGroupView(Reply):
    """Dead letters sharing an error fingerprint."""

    fingerprint: str
    count: int
    first_seen_ms: int
    last_seen_ms: int
    sample_error: str
    tasks: list[str]
    queues: list[str]


class DeadGroups(Reply):
    """Dead letters grouped by error, largest group first."""

    groups: list[DeadGroupView]


class Requeued(Reply, omit_defaults=False):
    """How many dead letters went back to pending."""

    requeued: int


class Deleted(Reply, omit_defaults=False):
    """How many dead letters were deleted."""

    deleted: int


class Workers(Reply):
    """Live worker processes (one record each, as they publish it)."""

    workers: list[dict[str, Any]]


class Stats(Reply, omit_defaults=False):
    """Fleet metrics: per-stage percentiles per window, counters with rates, queue depths."""

    processes: int
    taken_at_s: float
    uptime_s: float
    dropped_samples: int
    stages: dict[str, Any]
    breakdowns: dict[str, Any]
    counters: dict[str, Any]
    depths: list[dict[str, Any]]
    rate_window_s: int | None = None


class Status(Reply):
    """A probe's answer."""

    status: str


#: One encoder for every response (msgspec encodes Structs without building dicts).
_encoder = msgspec.json.Encoder()


def encode(reply: Reply) -> bytes:
    """A response body as JSON bytes."""
    return _encoder.encode(reply)
