"""A short soak: the worker's Python heap must not grow once the metric windows are full.

Issue 15's regression guard. One in-process pool runs no-ops offered at 5,000/s; its metrics
recorder runs on a clock 300x faster than real time, so the 300 s windows are full after the
first second, as they are after minute 6 of a real soak. tracemalloc then traces
the rest of the run, and the heap is compared between two later points.
It runs in a process of its own (tests/support/soak_probe.py): tracemalloc sees the whole
interpreter, and in the pytest process it also counted what earlier tests left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.support.soak_probe import GROWTH_BOUND_BYTES, MEASURED_TASKS

ROOT = Path(__file__).resolve().parents[1]


def test_heap_growth_after_the_metric_horizon_is_bounded(redis_url: str, prefix: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.soak_probe", redis_url, prefix],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = orjson.loads(run.stdout.strip().splitlines()[-1])
    assert result["dead"] == 0
    grown = result["grown"]
    assert grown < GROWTH_BOUND_BYTES, (
        f"heap grew {grown:,} bytes over {MEASURED_TASKS:,} tasks after the horizon"
        f" (histogram buckets aside: {result['buckets']:,} bytes): "
        + "; ".join(result["top"])
    )
