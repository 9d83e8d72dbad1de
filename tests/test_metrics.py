"""Unit tests for engine.metrics histograms, windows and the recorder (no Redis)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metrics import STAGES, CounterRing, HistogramWindow, LogHistogram, MetricsRecorder
from engine.metrics.histogram import bucket_index, bucket_value_us

HOUR_US = 3600e6


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


# -- LogHistogram -----------------------------------------------------------------------------
@settings(max_examples=500)
@given(st.floats(min_value=1.0, max_value=HOUR_US, allow_nan=False))
def test_bucket_value_within_one_percent(value_us: float) -> None:
    rep = bucket_value_us(bucket_index(value_us))
    assert abs(rep - value_us) / value_us <= 0.01


@settings(max_examples=200)
@given(st.lists(st.floats(min_value=1.0, max_value=HOUR_US), min_size=1, max_size=200))
def test_percentiles_within_one_percent_of_nearest_rank(values: list[float]) -> None:
    h = LogHistogram()
    for v in values:
        h.record(v)
    for q in (0, 1, 50, 90, 95, 99, 100):
        exact = nearest_rank(values, q)
        assert abs(h.percentile(q) - exact) / exact <= 0.01
    assert h.count == len(values)
    assert h.max_us == max(values)
    assert h.min_us == min(values)
    assert h.sum_us == pytest.approx(sum(values))


def test_empty_and_edge_values() -> None:
    h = LogHistogram()
    assert h.percentile(99) == 0.0
    assert h.count == 0 and h.max_us == 0.0 and h.mean_us == 0.0
    h.record(0.0)
    h.record(-5.0)  # skewed clocks: clamped, never an error
    h.record(1e15)  # beyond the top bucket: clamped into it, max stays exact
    assert h.count == 3
    assert h.min_us == 0.0
    assert h.max_us == 1e15
    assert h.percentile(100) == 1e15


def test_merge_equals_recording_both() -> None:
    rnd = random.Random(7)
    a, b, both = LogHistogram(), LogHistogram(), LogHistogram()
    for _ in range(1000):
        v = rnd.lognormvariate(8, 2)
        (a if rnd.random() < 0.5 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.buckets == both.buckets
    assert a.count == both.count
    assert a.sum_us == pytest.approx(both.sum_us)
    assert (a.min_us, a.max_us) == (both.min_us, both.max_us)


def test_dict_round_trip_and_reset() -> None:
    h = LogHistogram()
    for v in (3.0, 3.0, 250.0, 1e6, 0.2):
        h.record(v)
    d = h.to_dict()
    assert len(d["b"]) == 2 * len(h.buckets)  # only non-empty buckets travel
    assert LogHistogram.from_dict(d) == h
    h.reset()
    assert h.count == 0 and not h.buckets
    assert LogHistogram.from_dict(h.to_dict()) == h


def test_subtract_undoes_merge() -> None:
    a, b = LogHistogram(), LogHistogram()
    for v in (10.0, 20.0, 30.0):
        a.record(v)
    for v in (20.0, 5000.0):
        b.record(v)
    kept = a.copy()
    a.merge(b).subtract(b)
    assert a.buckets == kept.buckets and a.count == kept.count


# -- windows ----------------------------------------------------------------------------------
def test_window_rolls_over() -> None:
    w = HistogramWindow(horizon_s=300)
    w.record(1000.0, second=100)
    w.record(2000.0, second=105)
    got = w.windows(111, (10, 60, 300, 0))
    assert got[10].count == 1  # second 100 is older than 10 s at 111; 105 is not
    assert got[60].count == 2
    assert got[0].count == 2
    assert got[10].max_us == 2000.0
    # Advance incrementally and far past the horizon; slots get reused.
    for now in range(112, 700, 7):
        w.record(50.0, second=now)
        got = w.windows(now, (10, 60, 300, 0))
        seconds = [105, *range(112, now + 1, 7)]
        assert got[10].count == len([s for s in seconds if s > now - 10])
        assert got[60].count == len([s for s in [100, *seconds] if s > now - 60])
        assert got[300].count == len([s for s in [100, *seconds] if s > now - 300])
    assert got[0].count == 2 + len(range(112, 700, 7))
    assert w.merged(300, 800).count == len([s for s in range(112, 700, 7) if s > 500])


def test_window_late_sample_rebuilds() -> None:
    w = HistogramWindow()
    w.record(10.0, second=50)
    assert w.merged(60, 60).count == 1
    w.record(10.0, second=55)  # arrives after second 55 was closed
    assert w.merged(60, 60).count == 2
    assert w.merged(10, 60).count == 1
    assert w.merged(0, 60).count == 2


def test_window_steps_align() -> None:
    w = HistogramWindow()
    for sec in range(100, 120):
        w.record(100.0, second=sec)
    steps = w.steps(119, 300, 5, offset_s=2)
    assert [s for s, _ in steps] == [100, 105, 110, 115, 120]
    assert sum(h.count for _, h in steps) == 20


def test_counter_ring_series() -> None:
    c = CounterRing(horizon_s=300)
    c.add("started", 3, 10)
    c.add("started", 2, 10)
    c.add("started", 1, 12)
    assert c.series("started", 12, 3) == [(10, 5), (11, 0), (12, 1)]
    c.add("started", 1, 400)  # slot of second 100 reused; second 10 long gone
    assert c.totals["started"] == 7
    assert c.window_total("started", 400, 300) == 1


# -- recorder ---------------------------------------------------------------------------------
def _feed(rec: MetricsRecorder, rnd: random.Random, n: int, base: float = 1.7e9) -> dict:
    raw: dict[str, list[float]] = {s: [] for s in (*STAGES, "ingress")}
    for k in range(n):
        ra = base + k * 0.01
        ea = ra + rnd.uniform(0.0005, 0.005)
        fa = ea + rnd.expovariate(1 / 0.02)
        sa = fa + rnd.uniform(0.00005, 0.0005)
        fi = sa + rnd.lognormvariate(-6, 1.5)
        wr = fi + rnd.uniform(0.0002, 0.003)
        enq = rnd.uniform(0.0001, 0.002)
        rec.record_task("q", "high", "t", ea, fa, sa, fi, wr, received_at_s=ra)
        rec.record_stage("enqueue", enq, queue="q", level="high", task="t")
        for stage, d in (
            ("enqueue", enq),
            ("queue_wait", fa - ea),
            ("fetch", sa - fa),
            ("execution", fi - sa),
            ("result_write", wr - fi),
            ("end_to_end", wr - ea),
            ("ingress", ea - ra),
        ):
            raw[stage].append(d * 1000)
    return raw


def test_p95_within_two_percent_for_each_stage() -> None:
    rec = MetricsRecorder("w1", clock=FakeClock())
    raw = _feed(rec, random.Random(42), 2000)
    snap = rec.snapshot()
    for stage, values in raw.items():
        exact = nearest_rank(values, 95)
        for window_s in (10, 60, 300, 0):
            got = snap.stage(stage, window_s)
            assert got.count == 2000, (stage, window_s)
            assert abs(got.p95_ms - exact) / exact <= 0.02, (stage, got.p95_ms, exact)
        assert snap.stage(stage, 0).max_ms == pytest.approx(max(values))
    assert snap.breakdown("queue")["q"].count == 2000
    assert snap.breakdown("level", "queue_wait")["high"].count == 2000
    assert snap.breakdown("task", "end_to_end", 0)["t"].count == 2000
    assert snap.counter("succeeded") == 2000


def test_recorder_windows_follow_injected_clock() -> None:
    clock = FakeClock(500.0)
    rec = MetricsRecorder(clock=clock, wall_clock=lambda: 1.7e9 + clock.now)
    rec.record_stage("execution", 0.010, queue="a")
    rec.count("started", queue="a")
    clock.now += 11
    rec.record_stage("execution", 0.020, queue="a")
    snap = rec.snapshot()
    assert snap.stage("execution", 10).count == 1
    assert snap.stage("execution", 10).max_ms == pytest.approx(20.0)
    assert snap.stage("execution", 60).count == 2
    assert snap.stage("execution", 0).count == 2
    assert snap.uptime_s == pytest.approx(11.0)
    series = snap.rate_series("started")
    assert len(series) == 300
    assert sum(n for _, n in series) == 1
    assert series[-1][0] == int(1.7e9 + 511)  # aligned on wall-clock seconds
    assert dict(series)[int(1.7e9 + 500)] == 1
    clock.now += 400
    snap = rec.snapshot()
    assert snap.stage("execution", 300).count == 0
    assert snap.stage("execution", 0).count == 2


def test_outcomes_and_counters() -> None:
    rec = MetricsRecorder(clock=FakeClock())
    rec.record_task("a", "l", "t", 1.0, 1.1, 1.2, 1.3, 1.4, ok=True)
    rec.record_task("b", "l", "t", 1.0, 1.1, 1.2, 1.3, 1.4, ok=False)
    rec.count("enqueued", 5, queue="a")
    rec.count("late_rejected")
    snap = rec.snapshot()
    assert snap.counter("succeeded") == 1
    assert snap.counter("failed") == 1
    assert snap.counter("enqueued") == 5
    assert snap.counter("dead") == 0
    by_event = {c.event: dict(c.per_queue) for c in snap.counters}
    assert by_event["failed"] == {"b": 1}
    assert by_event["late_rejected"] == {"default": 1}


def test_dropped_samples_counted_when_buffer_full() -> None:
    rec = MetricsRecorder(clock=FakeClock(), max_buffer=10)
    for _ in range(25):
        rec.record_task("q", "l", "t", 1.0, 1.1, 1.2, 1.3, 1.4)
    for _ in range(12):
        rec.record_stage("enqueue", 0.001)
    assert rec.dropped_samples == 15 + 2
    snap = rec.snapshot()
    assert snap.dropped_samples == 17
    assert snap.stage("end_to_end", 0).count == 10
    # Folding empties the buffer, so recording resumes.
    rec.record_task("q", "l", "t", 1.0, 1.1, 1.2, 1.3, 1.4)
    assert rec.snapshot().stage("end_to_end", 0).count == 11


def test_dimension_cardinality_is_capped() -> None:
    rec = MetricsRecorder(clock=FakeClock(), max_keys_per_dimension=3)
    for k in range(10):
        rec.record_task("q", "l", f"task{k}", 1.0, 1.1, 1.2, 1.3, 1.4)
    tasks = rec.snapshot().breakdown("task", window_s=0)
    assert set(tasks) == {"task0", "task1", "task2", "_other"}
    assert tasks["_other"].count == 7


def test_depth_is_latest_sample() -> None:
    wall = [100.0]
    rec = MetricsRecorder(clock=FakeClock(), wall_clock=lambda: wall[0])
    rec.set_depth("q", "high", 5)
    wall[0] = 101.0
    rec.set_depth("q", "high", 7)
    (d,) = rec.snapshot().depths
    assert (d.queue, d.level, d.depth, d.sampled_at_s) == ("q", "high", 7, 101.0)


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(-3, 0), st.booleans()), min_size=1, max_size=60
    )
)
def test_window_matches_brute_force(ops: list[tuple[int, int, bool]]) -> None:
    """Running sums and extremes agree with re-merging every sample, including late and
    reused seconds."""
    w = HistogramWindow(horizon_s=30, windows_s=(5, 10, 30))
    seen: list[tuple[int, float]] = []
    now = 1000
    for k, (step, lag, read) in enumerate(ops):
        now += step
        sec = now + lag  # lag < 0: a sample for a second that may already be closed
        value = float(1 + k * 7919 % 1000)  # spread, so a window's max and min move
        w.record(value, second=sec)
        seen.append((sec, value))
        if read:
            got = w.windows(now, (5, 10, 30, 0))
            newest = max(s for s, _ in seen)
            for win in (5, 10, 30):
                # A straggler older than the ring only counts since start.
                expected = [v for s, v in seen if now - win < s and s > newest - 30]
                assert got[win].count == len(expected), (win, now, seen)
                if expected:
                    assert (got[win].max_us, got[win].min_us) == (max(expected), min(expected))
            assert got[0].count == len(seen)
            assert got[0].max_us == max(v for _, v in seen)


def test_breakdowns_file_each_stage_under_its_own_name() -> None:
    clock = [100.0]
    rec = MetricsRecorder(clock=lambda: clock[0], wall_clock=lambda: clock[0])
    # queue wait 1 ms, end to end 100 ms
    rec.record_task("q", "high", "t", 10.0, 10.001, 10.002, 10.05, 10.1)
    snap = rec.snapshot()
    for dim, key in (("queue", "q"), ("level", "high"), ("task", "t")):
        wait = snap.breakdown(dim, "queue_wait", 60)[key]
        e2e = snap.breakdown(dim, "end_to_end", 60)[key]
        assert abs(wait.p50_ms - 1.0) < 0.02 and abs(e2e.p50_ms - 100.0) < 1.0


def test_above_the_sample_budget_histograms_sample_with_weights_and_counts_stay_exact() -> None:
    clock = [100.0]
    rec = MetricsRecorder(
        clock=lambda: clock[0], wall_clock=lambda: clock[0], sample_budget_per_s=100
    )
    rng = random.Random(7)
    for second in (100.0, 101.0):
        clock[0] = second
        for _ in range(2000):
            wait = rng.uniform(0.001, 0.003)
            rec.record_task(
                "q",
                "default",
                "t",
                second,
                second + wait,
                second + wait,
                second + wait,
                second + 0.01,
            )
        rec.flush()
    snap = rec.snapshot()
    assert snap.counter("succeeded") == 4000
    wait = snap.stage("queue_wait", 10)
    assert wait.count == 4000  # weights keep the count honest
    assert 1.8 <= wait.p50_ms <= 2.2


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(-8, 0), st.floats(1.0, 1e6), st.booleans()),
        min_size=1,
        max_size=80,
    ),
    st.integers(0, 4),
)
def test_cached_steps_equal_a_fresh_merge(
    ops: list[tuple[int, int, float, bool]], offset_s: int
) -> None:
    """steps() reuses merged closed steps; late samples and sliding spans must not show."""
    w = HistogramWindow(horizon_s=30)
    recorded: list[tuple[float, int]] = []
    now = 1000
    for step, lag, value, read in ops:
        now += step
        w.record(value, second=now + lag)
        recorded.append((value, now + lag))
        if read:
            fresh = HistogramWindow(horizon_s=30)  # empty cache: every step merged anew
            for v, sec in recorded:
                fresh.record(v, second=sec)
            got = [(s, h.to_dict()) for s, h in w.steps(now, 30, 5, offset_s)]
            want = [(s, h.to_dict()) for s, h in fresh.steps(now, 30, 5, offset_s)]
            assert got == want


def test_per_queue_counters_and_depths_are_capped() -> None:
    rec = MetricsRecorder(clock=FakeClock(), max_keys_per_dimension=3)
    for k in range(10):
        rec.count("enqueued", queue=f"q{k}")
        rec.record_task(f"q{k}", "l", "t", 1.0, 1.1, 1.2, 1.3, 1.4)
        rec.set_depth(f"q{k}", "l", k)
    snap = rec.snapshot()
    enq = next(c for c in snap.counters if c.event == "enqueued")
    assert dict(enq.per_queue) == {"q0": 1, "q1": 1, "q2": 1, "_other": 7}
    ok = next(c for c in snap.counters if c.event == "succeeded")
    assert dict(ok.per_queue)["_other"] == 7 and ok.total == 10
    assert len(snap.depths) == 3


def test_window_reuses_slots_without_rebuilding(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker's windows get a sample every second and a read every second, far past the
    # horizon: the running sums must follow by adding and subtracting slots, never by
    # re-merging the whole ring (that cost a fifth of a busy worker's CPU).
    rebuilds = 0
    original = HistogramWindow._rebuild

    def counting(self: HistogramWindow, upto: int) -> None:
        nonlocal rebuilds
        rebuilds += 1
        original(self, upto)

    monkeypatch.setattr(HistogramWindow, "_rebuild", counting)
    w = HistogramWindow(horizon_s=300)
    for now in range(1000, 1700):
        w.record(float(now % 97 + 1), second=now)
        w.record(5.0, second=now)
        got = w.windows(now, (10, 60, 300, 0))
        for span in (10, 60, 300):
            assert got[span].count == 2 * min(span, now - 999), (now, span)
        assert got[0].count == 2 * (now - 999)
    assert rebuilds == 1  # the first read only


async def test_an_async_snapshot_lets_the_loop_run_and_equals_the_plain_one() -> None:
    clock = [100.0]
    rec = MetricsRecorder(clock=lambda: clock[0], wall_clock=lambda: clock[0])
    for k in range(300):
        queue, task = f"q{k % 3}", f"t{k % 5}"
        rec.record_task(queue, "default", task, 99.0, 99.001, 99.002, 99.01 + k / 1e4, 99.02)
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    started = turns
    snap = await rec.snapshot_async()
    other.cancel()
    # One piece would have let the other task run once at most; it ran between the series.
    assert turns - started > 10
    assert snap == rec.snapshot()
