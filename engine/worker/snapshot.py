"""Plain frozen records the pool publishes for the console, the HTTP API and `--no-ui`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScalerDecision:
    """One change (or pin) of the pool's concurrency, with the inputs that caused it."""

    at_s: float
    old: int
    new: int
    reason: str
    backlog: int
    wait_p95_s: float | None
    busy_ratio: float

    @property
    def delta(self) -> int:
        """Signed change in concurrency."""
        return self.new - self.old


@dataclass(frozen=True, slots=True)
class SlotState:
    """What one concurrency slot is doing."""

    index: int
    task_name: str | None
    task_id: str | None
    running_s: float


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The local pool at one moment."""

    worker_id: str
    queues: tuple[str, ...]
    concurrency: int
    min_concurrency: int
    max_concurrency: int
    pinned: bool
    in_flight: int
    prefetched: int
    processed: int
    succeeded: int
    failed: int
    retried: int
    dead: int
    late_rejected: int
    stuck_threads: int
    slots: tuple[SlotState, ...]
    decisions: tuple[ScalerDecision, ...]
    uptime_s: float
    running: bool
    redis_ok: bool
    redis_error: str | None
    # Outcomes not written within their lease (or refused): the reaper brings those tasks back.
    given_up: int = 0
