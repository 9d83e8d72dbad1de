"""Snapshots: encode/decode, cross-process merge and Prometheus rendering (no Redis)."""

from __future__ import annotations

import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import (
    MetricsRecorder,
    MetricsSnapshot,
    decode_snapshot,
    encode_snapshot,
    merge_snapshots,
)
from engine.metrics.prometheus import render_prometheus


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _tasks(seed: int, n: int) -> list[tuple]:
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        ea = 1.7e9 + k * 0.01
        fa = ea + rnd.expovariate(50)
        sa = fa + 0.0002
        fi = sa + rnd.lognormvariate(-5, 1)
        wr = fi + 0.001
        out.append(
            (rnd.choice("ab"), rnd.choice(("hi", "lo")), rnd.choice("xyz"), ea, fa, sa, fi, wr)
        )
    return out


def _recorder(worker: str, tasks: list[tuple], mono: Clock, wall0: float) -> MetricsRecorder:
    rec = MetricsRecorder(worker, clock=mono, wall_clock=lambda: wall0 + mono.now)
    for k, t in enumerate(tasks):
        mono.now = 100.0 + k * 0.05  # spread over several seconds so windows differ
        rec.record_task(*t, ok=k % 10 != 0)
        rec.count("started", queue=t[0])
        rec.record_stage("enqueue", 0.0001 * (k % 7 + 1), queue=t[0], level=t[1], task=t[2])
    return rec


def _comparable(snap: MetricsSnapshot) -> dict:
    """Everything but float sums, which depend on addition order."""
    return {
        "stages": {(s.stage, s.window_s): (s.summary.count, s.summary.p50_ms, s.summary.p99_ms,
                                           s.summary.max_ms, s.histogram["b"])
                   for s in snap.stages},
        "breakdowns": {(b.dimension, b.key, b.stage, b.window_s):
                       (b.summary.count, b.histogram["b"]) for b in snap.breakdowns},
        "counters": {c.event: (c.total, c.per_queue, c.rate_series) for c in snap.counters},
        "latency": {p.start_s: (p.summary.count, p.histogram["b"]) for p in snap.latency_series},
    }  # fmt: skip


def test_encode_decode_round_trip() -> None:
    mono = Clock(100.0)
    rec = _recorder("w1", _tasks(1, 300), mono, 1.7e9)
    rec.set_depth("a", "hi", 12)
    snap = rec.snapshot()
    data = encode_snapshot(snap)
    assert isinstance(data, bytes)
    assert decode_snapshot(data) == snap
    assert decode_snapshot(data.decode()) == snap
    with pytest.raises(ValueError):
        decode_snapshot(b'{"v": 999}')


def test_merge_of_two_recorders_equals_one_fed_both() -> None:
    t1, t2 = _tasks(1, 400), _tasks(2, 400)
    m1, m2, m3 = Clock(100.0), Clock(100.0), Clock(100.0)
    wall0 = 1.7e9
    r1 = _recorder("w1", t1, m1, wall0)
    r2 = _recorder("w2", t2, m2, wall0)
    both = MetricsRecorder("all", clock=m3, wall_clock=lambda: wall0 + m3.now)
    for k, (a, b) in enumerate(zip(t1, t2, strict=True)):
        m3.now = 100.0 + k * 0.05
        for t in (a, b):
            both.record_task(*t, ok=k % 10 != 0)
            both.count("started", queue=t[0])
            both.record_stage("enqueue", 0.0001 * (k % 7 + 1), queue=t[0], level=t[1], task=t[2])
    r1.set_depth("a", "hi", 3)
    r2.set_depth("a", "hi", 9)
    merged = merge_snapshots([decode_snapshot(encode_snapshot(r.snapshot())) for r in (r1, r2)])
    expected = both.snapshot()
    assert _comparable(merged) == _comparable(expected)
    assert merged.processes == 2
    assert merged.worker_id == "fleet"
    assert merged.counter("started") == 800
    assert merged.stage("end_to_end", 0).count == 800
    assert merged.stage("end_to_end", 0).mean_ms == pytest.approx(
        expected.stage("end_to_end", 0).mean_ms
    )
    (depth,) = merged.depths
    assert depth.depth in (3, 9)  # same wall second in this test: the larger wins a tie


def test_merge_depth_latest_wins_and_rates_align() -> None:
    a = MetricsRecorder("a", clock=Clock(10.0), wall_clock=lambda: 1000.4)
    b = MetricsRecorder("b", clock=Clock(500.0), wall_clock=lambda: 1001.2)
    a.set_depth("q", "l", 50)
    b.set_depth("q", "l", 4)
    a.count("enqueued", 2)
    b.count("enqueued", 3)
    merged = merge_snapshots([a.snapshot(), b.snapshot()])
    assert merged.depths[0].depth == 4  # b sampled later
    series = dict(merged.rate_series("enqueued"))
    assert series[1000] == 2 and series[1001] == 3
    assert merged.counter("enqueued") == 5
    assert len(merged.rate_series("enqueued")) == 300


def test_prometheus_exposition_parses() -> None:
    mono = Clock(100.0)
    rec = _recorder("w1", _tasks(3, 500), mono, 1.7e9)
    rec.set_depth("a", "hi", 12)
    for _ in range(3):
        rec.count("dead", queue='we"ird\\q')
    text = render_prometheus(rec.snapshot())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["spool_tasks_started"].type == "counter"
    started = {s.labels["queue"]: s.value for s in families["spool_tasks_started"].samples}
    assert sum(started.values()) == 500
    dead = families["spool_tasks_dead"].samples
    assert dead[0].labels["queue"] == 'we"ird\\q'
    hist = families["spool_stage_duration_seconds"]
    assert hist.type == "histogram"
    stages = {s.labels["stage"] for s in hist.samples}
    assert {"enqueue", "queue_wait", "execution", "end_to_end"} <= stages
    for stage in stages:
        buckets = [
            s for s in hist.samples if s.name.endswith("_bucket") and s.labels["stage"] == stage
        ]
        values = [s.value for s in buckets]
        assert values == sorted(values)  # cumulative
        assert buckets[-1].labels["le"] == "+Inf"
        (count,) = [
            s.value
            for s in hist.samples
            if s.name.endswith("_count") and s.labels["stage"] == stage
        ]
        assert values[-1] == count == 500
    assert families["spool_queue_depth"].type == "gauge"
    assert families["spool_queue_depth"].samples[0].value == 12
    assert families["spool_metric_samples_dropped"].type == "counter"
