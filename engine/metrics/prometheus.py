"""Prometheus exposition of a metrics snapshot and of queue states, through prometheus-client.

Names and units follow the Prometheus conventions: seconds, `_total` counters, base units.
A collector builds the families from one snapshot per scrape (`prometheus_client` does the
text format and escaping). Task names and queues beyond the recorder's cap are folded into
the label value `other`, so a producer inventing names cannot grow the series without bound.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .histogram import LogHistogram, bucket_value_us
from .recorder import OTHER_KEY
from .snapshot import MetricsSnapshot

if TYPE_CHECKING:
    from engine.flow import QueueFlow
    from engine.queues import QueueGauge

__all__ = ["CONTENT_TYPE", "LE_BOUNDS_S", "render_prometheus"]

#: The classic text format: what `generate_latest` writes for our ASCII names, and what every
#: Prometheus server accepts (prometheus-client >= 0.22 labels its output version=1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Coarse ``le`` bounds (seconds). A log bucket is counted under ``le`` when its representative
#: value is <= le, so each cumulative count is off by at most the 1 % bucket width.
LE_BOUNDS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
)  # fmt: skip


def _label(value: str) -> str:
    return "other" if value == OTHER_KEY else value


def _buckets(h: LogHistogram) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs, ending with +Inf."""
    out = [0] * len(LE_BOUNDS_S)
    for i, n in h.buckets.items():
        v_s = bucket_value_us(i) / 1e6
        for k, le in enumerate(LE_BOUNDS_S):
            if v_s <= le:
                out[k] += n
                break
    pairs: list[tuple[str, float]] = []
    run = 0
    for le, n in zip(LE_BOUNDS_S, out, strict=True):
        run += n
        pairs.append((repr(le), run))
    pairs.append(("+Inf", h.count))
    return pairs


def _families(snap: MetricsSnapshot, queues: Sequence[QueueGauge]) -> Iterator[Metric]:
    for c in snap.counters:
        counter = CounterMetricFamily(
            f"spool_tasks_{c.event}", f"Tasks {c.event} since the process (or fleet) started.",
            labels=["queue"],
        )
        for queue, n in c.per_queue:
            counter.add_metric([_label(queue)], n)
        yield counter

    stage = HistogramMetricFamily(
        "spool_stage_duration_seconds", "Duration of each task stage since start.",
        labels=["stage"],
    )
    for s in snap.stages:
        if s.window_s == 0:
            h = LogHistogram.from_dict(s.histogram)
            stage.add_metric([s.stage], _buckets(h), h.sum_us / 1e6)
    yield stage
    for dimension in ("queue", "task"):
        by = HistogramMetricFamily(
            f"spool_stage_duration_by_{dimension}_seconds",
            f"Queue wait and end-to-end duration per {dimension} since start "
            f"({dimension}s beyond the cap are labelled other).",
            labels=["stage", dimension],
        )
        for b in snap.breakdowns:
            if b.dimension == dimension and b.window_s == 0:
                h = LogHistogram.from_dict(b.histogram)
                by.add_metric([b.stage, _label(b.key)], _buckets(h), h.sum_us / 1e6)
        yield by

    depth = GaugeMetricFamily(
        "spool_queue_depth", "Pending tasks per queue and level, as last sampled by a worker.",
        labels=["queue", "level"],
    )
    for d in snap.depths:
        depth.add_metric([_label(d.queue), d.level], d.depth)
    yield depth
    yield CounterMetricFamily(
        "spool_metric_samples_dropped",
        "Metric samples dropped because the recorder buffer was full.",
        value=snap.dropped_samples,
    )
    yield from _queue_families(queues)


def _queue_families(queues: Sequence[QueueGauge]) -> Iterator[Metric]:
    gauges = {
        name: GaugeMetricFamily(f"spool_queue_{name}_tasks", text, labels=["queue"])
        for name, text in (
            ("pending", "Tasks waiting to run, every level."),
            ("scheduled", "Tasks delayed or waiting for a retry."),
            ("active", "Tasks running under a lease."),
            ("dead", "Tasks in the dead-letter queue."),
        )
    }
    oldest = GaugeMetricFamily(
        "spool_queue_oldest_pending_age_seconds",
        "Age of the oldest task waiting to run (0 when none waits).",
        labels=["queue"],
    )
    late = CounterMetricFamily(
        "spool_queue_late_completions",
        "Results refused because their lease had expired (another worker took the task).",
        labels=["queue"],
    )
    evicted = CounterMetricFamily(
        "spool_queue_dead_evictions",
        "Dead letters dropped to keep the dead-letter queue within its cap.",
        labels=["queue"],
    )
    for q in queues:
        for name, family in gauges.items():
            family.add_metric([q.queue], getattr(q, name))
        oldest.add_metric([q.queue], q.oldest_pending_age_s or 0.0)
        late.add_metric([q.queue], q.late_rejected)
        evicted.add_metric([q.queue], q.dead_evicted)
    if queues:
        yield from gauges.values()
        yield from (oldest, late, evicted)


def _flow_families(flows: Mapping[str, QueueFlow]) -> Iterator[Metric]:
    throttled = CounterMetricFamily(
        "spool_throttled",
        "Tasks handed back by fetch because of a rate or concurrency limit.",
        labels=["queue", "limit"],
    )
    waiting = GaugeMetricFamily(
        "spool_limited_waiting", "Tasks waiting on a limit now.", labels=["queue", "limit"]
    )
    starved = CounterMetricFamily(
        "spool_starved_served",
        "Lower-level tasks served before higher ones by max_wait.",
        labels=["queue"],
    )
    for q, f in flows.items():
        throttled.add_metric([q, "rate"], f.throttled_rate)
        throttled.add_metric([q, "concurrency"], f.throttled_concurrency)
        waiting.add_metric([q, "rate"], f.waiting_rate)
        waiting.add_metric([q, "concurrency"], f.waiting_concurrency)
        starved.add_metric([q], f.starved_served)
    yield from (throttled, waiting, starved)


class _SnapshotCollector:
    """A one-scrape collector over a snapshot taken by the caller."""

    def __init__(
        self,
        snap: MetricsSnapshot,
        queues: Sequence[QueueGauge],
        flows: Mapping[str, QueueFlow] | None,
    ) -> None:
        self._snap = snap
        self._queues = queues
        self._flows = flows

    def collect(self) -> Iterator[Metric]:
        yield from _families(self._snap, self._queues)
        if self._flows is not None:
            yield from _flow_families(self._flows)


def render_prometheus(
    snap: MetricsSnapshot,
    queues: Sequence[QueueGauge] = (),
    flows: Mapping[str, QueueFlow] | None = None,
) -> str:
    """Text exposition of counters, stage histograms (overall, per queue, per task), depths
    and, when given, queue gauges and flow-control series (per queue)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap, queues, flows))
    return generate_latest(registry).decode()
