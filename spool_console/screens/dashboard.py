"""Screen 1, Dashboard: throughput, latency, stages, depth, auto-scaler, queues not moving,
dropped samples."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from spool_console.screens.base import SpoolScreen
from spool_console.snapshots import ConsoleSnapshot
from widgets.counters_panel import CountersPanel
from widgets.depth_panel import DepthPanel
from widgets.latency_chart import LatencyChart
from widgets.scaler_panel import ScalerPanel
from widgets.stage_table import StageTable
from widgets.throughput_chart import ThroughputChart


class DashboardScreen(SpoolScreen):
    """The fleet at a glance; nothing here changes anything."""

    SCREEN_KEY = "1"
    DEFAULT_CSS = """
    DashboardScreen #charts { height: 1fr; min-height: 8; }
    DashboardScreen #charts > * { width: 1fr; }
    DashboardScreen #bottom { height: auto; }
    DashboardScreen .panel {
        border: round $primary 50%; border-title-color: $text-accent; height: auto;
    }
    DashboardScreen #left { width: 1fr; height: auto; }
    DashboardScreen.-short #counters-box { display: none; }
    DashboardScreen #side { width: 1fr; height: auto; }
    DashboardScreen #dropped { height: 1; color: $warning; padding: 0 1; display: none; }
    DashboardScreen #dropped.-shown { display: block; }
    DashboardScreen #stuck { height: auto; max-height: 2; color: $warning; padding: 0 1; }
    DashboardScreen #stuck { display: none; }
    DashboardScreen #stuck.-shown { display: block; }
    DashboardScreen #empty-hint { height: auto; color: $text-accent; padding: 0 1; display: none; }
    DashboardScreen #empty-hint.-shown { display: block; }
    DashboardScreen.-narrow #left { width: 50; }
    DashboardScreen.-narrow #side { width: 1fr; }
    DashboardScreen.-short #charts { min-height: 6; }
    """

    def compose(self) -> ComposeResult:
        yield self.compose_status()
        with Horizontal(id="charts"):
            yield ThroughputChart(id="throughput")
            yield LatencyChart(id="latency")
        with Horizontal(id="bottom"):
            with Vertical(id="left"):
                with Vertical(id="stages-box", classes="panel") as box:
                    box.border_title = "Stages · last 60 s (ms)"
                    yield StageTable(id="stages")
                with Vertical(id="counters-box", classes="panel") as box:
                    box.border_title = "Events (fleet)"
                    yield CountersPanel(id="counters")
            with Vertical(id="side"):
                with Vertical(id="depth-box", classes="panel") as box:
                    box.border_title = "Depth per priority"
                    yield DepthPanel(id="depth")
                with Vertical(id="scaler-box", classes="panel") as box:
                    box.border_title = "Auto-scaler"
                    yield ScalerPanel(decisions=4, id="scaler")
        yield Static("", id="empty-hint")
        yield Static("", id="stuck")
        yield Static("", id="dropped")
        yield self.compose_footer()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 120, "-narrow")
        self.set_class(self.size.height < 34, "-short")

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        m = snap.metrics
        series = {e: m.rate_series(e) for e in ("started", "succeeded", "failed")} if m else {}
        self.query_one(ThroughputChart).show(series)
        self.query_one(LatencyChart).show(m.latency_series if m else ())
        self.query_one(StageTable).show(m)
        self.query_one(CountersPanel).show(m)
        narrow, short = self.size.width < 120, self.size.height < 34
        self.query_one(DepthPanel).show(snap.queues, bar_width=10 if narrow else 30, compact=short)
        scaler = self.query_one(ScalerPanel)
        scaler.decisions = 1 if short else 4
        scaler.show(snap.pool, now_s=snap.taken_at_s, absent=snap.no_pool_reason)
        self._show_empty_hint(snap)
        stuck = [d for d in snap.diagnoses if not d.moving]
        line = self.query_one("#stuck", Static)
        line.set_class(bool(stuck), "-shown")
        if stuck:
            line.update(
                "⚠ not moving: " + " · ".join(f"{d.queue}: {escape(d.sentence)}" for d in stuck)
            )
        dropped = self.query_one("#dropped", Static)
        n = m.dropped_samples if m else 0
        dropped.set_class(n > 0, "-shown")
        if n:
            dropped.update(
                f"⚠ {n:,} metric samples dropped (recorder overloaded;"
                " rates and latencies are undercounted)"
            )

    def _show_empty_hint(self, snap: ConsoleSnapshot) -> None:
        """A first run with nothing to show says what to do next rather than flat lines."""
        m = snap.metrics
        idle = (
            snap.connected
            and not any(q.pending or q.scheduled or q.active or q.dead for q in snap.queues)
            and (m is None or not any(m.counter(e) for e in ("started", "succeeded", "failed")))
        )
        hint = self.query_one("#empty-hint", Static)
        hint.set_class(idle, "-shown")
        if not idle:
            return
        steps = ["nothing has run yet. Try `spool-console --demo` for a synthetic load"]
        if not self.spool.read_only:
            steps.append("2 then n to enqueue a task")
            steps.append("5 then r to run a benchmark")
        steps.append("? lists every key")
        hint.update("→ " + " · ".join(steps))
