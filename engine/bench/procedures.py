"""The per-type procedures: which trials each benchmark type runs and how they become a report."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import pstats
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.bench.harness import Context, Trial, run_trial
from engine.bench.params import BenchParams
from engine.bench.report import STAGE_ORDER, BenchReport, LevelRow, StageRow
from engine.metrics.snapshot import LatencySummary, MetricsSnapshot


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Facts about the run that are not measurements (header of the report)."""

    started_at: str
    redis: str
    python: str
    redis_version: str
    spool: str
    cores: int
    load_1m: float | None
    bytes_per_task: float | None
    probe_tasks: int


def _row(stage: str, s: LatencySummary) -> StageRow:
    return StageRow(
        stage,
        s.count,
        round(s.p50_ms, 4),
        round(s.p95_ms, 4),
        round(s.p99_ms, 4),
        round(s.max_ms, 4),
        round(s.mean_ms, 4),
    )


def stage_rows(snap: MetricsSnapshot) -> tuple[StageRow, ...]:
    """Every stage with samples, since the start of the trial (window 0)."""
    return tuple(_row(st, snap.stage(st, 0)) for st in STAGE_ORDER if snap.stage(st, 0).count)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _workers(params: BenchParams, concurrency: int | None) -> str:
    return (
        str(concurrency)
        if concurrency is not None
        else (f"auto {params.min_workers}-{params.max_workers}")
    )


def _task_label(params: BenchParams) -> str:
    """The offered task, with the limits declared on it."""
    limits = []
    if params.rate_limit:
        limits.append(f"rate limit {params.rate_limit}")
    if params.concurrency_limit:
        limits.append(f"concurrency limit {params.concurrency_limit}")
    return f"{params.task} ({', '.join(limits)})" if limits else params.task


def make_report(
    info: RunInfo, params: BenchParams, trial: Trial, concurrency: int | None, **extra: Any
) -> BenchReport:
    """Turn one trial into a report (scalability overrides `levels` and notes via `extra`)."""
    snap = trial.snapshot
    prod = trial.producer
    waits: tuple[StageRow, ...] = ()
    if params.backlog_low or params.priority != "default":
        waits = tuple(
            _row(st, snap.breakdown("level", st, 0)[params.priority])
            for st in ("queue_wait", "end_to_end")
            if params.priority in snap.breakdown("level", st, 0)
        )
    notes = [
        "queue_wait and end_to_end start at the server's enqueue time (µs resolution);"
        " enqueue is timed per batch call",
    ]
    if params.mode == "drain":
        notes.append("drain mode: tasks were queued first, so queue wait includes the backlog")
    if waits:
        notes.append(
            f"{params.priority}.* rows: tasks of that level only (low backlog"
            f" {params.backlog_low} queued first, {trial.backlog_low_left} left when"
            " the last one was offered)"
        )
    notes.append(
        "redis_cpu_per_task: the server's CPU (INFO cpu) from the first enqueue to the last"
        " settle, over settled tasks; a shared server counts its other clients too"
    )
    if trial.snapshot.dropped_samples:
        notes.append(f"metrics dropped {trial.snapshot.dropped_samples} samples (buffer full)")
    values: dict[str, Any] = dict(
        type=params.type,
        mode=params.mode,
        started_at=info.started_at,
        redis=info.redis,
        task=_task_label(params),
        tasks=params.offered,
        workers=_workers(params, concurrency),
        processes=params.processes,
        rate=params.rate,
        duration_s=round(trial.duration_s, 4),
        completed=trial.completed,
        failed=trial.failed,
        dead=trial.dead,
        throughput=round(trial.throughput, 1),
        stages=stage_rows(snap),
        achieved_rate=None if prod is None else round(prod.achieved_rate, 1),
        producer_lag_p99_ms=None if prod is None else round(prod.lag_ms(0.99), 3),
        producer_lag_max_ms=None if prod is None else round(prod.lag_ms(1.0), 3),
        drain_s=round(trial.duration_s, 3) if params.type == "burst" else None,
        priority=params.priority,
        priority_wait=waits,
        backlog_low=params.backlog_low,
        backlog_low_left=trial.backlog_low_left,
        rss_peak_mb=round(trial.rss_peak_mb, 1),
        redis_bytes_per_task=info.bytes_per_task,
        redis_cpu_us_per_task=_round(trial.redis_cpu_us_per_task, 2),
        redis_probe_tasks=info.probe_tasks,
        decisions=tuple(trial.decisions),
        series=tuple(trial.series) if params.type in ("burst", "sustained") else (),
        python=info.python,
        redis_version=info.redis_version,
        spool=info.spool,
        cores=info.cores,
        load_1m=info.load_1m,
        timed_out=trial.timed_out,
        notes=tuple(notes),
        params=params.to_dict(),
    )
    values.update(extra)
    return BenchReport(**values)


