"""`CountersPanel`: fleet event totals and their rate over the last 10 s, plus dropped samples."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.metrics.snapshot import MetricsSnapshot

EVENTS = (
    ("enqueued", "enqueued", ""),
    ("started", "started", ""),
    ("succeeded", "succeeded", "green"),
    ("failed", "failed attempts", "red"),
    ("retried", "retried", "yellow"),
    ("dead", "dead-lettered", "bold red"),
    ("late_rejected", "late (stale lease)", "dim"),
)


class CountersPanel(Static):
    """Totals since each process started, summed over the fleet."""

    DEFAULT_CSS = """
    CountersPanel { height: auto; padding: 0 1; }
    """

    def show(self, metrics: MetricsSnapshot | None) -> None:
        """Redraw from the fleet metrics snapshot."""
        if metrics is None:
            self.update(Text("no metrics yet", style="dim"))
            return
        table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bold")
        table.add_column("event")
        table.add_column("total", justify="right")
        table.add_column("/s (10 s)", justify="right")
        for event, label, style in EVENTS:
            series = metrics.rate_series(event)
            recent = [n for _, n in series[-11:-1]]  # the newest second is still filling
            rate = sum(recent) / len(recent) if recent else 0.0
            table.add_row(Text(label, style=style), f"{metrics.counter(event):,}", f"{rate:,.0f}")
        caption = f"{metrics.processes} process(es) reporting"
        if metrics.dropped_samples:
            caption += f" · {metrics.dropped_samples:,} samples dropped"
        table.caption = caption
        table.caption_style = "dim"
        self.update(table)
