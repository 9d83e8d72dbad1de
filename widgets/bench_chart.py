"""`BenchChart`: a benchmark's live throughput (left axis) and p99 (right axis)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.bench.progress import BenchProgress
from widgets.async_plot import AsyncPlot


class BenchChart(AsyncPlot):
    """Throughput and end-to-end p99 per progress sample; owns its plot."""

    DEFAULT_CSS = """
    BenchChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, runnable: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runnable = runnable

    def on_mount(self) -> None:
        self.show(())

    def show(self, samples: Sequence[BenchProgress], empty: str = "") -> None:
        """Redraw from the run's progress samples so far."""
        pts = [s for s in samples if s.throughput_now > 0 or s.p99_ms_now > 0]
        xs = [s.elapsed_s for s in pts]
        tput = [s.throughput_now for s in pts]
        p99 = [s.p99_ms_now for s in pts]
        if pts:
            last = pts[-1]
            # An interval in which nothing finished has no p99: say so rather than "0.00".
            p99_now = f"{last.p99_ms_now:,.2f} ms" if last.p99_ms_now > 0 else "– (none finished)"
            title = f"Live: {last.throughput_now:,.0f} tasks/s · p99 {p99_now}"
        else:
            title = empty or "Live throughput (left) and p99 (right)" + (
                " — press r to run" if self.runnable else ""
            )

        def draw(plt) -> None:
            if pts:
                plt.plot(xs, tput, label="tasks/s", color="green", marker="braille")
                plt.plot(xs, p99, label="p99 ms", color="red", marker="braille", yside="right")
                # Neither a rate nor a latency goes below 0; a flat short run otherwise gets
                # a symmetric axis around its single value.
                plt.ylim(0, max(tput) * 1.1 or 1, yside="left")
                plt.ylim(0, max(p99) * 1.1 or 1, yside="right")
            else:
                plt.plot([0, 1], [0, 0], color="gray")
                plt.ylim(0, 1)
            plt.xlabel("seconds")

        self.draw(draw, title)
