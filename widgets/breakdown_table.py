"""`BreakdownTable`: latency percentiles per task name (or queue, or level) over a window."""

from __future__ import annotations

from engine.metrics.snapshot import MetricsSnapshot
from widgets.stage_table import fmt_ms
from widgets.vim_table import VimTable


class BreakdownTable(VimTable):
    """One row per key of a metrics breakdown, busiest first; updated in place."""

    def __init__(self, dimension: str = "task", window_s: int = 60, **kwargs) -> None:
        super().__init__(
            (dimension.capitalize(), "key"),
            ("Done (60 s)", "count"),
            ("Wait p95", "wait"),
            ("E2E p50", "p50"),
            ("E2E p95", "p95"),
            ("E2E p99", "p99"),
            ("Max", "max"),
            **kwargs,
        )
        self.dimension = dimension
        self.window_s = window_s

    def show(self, metrics: MetricsSnapshot | None) -> None:
        """Fill from the fleet metrics snapshot."""
        if metrics is None:
            self.sync([])
            return
        e2e = metrics.breakdown(self.dimension, "end_to_end", self.window_s)
        wait = metrics.breakdown(self.dimension, "queue_wait", self.window_s)
        rows = []
        for key, s in sorted(e2e.items(), key=lambda kv: -kv[1].count):
            if not s.count:
                continue
            w = wait.get(key)
            rows.append(
                (
                    key,
                    (
                        key,
                        f"{s.count:,}",
                        fmt_ms(w.p95_ms) if w and w.count else "-",
                        fmt_ms(s.p50_ms),
                        fmt_ms(s.p95_ms),
                        fmt_ms(s.p99_ms),
                        fmt_ms(s.max_ms),
                    ),
                )
            )
        self.sync(rows)
