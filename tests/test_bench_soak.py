"""`bench --type soak` at a tiny size: a worker child, samples, verdict figures, cleanup."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis
from support.bench_keys import leftover_keys

from engine.bench.soak import SoakParams, SoakReport, SoakSample
from spool_console.bench_cmd import main

pytestmark = pytest.mark.usefixtures("bench_prefixes")


def _sample(at_s: float, worker: float, p99: float) -> SoakSample:
    return SoakSample(at_s, 0, 0, 0.0, worker, 40.0, 1.0, p99 / 2, p99)


def test_verdict_figures_use_only_samples_after_warm_up() -> None:
    params = SoakParams(duration_s=1200, sample_every_s=60)
    growth = [_sample(t, 30.0 + t / 10, 2.0) for t in range(0, 360, 60)]  # windows filling
    flat = [_sample(t, 66.0, 2.0 if t < 800 else 3.0) for t in range(360, 1260, 60)]
    report = SoakReport(params, (*growth, *flat), 0, 0, "x", 2, None, None)
    assert params.warmup == 360
    assert report.rss_change_mb() == 0.0
    assert report.slope_mb_per_h("worker_rss_mb") == pytest.approx(0.0)
    assert report.p99_stretches() == (2.0, 3.0)
    assert "slope +0.0 MB/h" in report.to_text()


def test_flags_that_mean_nothing_to_a_soak_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--type", "soak", "--tasks", "5"]) == 2
    assert "--tasks does not apply to --type soak" in capsys.readouterr().err


async def test_small_soak_reports_every_interval(
    redis_url: str, redis: Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--type", "soak", "--rate", "300", "--duration", "3", "--sample-every", "1"]
    argv += ["--redis-url", redis_url, "--json", "--out", str(tmp_path)]
    code = await asyncio.to_thread(main, argv)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    samples = doc["samples"]
    assert samples[-1]["completed"] == 900 and doc["dead"] == 0
    assert len(samples) >= 3
    assert all(s["worker_rss_mb"] > 5 and s["producer_rss_mb"] > 5 for s in samples)
    assert any(s["p99_ms"] > 0 for s in samples)
    assert (tmp_path / "soak.txt").read_text().startswith("soak: spool.noop at 300/s")
    assert await leftover_keys(redis) == []


async def test_console_soak_runs_the_console_app_as_the_worker(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--type", "soak", "--console", "--rate", "200", "--duration", "2"]
    argv += ["--sample-every", "1", "--redis-url", redis_url, "--json"]
    code = await asyncio.to_thread(main, argv)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["params"]["console"] is True
    assert doc["samples"][-1]["completed"] == 400 and doc["dead"] == 0
    # The console (Textual, its screens, the pool) is a bigger process than a --no-ui worker.
    assert all(s["worker_rss_mb"] > 40 for s in doc["samples"])


def test_console_flag_is_only_for_a_soak(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--type", "quick", "--console"]) == 2
    assert "--console applies only to --type soak" in capsys.readouterr().err
