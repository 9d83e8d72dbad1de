"""Benchmark parameters: one frozen object per run, with per-type defaults from the spec."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.limits import parse_rate

TYPES = ("quick", "scalability", "profiled", "custom", "burst", "sustained", "latency")
#: Concurrency levels the scalability run walks through (per process).
SCALABILITY_LEVELS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# Per-type defaults (issue 5). Anything not listed falls back to the dataclass defaults.
# burst runs `spool.sleep:20` rather than no-ops: a no-op burst never keeps a slot busy long
# enough for the auto-scaler (which looks at busy slots and backlog once a second) to move,
# and showing the scaler's path is the point of the burst run.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": {"tasks": 1_000, "workers": 4},
    "scalability": {"tasks": 20_000, "levels": SCALABILITY_LEVELS},
    "profiled": {"tasks": 5_000, "workers": 16},
    "custom": {"tasks": 10_000, "workers": 16},
    "burst": {
        "tasks": 10_000,
        "rate": 1_000.0,
        "duration_s": 10.0,
        "workers": None,
        "min_workers": 5,
        "max_workers": 30,
        "task": "spool.sleep:20",
    },
    "sustained": {"rate": 5_000.0, "duration_s": 60.0, "workers": 16},
    # One worker process apart from the producer, as in the side-by-side runs against peers.
    "latency": {"rate": 500.0, "duration_s": 10.0, "workers": 16, "mem_probe_tasks": 0},
}


def parse_task(spec: str) -> tuple[str, list[Any]]:
    """Turn "spool.noop" | "spool.sleep:MS" | "spool.cpu:N" into (task name, args)."""
    name, _, arg = spec.partition(":")
    if name not in ("spool.noop", "spool.sleep", "spool.cpu"):
        raise ValueError(
            f"unknown benchmark task {spec!r}: spool.noop, spool.sleep:MS, spool.cpu:N"
        )
    if name == "spool.noop":
        if arg:
            raise ValueError("spool.noop takes no argument")
        return name, []
    if not arg:
        return name, []
    try:
        value: float | int = float(arg) if name == "spool.sleep" else int(arg)
    except ValueError:
        raise ValueError(f"bad argument in task spec {spec!r}") from None
    if value < 0:
        raise ValueError(f"negative argument in task spec {spec!r}")
    return name, [value]


@dataclass(frozen=True, slots=True)
class BenchParams:
    """Everything one benchmark run needs. Build with :meth:`for_type` to get the defaults.

    Drain mode (`rate` None): `tasks` are queued first, then the pool drains them; the
    throughput is the drain rate. Rate mode: an open-loop producer offers `rate` tasks/s for
    `duration_s` (the task count is then rate x duration). `workers` is the pinned concurrency
    per process; None runs the auto-scaler between `min_workers` and `max_workers`.
    """

    type: str = "custom"
    tasks: int = 10_000
    workers: int | None = 16
    min_workers: int = 5
    max_workers: int = 30
    rate: float | None = None
    duration_s: float = 10.0
    task: str = "spool.noop"
    processes: int = 1
    priority: str = "default"
    #: Low-priority tasks queued before the run (the "deep backlog" priority check).
    backlog_low: int = 0
    backlog_task: str = "spool.noop"
    #: Concurrency levels of the scalability run.
    levels: tuple[int, ...] = SCALABILITY_LEVELS
    #: Seconds to wait for every offered task to settle after the last one was offered.
    settle_timeout_s: float = 120.0
    #: Tasks enqueued on a side queue to measure Redis memory per queued task (0: skip).
    #: Enough that the hash tables' fixed part is not counted per task: on a fresh embedded
    #: server the same no-ops measured 213 B each at 10,000, 191 at 40,000, 185 at 100,000.
    mem_probe_tasks: int = 50_000
    #: Producer tick and the largest batch one enqueue call carries.
    tick_s: float = 0.002
    batch_max: int = 500
    #: Where profiled runs write cpu.prof and memory.txt (a temp dir when None).
    out_dir: str | None = None
    #: Seconds between over-time samples (RSS, p99, concurrency).
    sample_every_s: float = 1.0
    #: Fleet-wide limits declared on the offered task ("1000/s"; slots at once): their cost.
    rate_limit: str | None = None
    concurrency_limit: int | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown benchmark type {self.type!r}; one of {', '.join(TYPES)}")
        parse_task(self.task)
        parse_task(self.backlog_task)
        if self.tasks < 1 and self.rate is None:
            raise ValueError("tasks must be >= 1")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1")
        if not 1 <= self.min_workers <= self.max_workers:
            raise ValueError("need 1 <= min_workers <= max_workers")
        if self.rate is not None and (self.rate <= 0 or self.duration_s <= 0):
            raise ValueError("rate and duration must be positive")
        if self.processes < 1:
            raise ValueError("processes must be >= 1")
        if self.backlog_low < 0:
            raise ValueError("backlog_low must be >= 0")
        if not self.levels or min(self.levels) < 1:
            raise ValueError("levels must be positive concurrencies")
        if self.rate_limit is not None:
            parse_rate(self.rate_limit)
        if self.concurrency_limit is not None and self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be >= 1")

    @classmethod
    def for_type(cls, type: str, **overrides: Any) -> BenchParams:
        """Params of `type` with the spec's defaults; `overrides` (None values ignored) win."""
        if type not in TYPES:
            raise ValueError(f"unknown benchmark type {type!r}; one of {', '.join(TYPES)}")
        values: dict[str, Any] = {"type": type, **_DEFAULTS[type]}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if type == "burst" and overrides.get("rate") is None:
            # A burst is "N tasks within S seconds": the rate follows from --tasks/--duration.
            values["rate"] = values["tasks"] / values["duration_s"]
        return cls(**values)

    @property
    def mode(self) -> str:
        """The run's mode: "rate" (open-loop producer) or "drain" (queue first, then drain)."""
        return "rate" if self.rate is not None else "drain"

    @property
    def offered(self) -> int:
        """Tasks the run offers (the low backlog not included)."""
        if self.rate is None:
            return self.tasks
        return max(1, round(self.rate * self.duration_s))

    def replace(self, **changes: Any) -> BenchParams:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = dataclasses.asdict(self)
        d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchParams:
        """Inverse of :meth:`to_dict` (unknown keys ignored, for older/newer reports)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if "levels" in values:
            values["levels"] = tuple(values["levels"])
        return cls(**values)
