"""`LatencyChart`: end-to-end p50 / p95 / p99 over time (ms)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.metrics.snapshot import LatencyPoint
from widgets.async_plot import AsyncPlot
from widgets.throughput_chart import chart_span

LINES = (("p50", "green", "dot"), ("p95", "yellow", "braille"), ("p99", "red", "+"))
#: A p99 this many times the highest p95 is an outlier: it may not set the y-axis for the rest.
OUTLIER_FACTOR = 3.0


def fmt_latency(ms: float) -> str:
    """A latency with its unit: `3.21 ms`, `412 ms`, `62.53 s`."""
    if ms >= 1000:
        return f"{ms / 1000:,.2f} s"
    if ms >= 100:
        return f"{ms:,.0f} ms"
    return f"{ms:,.2f} ms"


class LatencyChart(AsyncPlot):
    """End-to-end latency percentiles per time step; owns its plot."""

    DEFAULT_CSS = """
    LatencyChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, span_s: int = 180, title: str = "End-to-end latency", **kwargs) -> None:
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
        first = min((p.start_s for p in pts), default=newest)
        # The same window as the throughput chart beside it, so the two read together.
        span = chart_span(self.span_s, first, newest)
        pts = [p for p in pts if newest - p.start_s < span]
        xs = [p.start_s - newest for p in pts]
        p95_top = max((p.summary.p95_ms for p in pts), default=0.0)
        p99_top = max((p.summary.p99_ms for p in pts), default=0.0)
        top = None
        clipped = ""
        if p95_top and p99_top > OUTLIER_FACTOR * p95_top:
            top = OUTLIER_FACTOR * p95_top
            clipped = f" · p99 off scale, max {fmt_latency(p99_top)}"
        lines = []
        for name, color, marker in LINES:
            ys = [getattr(p.summary, f"{name}_ms") for p in pts]
            self.latest[name] = ys[-1] if ys else 0.0
            if xs:
                # Off-scale points sit on the top edge: plotext drops points outside the
                # y-limits, and its legend fails on a labelled series left with none.
                lines.append(([min(y, top) for y in ys] if top else ys, name, color, marker))
        if 0 < self.size.width < 80:  # the short title of a narrow chart
            now = " ".join(f"{n} {fmt_latency(self.latest.get(n, 0.0))}" for n, *_ in LINES)
            title = f"Latency: {now}"
        else:
            now = " · ".join(f"{n} {fmt_latency(self.latest.get(n, 0.0))}" for n, *_ in LINES)
            title = f"{self.title} — {now}{clipped}"

        def draw(plt) -> None:
            for ys, label, color, marker in lines:
                plt.plot(xs, ys, label=label, color=color, marker=marker)
            if not lines:
                plt.plot([-span, 0], [0, 0], color="gray")
            plt.xlabel("seconds ago")
            plt.xlim(-span, 0)
            plt.ylabel("ms")
            plt.ylim(0, top)

        self.draw(draw, title)
