"""Response bodies of the HTTP API, and their one encoder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

if TYPE_CHECKING:
    from engine.queues import QueueStats


class Reply(Struct, omit_defaults=True, kw_only=True):
    """A response body: optional fields that are empty are left out."""


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


class AuditView(Reply):
    """One operator action: when (epoch ms), what, on what, with what result, through what
    (`console`, `cli`, `http`) and by whom; a delete carries its undo token and how many
    letters it holds for restore."""

    id: str
    at_ms: int
    action: str
    scope: str
    result: str
    via: str
    host: str
    user: str
    undo: str = ""  # left out when empty, like held when 0 (omit_defaults)
    held: int = 0


class AuditLog(Reply):
    """Operator actions from the console, the CLI and this API, newest first."""

    entries: list[AuditView]


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


class Requeued(Reply):
    """How many dead letters went back to pending; with `all`, also how many matched the filters
    but died after the scope's cut-off and were left alone (`newer_left`)."""

    requeued: int
    newer_left: int | None = None


class Deleted(Reply):
    """How many dead letters were deleted, and the undo token that restores them until
    `restorable_until_ms` (both absent when the restore window is 0: deletes are final)."""

    deleted: int
    undo: str | None = None
    restorable_until_ms: int | None = None


class Restored(Reply, omit_defaults=False):
    """How many deleted dead letters came back, and how many stayed deleted because their id
    is in use again (enqueued anew since the delete)."""

    restored: int
    id_in_use: int


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
