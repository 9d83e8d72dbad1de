"""Screen 2, Queues: every queue; `enter` opens one; `p` pauses/resumes; `n` enqueues a task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from engine.schedule import ScheduleInfo
from spool_console.screens.queue_actions import QueueActions, state_label, why_lines
from spool_console.screens.queue_detail import QueueDetailScreen
from spool_console.snapshots import ConsoleSnapshot
from widgets.breakdown_table import BreakdownTable
from widgets.depth_panel import DepthPanel
from widgets.limits_panel import held_back
from widgets.stage_table import fmt_ms
from widgets.vim_table import VimTable


def schedules_line(schedules: Sequence[ScheduleInfo], now_s: float) -> str:
    """Periodic tasks in a line each: timing, queue, last and next run."""
    if not schedules:
        return "[dim]Periodic tasks: none (declare one with @task(every=…) or cron=…)[/]"
    lines = []
    for s in schedules:
        timing = f"every {s.every_s:g} s" if s.every_s is not None else f"cron {s.cron}"
        if s.tz:
            timing += f" ({s.tz})"
        last = "never" if s.last_run_ms is None else f"{now_s - s.last_run_ms / 1000:,.0f} s ago"
        upcoming = max(0.0, s.next_run_ms / 1000 - now_s)
        lines.append(
            f"[b]⟳ {s.name}[/b] {timing} → {s.queue} · last {last} · next in {upcoming:,.0f} s"
        )
    return "\n".join(lines)


class QueuesScreen(QueueActions):
    """Every queue with depth per level, scheduled, active, dead, paused and wait p95."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="queues.open"),
        Binding("p", "toggle_pause", "Pause/resume", id="queues.pause"),
        Binding("n", "enqueue", "Enqueue", id="queues.enqueue"),
    ]
    DEFAULT_CSS = """
    QueuesScreen .panel { border: round $primary 50%; border-title-color: $text-accent; }
    QueuesScreen #queues-box { height: auto; max-height: 50%; }
    QueuesScreen #queues { height: auto; max-height: 100%; }
    QueuesScreen #queues-bottom { height: 1fr; }
    QueuesScreen #depth-box { width: 1fr; height: 100%; }
    QueuesScreen #tasks-box { width: 1fr; height: 100%; }
    QueuesScreen.-narrow #tasks-box { display: none; }
    QueuesScreen #hint { height: 1; color: $text-muted; padding: 0 1; }
    QueuesScreen #schedules { height: auto; max-height: 4; padding: 0 1; }
    QueuesScreen #why { height: auto; max-height: 3; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.narrow = False

    def compose(self) -> ComposeResult:
        yield self.compose_status()
        levels = self.host.snapshot.levels
        # Narrow terminals get fewer, denser columns rather than a table that scrolls sideways.
        self.narrow = self.app.size.width < 120
        self.set_class(self.narrow, "-narrow")
        with Vertical(id="queues-box", classes="panel") as box:
            box.border_title = "Queues (wait and latency: ms over the last 60 s)"
            if self.narrow:
                columns = [
                    ("Queue", "queue"),
                    ("Pending " + "/".join(lv[0] for lv in levels), "pending"),
                    ("Sched", "scheduled"),
                    ("Active", "active"),
                    ("Dead", "dead"),
                    ("State", "state"),
                    ("Wait p95", "wait"),
                ]
            else:
                columns = [
                    ("Queue", "queue"),
                    *[(f"{lv}", f"lv:{lv}") for lv in levels],
                    ("Scheduled", "scheduled"),
                    ("Active", "active"),
                    ("Dead", "dead"),
                    ("State", "state"),
                    ("Held by limits", "held"),
                    ("Succeeded", "ok"),
                    ("Failed", "failed"),
                    ("Wait p95", "wait"),
                    ("E2E p99", "e2e"),
                ]
            yield VimTable(*columns, id="queues")
        with Horizontal(id="queues-bottom"):
            with VerticalScroll(id="depth-box", classes="panel") as box:
                box.border_title = "Depth per priority"
                yield DepthPanel(id="queue-depth")
            with Vertical(id="tasks-box", classes="panel") as box:
                box.border_title = "Per task name (fleet, last 60 s, ms)"
                yield BreakdownTable("task", id="task-breakdown")
        yield Static("", id="why")
        yield Static("", id="schedules")
        yield Static(
            "enter opens a queue"
            if self.spool.read_only
            else "enter opens a queue · p pauses/resumes · n enqueues a test task",
            id="hint",
        )
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()

    def on_resize(self) -> None:
        self.recompose_if_narrow_changed(self.narrow)

    def current_queue(self) -> str | None:
        return self.query_one("#queues", VimTable).cursor_key

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        m = snap.metrics
        waits = m.breakdown("queue", "queue_wait", 60) if m else {}
        e2e = m.breakdown("queue", "end_to_end", 60) if m else {}
        per_queue = {c.event: dict(c.per_queue) for c in m.counters} if m else {}
        rows = []
        for q in snap.queues:
            wait, total = waits.get(q.queue), e2e.get(q.queue)
            if self.narrow:
                rows.append(
                    (
                        q.queue,
                        (
                            q.queue,
                            "/".join(f"{q.depth_by_level.get(lv, 0):,}" for lv in snap.levels),
                            f"{q.scheduled:,}",
                            f"{q.active:,}",
                            f"{q.dead:,}",
                            state_label(
                                q.paused, snap.diagnosis(q.queue), bool(q.pending + q.active)
                            ),
                            fmt_ms(wait.p95_ms) if wait and wait.count else "-",
                        ),
                    )
                )
                continue
            rows.append(
                (
                    q.queue,
                    (
                        q.queue,
                        *[f"{q.depth_by_level.get(lv, 0):,}" for lv in snap.levels],
                        f"{q.scheduled:,}",
                        f"{q.active:,}",
                        f"{q.dead:,}",
                        state_label(q.paused, snap.diagnosis(q.queue), bool(q.pending + q.active)),
                        held_back(q.flow),
                        f"{per_queue.get('succeeded', {}).get(q.queue, 0):,}",
                        f"{per_queue.get('failed', {}).get(q.queue, 0):,}",
                        fmt_ms(wait.p95_ms) if wait and wait.count else "-",
                        fmt_ms(total.p99_ms) if total and total.count else "-",
                    ),
                )
            )
        self.query_one("#queues", VimTable).sync(rows)
        self.query_one(DepthPanel).show(snap.queues, bar_width=20 if self.narrow else 36)
        self.query_one(BreakdownTable).show(snap.metrics)
        self.query_one("#schedules", Static).update(schedules_line(snap.schedules, time.time()))
        self._show_why(snap)

    def _show_why(self, snap: ConsoleSnapshot) -> None:
        queue = self.current_queue()
        why = self.query_one("#why", Static)
        why.update(why_lines(queue, snap.diagnosis(queue)) if queue else "")

    def on_data_table_row_highlighted(self) -> None:
        self._show_why(self.host.snapshot)

    def action_open(self) -> None:
        """`enter`: the queue's first tasks per level."""
        queue = self.current_queue()
        if queue:
            self.app.push_screen(QueueDetailScreen(queue))

    def on_data_table_row_selected(self) -> None:
        self.action_open()
