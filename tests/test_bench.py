"""The benchmark suite at small sizes: every type runs and reports consistent numbers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from support.bench_keys import leftover_keys

from engine.bench import BenchParams, BenchProgress, BenchReport, run_benchmark
from engine.bench.report import StageRow
from spool_console.bench_cmd import main

pytestmark = pytest.mark.usefixtures("bench_prefixes")
SMALL = {"mem_probe_tasks": 100, "settle_timeout_s": 30.0}


def _check_consistent(report: BenchReport) -> None:
    offered = report.tasks + report.backlog_low
    assert not report.timed_out
    assert report.completed == offered
    assert report.failed == 0 and report.dead == 0
    assert report.error_rate == 0.0
    assert report.throughput > 0
    names = [s.stage for s in report.stages]
    for stage in ("queue_wait", "fetch", "execution", "result_write", "end_to_end", "enqueue"):
        assert stage in names
    for s in (*report.stages, *report.priority_wait):
        assert s.count > 0
        assert s.p50_ms <= s.p95_ms <= s.p99_ms <= s.max_ms, s
    e2e = report.stage("end_to_end")
    assert e2e is not None and e2e.count == report.completed
    assert report.redis_bytes_per_task is not None
    if not os.environ.get("SPOOL_TEST_REDIS_URL"):
        # The probe is a `used_memory` delta: only on a server of this test process alone is
        # its sign certain (on the shared one other workers' deletes land inside the probe).
        assert report.redis_bytes_per_task > 0
    assert report.redis_cpu_us_per_task is not None and report.redis_cpu_us_per_task > 0
    assert report.cores >= 1 and report.python and report.redis_version and report.spool


async def test_quick(redis_url: str, redis: Redis) -> None:
    seen: list[BenchProgress] = []
    report = await run_benchmark(
        redis_url, BenchParams.for_type("quick", tasks=200, **SMALL), progress=seen.append
    )
    _check_consistent(report)
    assert report.type == "quick" and report.mode == "drain" and report.workers == "4"
    assert seen and seen[-1].phase == "done" and seen[-1].done == 200
    assert await leftover_keys(redis) == []


async def test_scalability_with_two_processes(redis_url: str, redis: Redis) -> None:
    params = BenchParams.for_type("scalability", tasks=200, levels=(1, 4), processes=2, **SMALL)
    report = await run_benchmark(redis_url, params)
    _check_consistent(report)
    assert [(r.processes, r.concurrency) for r in report.levels] == [(1, 1), (1, 4), (2, 1), (2, 4)]
    for row in report.levels:
        assert row.tasks == 200 and row.errors == 0 and row.throughput > 0
        assert row.p50_ms <= row.p99_ms
    assert "## scalability" in report.to_text()
    assert await leftover_keys(redis) == []


async def test_profiled_writes_files(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    params = BenchParams.for_type("profiled", tasks=200, out_dir=str(tmp_path), **SMALL)
    report = await run_benchmark(redis_url, params)
    _check_consistent(report)
    assert (tmp_path / "cpu.prof").stat().st_size > 0
    assert "top allocation sites" in (tmp_path / "memory.txt").read_text()
    assert len(report.profile) == 15
    assert await leftover_keys(redis) == []


async def test_custom_rate_with_low_backlog(redis_url: str, redis: Redis) -> None:
    params = BenchParams.for_type(
        "custom", rate=300.0, duration_s=1.0, priority="high", backlog_low=500, **SMALL
    )
    report = await run_benchmark(redis_url, params)
    _check_consistent(report)
    assert report.mode == "rate" and report.tasks == 300 and report.backlog_low == 500
    assert [s.stage for s in report.priority_wait] == ["queue_wait", "end_to_end"]
    assert report.priority_wait[0].count == 300
    assert report.producer_lag_max_ms is not None and report.achieved_rate
    assert await leftover_keys(redis) == []


async def test_burst_small(redis_url: str, redis: Redis) -> None:
    params = BenchParams.for_type("burst", tasks=300, duration_s=1.0, task="spool.sleep:5", **SMALL)
    report = await run_benchmark(redis_url, params)
    _check_consistent(report)
    assert report.workers == "auto 5-30" and report.drain_s is not None
    assert "## auto-scaler decisions" in report.to_text()
    assert await leftover_keys(redis) == []


async def test_latency_waits_are_measured_by_the_handler_in_another_process(
    redis_url: str, redis: Redis
) -> None:
    params = BenchParams.for_type("latency", rate=200.0, duration_s=1.0)
    report = await run_benchmark(redis_url, params)
    assert not report.timed_out and report.task == "spool.stamp"
    assert report.tasks == 200 and report.completed == 200 and report.processes == 1
    wait = report.stage("start_wait")
    assert wait is not None and wait.count == 200  # one stamp read back per task
    assert 0 < wait.p50_ms <= wait.p95_ms <= wait.p99_ms <= wait.max_ms
    # The worker's own stages come from its published snapshot (a separate process).
    queue_wait = report.stage("queue_wait")
    assert queue_wait is not None and queue_wait.count == 200
    assert report.redis_cpu_us_per_task is not None and report.redis_cpu_us_per_task > 0
    assert "start_wait.p99" in report.to_text()
    assert await leftover_keys(redis) == []


async def test_sustained_small(redis_url: str, redis: Redis) -> None:
    params = BenchParams.for_type(
        "sustained", rate=300.0, duration_s=1.0, sample_every_s=0.2, **SMALL
    )
    report = await run_benchmark(redis_url, params)
    _check_consistent(report)
    assert report.tasks == 300 and report.series
    assert all(p.rss_mb > 0 for p in report.series)
    assert await leftover_keys(redis) == []


def _sample(**changes: object) -> BenchReport:
    row = StageRow("end_to_end", 10, 1.0, 2.0, 3.0, 4.0, 1.5)
    base = BenchReport(
        type="quick",
        mode="drain",
        started_at="2026-01-01T00:00:00+00:00",
        redis="x",
        task="spool.noop",
        tasks=10,
        workers="4",
        processes=1,
        rate=None,
        duration_s=0.5,
        completed=10,
        failed=0,
        dead=0,
        throughput=20.0,
        stages=(row,),
        python="3.11",
        redis_version="valkey 8",
        spool="0.1.0",
        cores=2,
        params={"levels": [1, 2]},
    )
    return BenchReport(**{**base.to_dict(), "stages": (row,), **changes})


def _keys(text: str) -> list[str]:
    return [line.split(":")[0] for line in text.splitlines()]


def test_to_text_stable_order_and_units() -> None:
    a, b = _sample(), _sample(throughput=99.0, completed=9)
    assert _keys(a.to_text()) == _keys(b.to_text())
    lines = a.to_text().splitlines()
    assert "throughput: 20 tasks/s" in lines
    assert "end_to_end.p99: 3 ms" in lines
    figure_keys = [k for k, _, _ in a.figures()]
    assert figure_keys.index("throughput") < figure_keys.index("end_to_end.p50")
    assert len(figure_keys) == len(set(figure_keys))


def test_json_round_trip() -> None:
    report = _sample()
    again = BenchReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_compare_shows_deltas() -> None:
    old, new = _sample(), _sample(throughput=30.0)
    out = new.compare(old)
    assert "throughput: 20 -> 30 tasks/s [+10] (+50.0%)" in out
    assert "completed: 10 -> 10 tasks [+0] (+0.0%)" in out


def test_params_defaults_and_validation() -> None:
    assert BenchParams.for_type("quick").tasks == 1000
    assert BenchParams.for_type("quick").workers == 4
    sustained = BenchParams.for_type("sustained")
    assert sustained.rate == 5000 and sustained.duration_s == 60 and sustained.offered == 300_000
    burst = BenchParams.for_type("burst")
    assert (burst.min_workers, burst.max_workers, burst.workers, burst.offered) == (
        5,
        30,
        None,
        10_000,
    )
    assert BenchParams.for_type("profiled").tasks == 5000
    with pytest.raises(ValueError):
        BenchParams.for_type("quick", task="spool.fail")
    with pytest.raises(ValueError):
        BenchParams.for_type("nope")


def test_main_json_out_and_compare(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["--type", "quick", "--tasks", "200", "--redis-url", redis_url, "--no-progress"]
    assert main([*argv, "--json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["completed"] == 200 and doc["type"] == "quick"
    assert (out / "report.txt").read_text().startswith("# spool benchmark: quick")
    assert json.loads((out / "report.json").read_text())["completed"] == 200
    assert main([*argv, "--compare", str(out / "report.json")]) == 0
    text = capsys.readouterr().out
    assert "throughput:" in text and "# compare: quick" in text
    assert main(["--type", "quick", "--task", "bogus"]) == 2


async def test_cancel_event_stops_early_and_cleans_up(redis_url: str, redis: Redis) -> None:
    cancel = asyncio.Event()

    def on_progress(p: BenchProgress) -> None:
        if p.done > 100:
            cancel.set()

    params = BenchParams.for_type("sustained", rate=500.0, duration_s=20.0, **SMALL)
    started = time.monotonic()
    report = await run_benchmark(redis_url, params, progress=on_progress, cancel=cancel)
    assert time.monotonic() - started < 10
    assert report.completed < report.tasks and "cancelled by caller" in report.notes
    assert await leftover_keys(redis) == []


async def test_task_cancellation_still_cleans_up(redis_url: str, redis: Redis) -> None:
    params = BenchParams.for_type("sustained", rate=500.0, duration_s=20.0, **SMALL)
    started = asyncio.Event()

    def on_progress(p: BenchProgress) -> None:
        if p.done > 0:
            started.set()

    run = asyncio.create_task(run_benchmark(redis_url, params, progress=on_progress))
    await asyncio.wait_for(started.wait(), 30)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert await leftover_keys(redis) == []


async def test_priority_wait_rows_are_not_swapped(redis_url: str) -> None:
    params = BenchParams.for_type(
        "custom", rate=300.0, duration_s=0.5, priority="high", backlog_low=200, **SMALL
    )
    report = await run_benchmark(redis_url, params)
    wait, e2e = report.priority_wait
    assert wait.max_ms <= e2e.max_ms and wait.mean_ms <= e2e.mean_ms


def test_burst_rate_follows_tasks_and_duration() -> None:
    from spool_console.bench_cmd import build_parser, params_from_args

    args = build_parser().parse_args(["--type", "burst", "--tasks", "2000", "--duration", "4"])
    params = params_from_args(args)
    assert params.rate == 500 and params.offered == 2000 and params.workers is None
    args = build_parser().parse_args(["--type", "custom", "--autoscale", "--max-workers", "8"])
    assert params_from_args(args).workers is None