async def run_single(ctx: Context, info: RunInfo, params: BenchParams) -> BenchReport:
    """quick, custom, burst, sustained: one trial at the configured concurrency."""
    trial = await run_trial(
        ctx, params, concurrency=params.workers, processes=params.processes, label=params.type
    )
    return make_report(info, params, trial, params.workers)


async def run_scalability(ctx: Context, info: RunInfo, params: BenchParams) -> BenchReport:
    """A drain at each concurrency level, for 1 process and (with --processes P) for P."""
    rows: list[LevelRow] = []
    best: tuple[Trial, int, int] | None = None
    for procs in sorted({1, params.processes}):
        for level in params.levels:
            if ctx.cancelled:
                break
            trial = await run_trial(
                ctx, params, concurrency=level, processes=procs, label=f"c{level}/p{procs}"
            )
            e2e = trial.snapshot.stage("end_to_end", 0)
            rows.append(
                LevelRow(
                    procs,
                    level,
                    trial.completed,
                    round(trial.duration_s, 4),
                    round(trial.throughput, 1),
                    round(e2e.p50_ms, 3),
                    round(e2e.p99_ms, 3),
                    trial.offered - trial.completed,
                )
            )
            if best is None or trial.throughput > best[0].throughput:
                best = (trial, level, procs)
    if best is None:
        raise asyncio.CancelledError("benchmark cancelled before any trial finished")
    trial, level, procs = best
    report = make_report(info, params.replace(processes=procs), trial, level, levels=tuple(rows))
    note = f"top-level figures are the best step: concurrency {level}, {procs} process(es)"
    return BenchReport(**{**_fields(report), "notes": (*report.notes, note)})


def _fields(report: BenchReport) -> dict[str, Any]:
    return {name: getattr(report, name) for name in report.__dataclass_fields__}


@contextlib.contextmanager
def profiling(out_dir: Path, sink: dict[str, Any]) -> Iterator[None]:
    """cProfile + tracemalloc around the block; writes cpu.prof and memory.txt to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prof = cProfile.Profile()
    tracemalloc.start(1)
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        mem = tracemalloc.take_snapshot()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        cpu_path, mem_path = out_dir / "cpu.prof", out_dir / "memory.txt"
        prof.dump_stats(str(cpu_path))
        stats = pstats.Stats(prof).sort_stats("cumulative")
        top = []
        for func in stats.fcn_list[:15]:  # type: ignore[attr-defined]
            _cc, ncalls, tottime, cumtime, _ = stats.stats[func]  # type: ignore[attr-defined]
            where = f"{Path(func[0]).name}:{func[1]}({func[2]})"
            top.append(f"{cumtime:8.3f} s cum {tottime:8.3f} s own {ncalls:>9} calls  {where}")
        mem = mem.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        lines = [f"tracemalloc peak while profiling: {peak / 1e6:.1f} MB", "top allocation sites:"]
        for s in mem.statistics("lineno")[:25]:
            frame = s.traceback[0]
            lines.append(
                f"{s.size / 1024:10.1f} KiB {s.count:>8} blocks  {frame.filename}:{frame.lineno}"
            )
        mem_path.write_text("\n".join(lines) + "\n")
        sink["profile"] = tuple(top)
        sink["artifacts"] = (str(cpu_path), str(mem_path))


async def run_profiled(
    ctx: Context, info: RunInfo, params: BenchParams, out_dir: Path
) -> BenchReport:
    """A drain under cProfile and tracemalloc (numbers are slower than unprofiled runs)."""
    sink: dict[str, Any] = {}
    trial = await run_trial(
        ctx,
        params,
        concurrency=params.workers,
        processes=1,
        label="profiled",
        around=lambda: profiling(out_dir, sink),
    )
    report = make_report(info, params, trial, params.workers, **sink)
    note = "profiled: cProfile and tracemalloc slow the run; compare only profiled with profiled"
    return BenchReport(**{**_fields(report), "notes": (*report.notes, note)})
