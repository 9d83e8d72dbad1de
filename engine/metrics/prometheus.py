"""Render a metrics snapshot in the Prometheus text exposition format (0.0.4)."""

from __future__ import annotations

from .histogram import LogHistogram, bucket_value_us
from .snapshot import MetricsSnapshot

__all__ = ["CONTENT_TYPE", "LE_BOUNDS_S", "render_prometheus"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Coarse ``le`` bounds (seconds). A log bucket is counted under ``le`` when its representative
#: value is <= le, so each cumulative count is off by at most the 1 % bucket width.
LE_BOUNDS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
)  # fmt: skip


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    return repr(float(v))


def _cumulative(h: LogHistogram) -> list[int]:
    """Cumulative counts per ``LE_BOUNDS_S`` bound."""
    out = [0] * len(LE_BOUNDS_S)
    for i, n in h.buckets.items():
        v_s = bucket_value_us(i) / 1e6
        for k, le in enumerate(LE_BOUNDS_S):
            if v_s <= le:
                out[k] += n
                break
    run = 0
    for k, n in enumerate(out):
        run += n
        out[k] = run
    return out


def render_prometheus(snapshot: MetricsSnapshot) -> str:
    """Text exposition of counters, since-start stage histograms, depths and drops."""
    lines: list[str] = []
    for c in snapshot.counters:
        name = f"spool_tasks_{c.event}_total"
        lines.append(f"# HELP {name} Tasks {c.event} since the process (or fleet) started.")
        lines.append(f"# TYPE {name} counter")
        for queue, n in c.per_queue:
            lines.append(f'{name}{{queue="{_esc(queue)}"}} {n}')

    name = "spool_stage_duration_seconds"
    lines.append(f"# HELP {name} Duration of each task stage since start.")
    lines.append(f"# TYPE {name} histogram")
    for s in snapshot.stages:
        if s.window_s != 0:
            continue
        h = LogHistogram.from_dict(s.histogram)
        st = _esc(s.stage)
        for le, n in zip(LE_BOUNDS_S, _cumulative(h), strict=True):
            lines.append(f'{name}_bucket{{stage="{st}",le="{le}"}} {n}')
        lines.append(f'{name}_bucket{{stage="{st}",le="+Inf"}} {h.count}')
        lines.append(f'{name}_sum{{stage="{st}"}} {_num(h.sum_us / 1e6)}')
        lines.append(f'{name}_count{{stage="{st}"}} {h.count}')

    name = "spool_queue_depth"
    lines.append(f"# HELP {name} Pending tasks per queue and level, as last sampled.")
    lines.append(f"# TYPE {name} gauge")
    for d in snapshot.depths:
        lines.append(f'{name}{{queue="{_esc(d.queue)}",level="{_esc(d.level)}"}} {d.depth}')

    name = "spool_metric_samples_dropped_total"
    lines.append(f"# HELP {name} Metric samples dropped because the recorder buffer was full.")
    lines.append(f"# TYPE {name} counter")
    lines.append(f"{name} {snapshot.dropped_samples}")
    return "\n".join(lines) + "\n"
