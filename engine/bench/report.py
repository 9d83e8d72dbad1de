"""The benchmark report: stable plain text (one figure a line, for `diff`), JSON, and deltas."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Stage order of every report (the recorder's names).
STAGE_ORDER = ("enqueue", "queue_wait", "fetch", "execution", "result_write", "end_to_end")


@dataclass(frozen=True, slots=True)
class StageRow:
    """Latency summary of one stage, in milliseconds."""

    stage: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


@dataclass(frozen=True, slots=True)
class LevelRow:
    """One scalability step: a drain at one concurrency (per process) and process count."""

    processes: int
    concurrency: int
    tasks: int
    duration_s: float
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One over-time sample (burst and sustained runs)."""

    t_s: float
    done: int
    throughput: float
    p99_ms: float
    concurrency: int
    rss_mb: float
    backlog: int


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One auto-scaler decision, `t_s` seconds after the run started."""

    t_s: float
    old: int
    new: int
    reason: str


@dataclass(frozen=True, slots=True)
class BenchReport:
    """What one benchmark run measured. Plain values; see `to_text`, `to_dict`, `compare`."""

    type: str
    mode: str
    started_at: str
    redis: str
    task: str
    tasks: int
    workers: str
    processes: int
    rate: float | None
    duration_s: float
    completed: int
    failed: int
    dead: int
    throughput: float
    stages: tuple[StageRow, ...] = ()
    achieved_rate: float | None = None
    producer_lag_p99_ms: float | None = None
    producer_lag_max_ms: float | None = None
    drain_s: float | None = None
    priority: str = "default"
    priority_wait: tuple[StageRow, ...] = ()
    backlog_low: int = 0
    backlog_low_left: int | None = None
    rss_peak_mb: float | None = None
    redis_bytes_per_task: float | None = None
    #: Server CPU (INFO cpu, user + sys) over the trial's enqueues and drain, per settled task.
    redis_cpu_us_per_task: float | None = None
    redis_probe_tasks: int = 0
    levels: tuple[LevelRow, ...] = ()
    decisions: tuple[DecisionRow, ...] = ()
    series: tuple[SeriesPoint, ...] = ()
    profile: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    python: str = ""
    redis_version: str = ""
    spool: str = ""
    cores: int = 0
    load_1m: float | None = None
    timed_out: bool = False
    #: Stopped early by the caller: tasks never run are not errors, and the run is no baseline.
    cancelled: bool = False
    notes: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    # -- derived -------------------------------------------------------------------------------
    @property
    def error_rate(self) -> float:
        """Share of offered tasks that did not succeed (of those that ran, when cancelled)."""
        if self.cancelled:
            ran = self.completed + self.dead
            return self.dead / ran if ran else 0.0
        return (
            0.0
            if not self.tasks
            else (self.tasks + self.backlog_low - self.completed) / (self.tasks + self.backlog_low)
        )

    def stage(self, name: str) -> StageRow | None:
        """The row of one stage, or None."""
        return next((s for s in self.stages if s.stage == name), None)

    def figures(self) -> list[tuple[str, float | int | None, str]]:
        """(key, value, unit) in a fixed order: the numeric part of the text and of `compare`."""
        out: list[tuple[str, float | int | None, str]] = [
            ("tasks", self.tasks, "tasks"),
            ("completed", self.completed, "tasks"),
            ("failed_attempts", self.failed, "attempts"),
            ("dead_lettered", self.dead, "tasks"),
            ("error_rate", round(self.error_rate * 100, 3), "%"),
            ("duration", round(self.duration_s, 3), "s"),
            ("throughput", round(self.throughput), "tasks/s"),
        ]
        if self.mode == "rate":
            out += [
                ("offered_rate", self.rate, "tasks/s"),
                ("achieved_rate", _r(self.achieved_rate, 0), "tasks/s"),
                ("producer_lag_p99", _r(self.producer_lag_p99_ms, 3), "ms"),
                ("producer_lag_max", _r(self.producer_lag_max_ms, 3), "ms"),
            ]
        if self.drain_s is not None:
            out.append(("drain_time", round(self.drain_s, 3), "s"))
        for s in sorted(self.stages, key=lambda r: _stage_pos(r.stage)):
            for q in ("p50", "p95", "p99", "max"):
                out.append((f"{s.stage}.{q}", round(getattr(s, f"{q}_ms"), 3), "ms"))
        for s in self.priority_wait:
            for q in ("p50", "p95", "p99", "max"):
                out.append(
                    (f"{self.priority}.{s.stage}.{q}", round(getattr(s, f"{q}_ms"), 3), "ms")
                )
        if self.backlog_low:
            out.append(("backlog_low_left", self.backlog_low_left, "tasks"))
        out += [
            ("rss_peak", _r(self.rss_peak_mb, 1), "MB"),
            ("redis_memory_per_task", _r(self.redis_bytes_per_task, 0), "bytes"),
            ("redis_cpu_per_task", _r(self.redis_cpu_us_per_task, 2), "µs"),
        ]
        return out

    # -- text ----------------------------------------------------------------------------------
    def to_text(self) -> str:
        """Plain text: header, one figure a line (stable order, units), then tables."""
        rate = "-" if self.rate is None else f"{self.rate:g} tasks/s"
        lines = [
            f"# spool benchmark: {self.type}",
            f"date: {self.started_at}",
            f"redis: {self.redis}",
            f"versions: python {self.python}, redis {self.redis_version}, spool {self.spool}",
            f"machine: {self.cores} cores, load {_fmt(self.load_1m)} (1 min) at start",
            f"mode: {self.mode}",
            f"task: {self.task}",
            f"workers: {self.workers} per process",
            f"processes: {self.processes}",
            f"rate: {rate}",
            f"priority: {self.priority}",
            f"backlog_low: {self.backlog_low}",
        ]
        if self.timed_out:
            lines.append("TIMED OUT: not every offered task settled before the timeout")
        lines.append("")
        lines += [f"{k}: {_fmt(v)} {u}" for k, v, u in self.figures()]
        if self.levels:
            lines += ["", "## scalability (concurrency is per process)"]
            lines.append(
                f"{'procs':>5} {'conc':>5} {'tasks':>7} {'tasks/s':>8} "
                f"{'p50 ms':>9} {'p99 ms':>9} {'errors':>6}"
            )
            for r in self.levels:
                lines.append(
                    f"{r.processes:>5} {r.concurrency:>5} {r.tasks:>7} "
                    f"{r.throughput:>8.0f} {r.p50_ms:>9.3f} {r.p99_ms:>9.3f} {r.errors:>6}"
                )
        if self.decisions or self.type == "burst":
            lines += ["", "## auto-scaler decisions"]
            lines += [f"+{d.t_s:6.1f} s  {d.old} -> {d.new}: {d.reason}" for d in self.decisions]
            if not self.decisions:
                lines.append("(none)")
        if self.series:
            lines += ["", "## over time (per interval)"]
            lines.append(
                f"{'t s':>6} {'done':>8} {'tasks/s':>8} {'p99 ms':>9} "
                f"{'conc':>5} {'backlog':>8} {'rss MB':>7}"
            )
            for p in self.series:
                lines.append(
                    f"{p.t_s:>6.1f} {p.done:>8} {p.throughput:>8.0f} {p.p99_ms:>9.3f} "
                    f"{p.concurrency:>5} {p.backlog:>8} {p.rss_mb:>7.1f}"
                )
        if self.profile:
            lines += ["", "## profile: top 15 functions by cumulative time", *self.profile]
        if self.artifacts:
            lines += ["", "## files", *self.artifacts]
        if self.notes:
            lines += ["", "## notes", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        """Inverse of `to_dict`; unknown keys (a newer report) are ignored."""
        nested = {
            "stages": StageRow,
            "priority_wait": StageRow,
            "levels": LevelRow,
            "decisions": DecisionRow,
            "series": SeriesPoint,
        }
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                continue
            if key in nested:
                value = tuple(nested[key](**row) for row in value)
            elif key in ("profile", "artifacts", "notes"):
                value = tuple(value)
            values[key] = value
        return cls(**values)

    def compare(self, old: BenchReport) -> str:
        """Deltas of every figure against an older report (old -> new, change in %)."""
        before = {k: (v, u) for k, v, u in old.figures()}
        lines = [f"# compare: {old.type} ({old.started_at}) -> {self.type} ({self.started_at})"]
        for key, new, unit in self.figures():
            if key not in before:
                lines.append(f"{key}: (new) {_fmt(new)} {unit}")
                continue
            prev = before[key][0]
            if prev is None or new is None:
                lines.append(f"{key}: {_fmt(prev)} -> {_fmt(new)} {unit}")
                continue
            pct = "" if prev == 0 else f" ({(new - prev) / abs(prev) * 100:+.1f}%)"
            lines.append(f"{key}: {_fmt(prev)} -> {_fmt(new)} {unit} [{new - prev:+g}]{pct}")
        return "\n".join(lines) + "\n"


def _stage_pos(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)
