"""Frozen metric snapshots: what crosses from the engine to the UI, Redis and Prometheus.

A snapshot carries both the summaries a screen shows and the raw histogram data (the compact
``LogHistogram.to_dict()`` form) needed to merge snapshots from several processes exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .histogram import LogHistogram

__all__ = [
    "SCHEMA_VERSION",
    "BreakdownStats",
    "CounterStats",
    "LatencyPoint",
    "LatencySummary",
    "MetricsSnapshot",
    "QueueDepth",
    "StageStats",
    "decode_snapshot",
    "encode_snapshot",
    "merge_snapshots",
    "summarize",
]

SCHEMA_VERSION = 1
#: worker_id of a snapshot merged from several processes.
FLEET_ID = "fleet"


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one histogram, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


EMPTY_SUMMARY = LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)


def summarize(hist: LogHistogram) -> LatencySummary:
    """Summarise a histogram of microseconds as a :class:`LatencySummary` in ms."""
    if not hist.count:
        return EMPTY_SUMMARY
    p50, p95, p99 = hist.percentiles((50.0, 95.0, 99.0))
    return LatencySummary(
        count=hist.count,
        p50_ms=p50 / 1000.0,
        p95_ms=p95 / 1000.0,
        p99_ms=p99 / 1000.0,
        max_ms=hist.max_us / 1000.0,
        mean_ms=hist.mean_us / 1000.0,
    )


@dataclass(frozen=True, slots=True)
class StageStats:
    """One stage over one window (``window_s`` 0 = since start); ``histogram`` is raw data."""

    stage: str
    window_s: int
    summary: LatencySummary
    histogram: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class BreakdownStats:
    """One stage over one window for one queue, level or task name."""

    dimension: str  # "queue" | "level" | "task"
    key: str
    stage: str
    window_s: int
    summary: LatencySummary
    histogram: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class CounterStats:
    """An event counter: total since start, per queue, and per wall-clock second."""

    event: str
    total: int
    per_queue: tuple[tuple[str, int], ...]
    rate_series: tuple[tuple[int, int], ...]  # (wall-clock second, count), last 300 s


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    """End-to-end latency percentiles over one step of a time series."""

    start_s: int  # wall-clock second the step begins, aligned to a multiple of step_s
    step_s: int
    summary: LatencySummary
    histogram: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Pending tasks in one queue level, as last sampled."""

    queue: str
    level: str
    depth: int
    sampled_at_s: float  # wall clock


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything one process (or, merged, the fleet) knows about its metrics."""

    worker_id: str
    taken_at_s: float  # wall clock
    uptime_s: float
    stages: tuple[StageStats, ...] = ()
    breakdowns: tuple[BreakdownStats, ...] = ()
    counters: tuple[CounterStats, ...] = ()
    latency_series: tuple[LatencyPoint, ...] = ()
    depths: tuple[QueueDepth, ...] = ()
    dropped_samples: int = 0
    processes: int = 1  # how many process snapshots were merged into this one

    def stage(self, stage: str, window_s: int = 60) -> LatencySummary:
        """Summary of ``stage`` over ``window_s`` (empty summary when absent)."""
        for s in self.stages:
            if s.stage == stage and s.window_s == window_s:
                return s.summary
        return EMPTY_SUMMARY

    def breakdown(
        self, dimension: str, stage: str = "end_to_end", window_s: int = 60
    ) -> dict[str, LatencySummary]:
        """Per-key summaries of ``stage`` for ``dimension`` ("queue", "level", "task")."""
        return {
            b.key: b.summary
            for b in self.breakdowns
            if b.dimension == dimension and b.stage == stage and b.window_s == window_s
        }

    def counter(self, event: str) -> int:
        """Total of ``event`` since start (0 when never counted)."""
        for c in self.counters:
            if c.event == event:
                return c.total
        return 0

    def rate_series(self, event: str) -> tuple[tuple[int, int], ...]:
        """(wall-clock second, count) series of ``event``."""
        for c in self.counters:
            if c.event == event:
                return c.rate_series
        return ()


# -- wire form ---------------------------------------------------------------------------------
def _summary_list(s: LatencySummary) -> list[float]:
    return [s.count, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms, s.mean_ms]


def _summary_from(v: Sequence[Any]) -> LatencySummary:
    return LatencySummary(
        int(v[0]), float(v[1]), float(v[2]), float(v[3]), float(v[4]), float(v[5])
    )


def _pack_series(series: Sequence[tuple[int, int]]) -> Any:
    """A contiguous per-second series as ``{"s": first_second, "v": [counts]}``; else pairs."""
    if series and all(sec == series[0][0] + k for k, (sec, _) in enumerate(series)):
        return {"s": series[0][0], "v": [n for _, n in series]}
    return [list(p) for p in series]


def _unpack_series(data: Any) -> tuple[tuple[int, int], ...]:
    if isinstance(data, dict):
        start = int(data["s"])
        return tuple((start + k, int(n)) for k, n in enumerate(data["v"]))
    return tuple((int(sec), int(n)) for sec, n in data)


def encode_snapshot(snap: MetricsSnapshot) -> bytes:
    """Encode a snapshot as compact JSON bytes (orjson)."""
    doc = {
        "v": SCHEMA_VERSION,
        "w": snap.worker_id,
        "t": snap.taken_at_s,
        "u": snap.uptime_s,
        "st": [[s.stage, s.window_s, _summary_list(s.summary), s.histogram] for s in snap.stages],
        "bd": [
            [b.dimension, b.key, b.stage, b.window_s, _summary_list(b.summary), b.histogram]
            for b in snap.breakdowns
        ],
        "c": [[c.event, c.total, c.per_queue, _pack_series(c.rate_series)] for c in snap.counters],
        "ls": [
            [p.start_s, p.step_s, _summary_list(p.summary), p.histogram]
            for p in snap.latency_series
        ],
        "d": [[d.queue, d.level, d.depth, d.sampled_at_s] for d in snap.depths],
        "dr": snap.dropped_samples,
        "p": snap.processes,
    }
    return orjson.dumps(doc)


def decode_snapshot(data: bytes | str) -> MetricsSnapshot:
    """Decode :func:`encode_snapshot` output; raises ``ValueError`` on a foreign schema."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("v") != SCHEMA_VERSION:
        raise ValueError("not a spool metrics snapshot (or an unknown schema version)")
    return MetricsSnapshot(
        worker_id=str(doc["w"]),
        taken_at_s=float(doc["t"]),
        uptime_s=float(doc["u"]),
        stages=tuple(StageStats(s, int(w), _summary_from(m), h) for s, w, m, h in doc["st"]),
        breakdowns=tuple(
            BreakdownStats(d, k, s, int(w), _summary_from(m), h) for d, k, s, w, m, h in doc["bd"]
        ),
        counters=tuple(
            CounterStats(
                e,
                int(t),
                tuple((str(q), int(n)) for q, n in pq),
                _unpack_series(rs),
            )
            for e, t, pq, rs in doc["c"]
        ),
        latency_series=tuple(
            LatencyPoint(int(s), int(step), _summary_from(m), h) for s, step, m, h in doc["ls"]
        ),
        depths=tuple(QueueDepth(q, lv, int(n), float(at)) for q, lv, n, at in doc["d"]),
        dropped_samples=int(doc["dr"]),
        processes=int(doc.get("p", 1)),
    )


