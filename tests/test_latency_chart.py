"""The latency chart draws whatever the percentiles are, an off-scale p99 included."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult

from engine.metrics.snapshot import LatencyPoint, LatencySummary
from spool_console.testing import screen_text
from widgets.latency_chart import LatencyChart


class _ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LatencyChart(id="chart")


async def test_an_off_scale_p99_is_drawn_on_the_top_edge_not_crashed_on() -> None:
    # One step whose p99 is far above three times its p95: the axis is clipped at 3 × p95.
    point = LatencyPoint(
        start_s=1_000, step_s=5, summary=LatencySummary(50, 1.0, 5.0, 500.0, 500.0, 20.0)
    )
    app = _ChartApp()
    async with app.run_test(size=(160, 45)) as pilot:
        chart = app.query_one(LatencyChart)
        chart.show([point])
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert chart._picture is not None  # built: plotext raised IndexError here before
        assert "p99 off scale, max 500 ms" in str(chart.border_title)


async def test_under_no_color_every_percentile_has_its_own_marker() -> None:
    # p95 and p99 were both drawn in braille: under NO_COLOR only a grey shade told them apart.
    point = LatencyPoint(
        start_s=1_000, step_s=5, summary=LatencySummary(50, 1.0, 5.0, 9.0, 12.0, 20.0)
    )
    app = _ChartApp()
    async with app.run_test(size=(100, 30)) as pilot:
        chart = app.query_one(LatencyChart)
        chart.show([point, LatencyPoint(1_005, 5, point.summary)])
        await app.workers.wait_for_complete()
        await pilot.pause()
        # Legend lines read "<marker><marker> p95" inside the plot frame.
        markers = dict(
            (m.group(2), m.group(1))
            for m in re.finditer(r"[│┤] (\S\S) (p50|p95|p99) ", screen_text(app))
        )
        assert set(markers) == {"p50", "p95", "p99"}, markers
        assert len(set(markers.values())) == 3, markers
