"""`StageTable`: p50 / p95 / p99 / max per pipeline stage over a window."""

from __future__ import annotations

from engine.metrics.snapshot import MetricsSnapshot
from widgets.vim_table import VimTable

STAGES = (
    ("enqueue", "enqueue"),
    ("queue_wait", "queue wait"),
    ("fetch", "fetch"),
    ("execution", "execution"),
    ("result_write", "result write"),
    ("end_to_end", "end to end"),
)


def fmt_ms(value: float) -> str:
    """Milliseconds with sensible precision, never another unit: every table using it says
    "ms" in its title (a cell reading `1.02 s` beside `409` mixed units, and at 80 columns
    the clipped column showed `1.02`, as if milliseconds)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class StageTable(VimTable):
    """One row per stage; updated in place."""

    DEFAULT_CSS = """
    StageTable { height: auto; max-height: 9; }
    """

    def __init__(self, window_s: int = 60, **kwargs) -> None:
        super().__init__(
            ("stage", "stage"),
            ("count", "count"),
            ("p50", "p50"),
            ("p95", "p95"),
            ("p99", "p99"),
            ("max", "max"),
            cursor_type="none",
            zebra_stripes=True,
            **kwargs,
        )
        self.window_s = window_s

    def on_mount(self) -> None:
        self.show(None)

    def show(self, metrics: MetricsSnapshot | None) -> None:
        """Fill from a metrics snapshot (zeros when there is none yet)."""
        rows = []
        for stage, label in STAGES:
            if metrics is None:
                rows.append((stage, (label, "0", "-", "-", "-", "-")))
                continue
            s = metrics.stage(stage, self.window_s)
            if not s.count:
                rows.append((stage, (label, "0", "-", "-", "-", "-")))
            else:
                rows.append(
                    (
                        stage,
                        (
                            label,
                            f"{s.count:,}",
                            fmt_ms(s.p50_ms),
                            fmt_ms(s.p95_ms),
                            fmt_ms(s.p99_ms),
                            fmt_ms(s.max_ms),
                        ),
                    )
                )
        self.sync(rows)