# -- merging ----------------------------------------------------------------------------------
def _merge_hists(dicts: Iterable[dict[str, Any]]) -> LogHistogram:
    acc = LogHistogram()
    for d in dicts:
        acc.merge(LogHistogram.from_dict(d))
    return acc


def merge_snapshots(
    snaps: Sequence[MetricsSnapshot], *, series_span_s: int = 300
) -> MetricsSnapshot:
    """Merge process snapshots into one fleet snapshot.

    Histograms are merged bucket by bucket and summaries recomputed from them; counters are
    summed; rate series are summed per wall-clock second (the last ``series_span_s`` seconds
    up to the newest snapshot); depth is a property of the queue, not of a process, so the
    most recent sample wins (the larger one on a tie).
    """
    if not snaps:
        raise ValueError("merge_snapshots needs at least one snapshot")
    if len(snaps) == 1:
        return snaps[0]

    stage_h: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for snap in snaps:
        for s in snap.stages:
            stage_h.setdefault((s.stage, s.window_s), []).append(s.histogram)
    stages = []
    for (stage, window_s), dicts in stage_h.items():
        h = _merge_hists(dicts)
        stages.append(StageStats(stage, window_s, summarize(h), h.to_dict()))

    bd_h: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for snap in snaps:
        for b in snap.breakdowns:
            bd_h.setdefault((b.dimension, b.key, b.stage, b.window_s), []).append(b.histogram)
    breakdowns = []
    for (dim, key, stage, window_s), dicts in bd_h.items():
        h = _merge_hists(dicts)
        breakdowns.append(BreakdownStats(dim, key, stage, window_s, summarize(h), h.to_dict()))

    newest_s = max(int(s.taken_at_s) for s in snaps)
    oldest_s = newest_s - series_span_s + 1
    totals: dict[str, int] = {}
    per_queue: dict[str, dict[str, int]] = {}
    rates: dict[str, dict[int, int]] = {}
    for snap in snaps:
        for c in snap.counters:
            totals[c.event] = totals.get(c.event, 0) + c.total
            pq = per_queue.setdefault(c.event, {})
            for q, n in c.per_queue:
                pq[q] = pq.get(q, 0) + n
            r = rates.setdefault(c.event, {})
            for sec, n in c.rate_series:
                r[sec] = r.get(sec, 0) + n
    counters = []
    for event, total in totals.items():
        r = rates[event]
        series = tuple((sec, r.get(sec, 0)) for sec in range(oldest_s, newest_s + 1))
        counters.append(CounterStats(event, total, tuple(sorted(per_queue[event].items())), series))

    pts: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for snap in snaps:
        for p in snap.latency_series:
            pts.setdefault((p.start_s, p.step_s), []).append(p.histogram)
    latency = []
    for (start_s, step_s), dicts in sorted(pts.items()):
        if start_s + step_s <= oldest_s:
            continue
        h = _merge_hists(dicts)
        latency.append(LatencyPoint(start_s, step_s, summarize(h), h.to_dict()))

    depth: dict[tuple[str, str], QueueDepth] = {}
    for snap in snaps:
        for d in snap.depths:
            cur = depth.get((d.queue, d.level))
            if cur is None or (d.sampled_at_s, d.depth) > (cur.sampled_at_s, cur.depth):
                depth[(d.queue, d.level)] = d

    return MetricsSnapshot(
        worker_id=FLEET_ID,
        taken_at_s=max(s.taken_at_s for s in snaps),
        uptime_s=max(s.uptime_s for s in snaps),
        stages=tuple(stages),
        breakdowns=tuple(breakdowns),
        counters=tuple(counters),
        latency_series=tuple(latency),
        depths=tuple(sorted(depth.values(), key=lambda d: (d.queue, d.level))),
        dropped_samples=sum(s.dropped_samples for s in snaps),
        processes=sum(s.processes for s in snaps),
    )
