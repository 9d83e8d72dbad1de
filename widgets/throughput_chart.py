"""`ThroughputChart`: started / succeeded / failed per second over the last minutes."""

from __future__ import annotations

from collections.abc import Sequence

from widgets.async_plot import AsyncPlot

#: Each series has its own marker as well as its colour: under NO_COLOR only the marker tells
#: them apart (and "failed" must not be the faint one).
SERIES = (("started", "blue", "dot"), ("succeeded", "green", "braille"), ("failed", "red", "x"))


def chart_span(span_s: int, first_s: float, newest_s: float) -> int:
    """Seconds a time chart shows: from a little before the first activity (at least a minute)
    to now, at most `span_s`. Shared by the dashboard's charts so their x-axes match."""
    return int(min(span_s, max(60, newest_s - first_s + 5)))


class ThroughputChart(AsyncPlot):
    """Per-second event rates; owns its plot. Feed it with `show(series_by_event)`."""

    DEFAULT_CSS = """
    ThroughputChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, span_s: int = 180, title: str = "Throughput (tasks/s)", **kwargs) -> None:
        super().__init__(**kwargs)
        self.span_s = span_s
        self.title = title
        self.last_values: dict[str, int] = {}

    def on_mount(self) -> None:
        self.show({})

    def show(self, series: dict[str, Sequence[tuple[int, int]]]) -> None:
        """Redraw from (second, count) series keyed by event name."""
        newest = max((s[-1][0] for s in series.values() if s), default=0)
        # Leading seconds before any process reported anything are not "zero throughput":
        # start the axis a little before the first activity (but show at least a minute).
        first = min((sec for s in series.values() for sec, n in s if n), default=newest)
        span = chart_span(self.span_s, first, newest)
        lines = []
        for event, color, marker in SERIES:
            points = [(sec - newest, n) for sec, n in series.get(event, ()) if newest - sec < span]
            # The newest second is still filling up: leave it out so the line does not dip.
            points = points[:-1]
            self.last_values[event] = points[-1][1] if points else 0
            if points:
                lines.append(([p[0] for p in points], [p[1] for p in points], event, color, marker))
        v = self.last_values
        if 0 < self.size.width < 80:  # the short title of a narrow chart
            title = (
                f"Throughput/s: start {v.get('started', 0):,} ok {v.get('succeeded', 0):,}"
                f" fail {v.get('failed', 0):,}"
            )
        else:
            now = " · ".join(f"{e} {v.get(e, 0):,}/s" for e, *_ in SERIES)
            title = f"{self.title} — {now}"

        def draw(plt) -> None:
            for xs, ys, label, color, marker in lines:
                plt.plot(xs, ys, label=label, color=color, marker=marker)
            if not lines:
                plt.plot([-span, 0], [0, 0], color="gray")
            plt.xlabel("seconds ago")
            plt.xlim(-span, 0)
            plt.ylim(0, None)

        self.draw(draw, title)
