"""Spool metrics: log histograms, time windows, the recorder, snapshots, publishing, Prometheus.

Pure Python + orjson; nothing here imports a UI toolkit or awaits on the recording path.
`engine.metrics.prometheus` (prometheus-client) is imported only by what serves /metrics.
"""

from __future__ import annotations

from .histogram import LogHistogram
from .publisher import (
    SnapshotPublisher,
    fetch_fleet_snapshot,
    read_snapshots,
    stats_index,
    stats_key,
)
from .recorder import ALL_STAGES, EVENTS, INGRESS, STAGES, WINDOWS_S, MetricsRecorder
from .snapshot import (
    BreakdownStats,
    CounterStats,
    LatencyPoint,
    LatencySummary,
    MetricsSnapshot,
    QueueDepth,
    StageStats,
    decode_snapshot,
    encode_snapshot,
    merge_snapshots,
)
from .window import CounterRing, HistogramWindow

__all__ = [
    "ALL_STAGES",
    "EVENTS",
    "INGRESS",
    "STAGES",
    "WINDOWS_S",
    "BreakdownStats",
    "CounterRing",
    "CounterStats",
    "HistogramWindow",
    "LatencyPoint",
    "LatencySummary",
    "LogHistogram",
    "MetricsRecorder",
    "MetricsSnapshot",
    "QueueDepth",
    "SnapshotPublisher",
    "StageStats",
    "decode_snapshot",
    "encode_snapshot",
    "fetch_fleet_snapshot",
    "merge_snapshots",
    "read_snapshots",
    "stats_index",
    "stats_key",
]
