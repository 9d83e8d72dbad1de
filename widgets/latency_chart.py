"""`LatencyChart`: end-to-end p50 / p95 / p99 over time (ms)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.metrics.snapshot import LatencyPoint
from widgets.async_plot import AsyncPlot

LINES = (("p50", "green"), ("p95", "yellow"), ("p99", "red"))


class LatencyChart(AsyncPlot):
    """End-to-end latency percentiles per time step; owns its plot."""

    DEFAULT_CSS = """
    LatencyChart { height: 1fr; min-height: 6; }
    """

    def __init__(
        self, *, span_s: int = 300, title: str = "End-to-end latency (ms)", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.span_s = span_s
        self.title = title
        self.latest: dict[str, float] = {}

    def on_mount(self) -> None:
        self.show(())

    def show(self, points: Sequence[LatencyPoint]) -> None:
        """Redraw from the metrics snapshot's latency series."""
        pts = [p for p in points if p.summary.count]
        newest = max((p.start_s for p in pts), default=0)
        pts = [p for p in pts if newest - p.start_s < self.span_s]
        xs = [p.start_s - newest for p in pts]
        lines = []
        for name, color in LINES:
            ys = [getattr(p.summary, f"{name}_ms") for p in pts]
            self.latest[name] = ys[-1] if ys else 0.0
            if xs:
                lines.append((ys, name, color))
        if 0 < self.size.width < 80:  # plotext drops a title wider than the plot
            pairs = [(n, self.latest.get(n, 0.0)) for n, _ in LINES]
            if max(v for _, v in pairs) < 1000:
                title = "Latency ms: " + " ".join(f"{n} {v:.0f}" for n, v in pairs)
            else:  # "1,341" thrice (and the wider axis) no longer fit half of 80 columns
                title = "Latency s: " + " ".join(f"{n} {_seconds(v)}" for n, v in pairs)
        else:
            now = " · ".join(f"{n} {self.latest.get(n, 0.0):,.1f}" for n, _ in LINES)
            title = f"{self.title} — {now}"
        span = self.span_s

        def draw(plt) -> None:
            for ys, label, color in lines:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
            if not lines:
                plt.plot([-span, 0], [0, 0], color="gray")
            plt.title(title)
            plt.xlabel("seconds ago")
            plt.ylim(0, None)

        self.draw(draw)


def _seconds(ms: float) -> str:
    """A latency in seconds, in at most three characters: "0.4", "1.3", "12"."""
    return f"{ms / 1000:.1f}" if ms < 9950 else f"{ms / 1000:.0f}"
