"""Benchmark the metrics hot path: ``record_task`` per call and the cost of a snapshot.

Run: ``python tests/bench/bench_metrics.py [--tasks N] [--runs R]``. Prints medians in µs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the repo

from engine.metrics import MetricsRecorder, encode_snapshot

QUEUES = ("default", "emails", "reports")
LEVELS = ("high", "default", "low")
TASKS = ("send_email", "resize", "noop", "report", "charge")


def _samples(n: int, seed: int = 1) -> list[tuple]:
    rnd = random.Random(seed)
    base = time.time()
    out = []
    for k in range(n):
        ea = base + k * 1e-5
        fa = ea + rnd.expovariate(1 / 0.002)
        sa = fa + rnd.expovariate(1 / 0.0001)
        fi = sa + rnd.expovariate(1 / 0.001)
        wr = fi + rnd.expovariate(1 / 0.0005)
        out.append((rnd.choice(QUEUES), rnd.choice(LEVELS), rnd.choice(TASKS), ea, fa, sa, fi, wr))
    return out


def bench_record_task(samples: list[tuple], runs: int) -> tuple[float, float]:
    """Median µs per record_task call, and median µs per task to fold them (snapshot)."""
    per_call: list[float] = []
    per_fold: list[float] = []
    for _ in range(runs):
        rec = MetricsRecorder("bench", max_buffer=len(samples) + 1)
        record = rec.record_task
        t0 = time.perf_counter()
        for q, lv, name, ea, fa, sa, fi, wr in samples:
            record(q, lv, name, ea, fa, sa, fi, wr)
        t1 = time.perf_counter()
        rec.flush()
        t2 = time.perf_counter()
        per_call.append((t1 - t0) / len(samples) * 1e6)
        per_fold.append((t2 - t1) / len(samples) * 1e6)
    return statistics.median(per_call), statistics.median(per_fold)


def bench_snapshot(samples: list[tuple], runs: int) -> tuple[float, float, int]:
    """Median ms to take (and to encode) a snapshot of a recorder with 300 s of history."""
    fake_now = [1000.0]
    rec = MetricsRecorder("bench", clock=lambda: fake_now[0], max_buffer=len(samples) + 1)
    per_second = max(1, len(samples) // 300)
    for k, (q, lv, name, ea, fa, sa, fi, wr) in enumerate(samples):
        fake_now[0] = 1000.0 + k // per_second
        rec.record_task(q, lv, name, ea, fa, sa, fi, wr)
        rec.count("started", queue=q)
    rec.flush()
    snap_ms: list[float] = []
    enc_ms: list[float] = []
    size = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        snap = rec.snapshot()
        t1 = time.perf_counter()
        data = encode_snapshot(snap)
        t2 = time.perf_counter()
        size = len(data)
        snap_ms.append((t1 - t0) * 1e3)
        enc_ms.append((t2 - t1) * 1e3)
    return statistics.median(snap_ms), statistics.median(enc_ms), size


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print a short report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    samples = _samples(args.tasks)
    call_us, fold_us = bench_record_task(samples, args.runs)
    print(f"record_task: {call_us:.3f} µs/call (median of {args.runs} runs of {args.tasks})")
    print(f"fold (snapshot/flush): {fold_us:.3f} µs/task")
    snap_ms, enc_ms, size = bench_snapshot(samples, args.runs)
    print(f"snapshot with 300 s of history: {snap_ms:.2f} ms, encode {enc_ms:.2f} ms, {size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
