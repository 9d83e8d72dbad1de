"""Screen 2, Queues: every queue; `enter` opens one; `p` pauses/resumes; `n` enqueues a task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from engine import cancel as cancel_ops
from engine import queues as queue_ops
from engine.diagnosis import Diagnosis, duration_text
from engine.schedule import ScheduleInfo
from engine.task import TaskInfo, TaskSpec
from spool_console.engine_host import ConsoleSnapshot, EngineUnavailable
from spool_console.screens.base import SpoolScreen
from spool_console.screens.detail import DetailScreen, as_json, fmt_ms_time, record_view
from spool_console.screens.enqueue_form import EnqueueScreen
from spool_console.task_views import PAGE, ViewRows, load_view, view_names
from widgets.breakdown_table import BreakdownTable
from widgets.depth_panel import DepthPanel
from widgets.limits_panel import LimitsPanel, held_back
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


def state_label(paused: bool, diagnosis: Diagnosis | None, busy: bool = True) -> str:
    """The State cell: what the queue's diagnosis says first, in a word or two."""
    if diagnosis is None or not diagnosis.reasons:
        return "‖ paused" if paused else ("moving" if busy else "idle")
    code = diagnosis.reasons[0].code
    return "‖ paused" if code == "paused" else code.replace("_", " ")


def why_lines(queue: str, diagnosis: Diagnosis | None) -> str:
    """Every reason of one queue's diagnosis (and its oldest pending task's age)."""
    if diagnosis is not None and diagnosis.oldest_pending_age_s is not None:
        age = f" · oldest pending {duration_text(diagnosis.oldest_pending_age_s)}"
    else:
        age = ""
    return _why(queue, diagnosis) + age


def _why(queue: str, diagnosis: Diagnosis | None) -> str:
    if diagnosis is None:
        return f"[b]{queue}[/b]: no diagnosis yet"
    if not diagnosis.reasons:
        return f"[b]{queue}[/b]: [green]moving[/] (nothing holds it back)"
    verdict = "[green]moving[/]" if diagnosis.moving else "[b red]not moving[/]"
    return f"[b]{queue}[/b]: {verdict} · " + " · ".join(
        escape(r.message) for r in diagnosis.reasons
    )


class QueueActions(SpoolScreen):
    """Pause/resume and enqueue, shared by the queue list and one queue's page."""

    SCREEN_KEY = "2"
    DESTRUCTIVE: ClassVar[frozenset[str]] = frozenset({"toggle_pause", "enqueue"})

    def current_queue(self) -> str | None:
        """The queue the keys act on. Override."""
        return None

    def _paused(self, queue: str) -> bool:
        return any(q.paused for q in self.host.snapshot.queues if q.queue == queue)

    def action_toggle_pause(self) -> None:
        """`p`: pause the queue, or resume it when paused."""
        queue = self.current_queue()
        if queue is not None:
            self._toggle(queue, not self._paused(queue))

    @work(group="queue-action")
    async def _toggle(self, queue: str, pause: bool) -> None:
        op = queue_ops.pause if pause else queue_ops.resume
        try:
            await self.host.call(lambda b: op(b, queue))
        except (EngineUnavailable, Exception) as exc:
            self.notify(
                f"could not {'pause' if pause else 'resume'} {queue}: {exc}", severity="error"
            )
            return
        self.notify(f"{queue} {'paused' if pause else 'resumed'}")
        await self.host.audit("pause" if pause else "resume", f"queue {queue}", "done")
        self.host.refresh_soon()

    def action_enqueue(self) -> None:
        """`n`: the enqueue form."""
        queue = self.current_queue() or self.spool.settings.queues[0]
        levels = (
            self.host.broker.keys(queue).levels if self.host.broker else self.host.snapshot.levels
        )
        self.app.push_screen(EnqueueScreen(queue, tuple(levels)), self._enqueue_specs)

    def _enqueue_specs(self, specs: list[TaskSpec] | None) -> None:
        if specs:
            self._enqueue(specs)

    @work(group="queue-action")
    async def _enqueue(self, specs: list[TaskSpec]) -> None:
        try:
            ids = await self.host.call(lambda b: b.enqueue(specs))
        except Exception as exc:
            self.notify(f"enqueue failed: {exc}", severity="error")
            return
        first = specs[0]
        tail = f": {ids[0]}" if len(ids) == 1 else ""
        what = f"{len(ids)} × {first.name} to {first.queue}/{first.priority}"
        self.notify(f"enqueued {what}{tail}")
        await self.host.audit("enqueue", what, f"enqueued {len(ids):,}")
        self.host.refresh_soon()


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


def task_view(info: TaskInfo) -> DetailScreen:
    """A task whole: fields, args, kwargs, result, error and traceback."""
    fields = [
        ("id", info.id),
        ("queue", info.queue),
        ("state", str(info.state)),
        ("task", info.name),
        ("priority", info.priority or "-"),
        ("attempts", f"{info.attempts} (max retries {info.max_retries})"),
        ("enqueued", fmt_ms_time(info.enqueued_at_ms)),
    ]
    if info.lease_deadline_ms:
        fields.append(("lease until", fmt_ms_time(info.lease_deadline_ms)))
    if info.due_at_ms:
        fields.append(("due", fmt_ms_time(info.due_at_ms)))
    if info.died_at_ms:
        fields.append(("died", fmt_ms_time(info.died_at_ms)))
    if info.finished_at_ms:
        fields.append(("finished", fmt_ms_time(info.finished_at_ms)))
    if info.result_ttl_ms is not None:
        fields.append(("result TTL", f"{info.result_ttl_ms / 1000:,.0f} s left"))
    if info.reason:
        fields.append(("reason", info.reason))
    if info.waiting_on:
        fields.append(("waiting on", info.waiting_on))
    blocks = [("args", as_json(info.args), "json"), ("kwargs", as_json(info.kwargs), "json")]
    if info.result is not None:
        blocks.append(("result", as_json(info.result), "json"))
    if info.error:
        blocks.append((f"error ({info.exc_type or 'Error'})", info.error, "text"))
    if info.traceback:
        blocks.append(("traceback", info.traceback, "pytb"))
    return DetailScreen(f"Task {info.id} · {info.name} · {info.state}", record_view(fields, blocks))


class QueueDetailScreen(QueueActions):
    """One queue: its counts and the next tasks of each level; `enter` shows a task whole."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="queue.back"),
        Binding("enter", "open_task", "Task", id="queue.task"),
        Binding("p", "toggle_pause", "Pause/resume", id="queue.pause"),
        Binding("n", "enqueue", "Enqueue", id="queue.enqueue"),
        Binding("x", "cancel_task", "Cancel task", id="queue.cancel"),
        Binding("v", "next_view", "View", id="queue.view"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", id="queue.next"),
        Binding("left_square_bracket", "page(-1)", "Prev page", key_display="[", id="queue.prev"),
    ]
    DESTRUCTIVE: ClassVar[frozenset[str]] = QueueActions.DESTRUCTIVE | {"cancel_task"}
    DEFAULT_CSS = """
    QueueDetailScreen #queue-head { height: auto; padding: 0 1; border: round $primary 50%; }
    QueueDetailScreen #limits-box {
        height: auto; max-height: 40%; border: round $primary 50%;
        border-title-color: $text-accent;
    }
    QueueDetailScreen #tasks-empty { color: $text-muted; padding: 1 2; display: none; }
    QueueDetailScreen #tasks-box {
        height: 1fr; border: round $primary 50%; border-title-color: $text-accent;
    }
    """
    PEEK = 20

    def __init__(self, queue: str) -> None:
        super().__init__()
        self.queue = queue
        self._view = "next"
        self._page_offset = 0
        self._has_next = False

    def compose(self) -> ComposeResult:
        yield self.compose_status()
        yield Static(self.queue, id="queue-head")
        with VerticalScroll(id="limits-box") as box:
            box.border_title = "Flow control (fleet-wide limits)"
            yield LimitsPanel(id="limits")
        with Vertical(id="tasks-box") as box:
            box.border_title = f"Next {self.PEEK} tasks of each level (fetch order)"
            yield VimTable(
                ("Level", "level"),
                ("#", "pos"),
                ("Id", "id"),
                ("Task", "task"),
                ("Args", "args"),
                ("Attempts", "att"),
                ("Enqueued", "ea"),
                ("When", "when"),
                id="tasks",
            )
            yield Static(
                "No pending tasks: the workers keep up (or the queue is empty). Paused queues"
                " keep theirs here; `n` enqueues one.",
                id="tasks-empty",
            )
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()

    def current_queue(self) -> str | None:
        return self.queue

    def action_back(self) -> None:
        """`escape`: back to the queue list."""
        self.app.pop_screen()

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        stats = next((q for q in snap.queues if q.queue == self.queue), None)
        head = self.query_one("#queue-head", Static)
        if stats is None:
            head.update(f"[b]{self.queue}[/b] · unknown queue")
        else:
            depth = " · ".join(f"{lv} {stats.depth_by_level.get(lv, 0):,}" for lv in stats.levels)
            diagnosis = snap.diagnosis(self.queue)
            label = state_label(stats.paused, diagnosis, bool(stats.pending + stats.active))
            color = "green" if diagnosis is None or diagnosis.moving else "b yellow"
            state = "[b yellow]‖ PAUSED[/]" if stats.paused else f"[{color}]{label}[/]"
            head.update(
                f"[b]{self.queue}[/b]  {state}  ·  pending {depth}"
                f"  ·  scheduled {stats.scheduled:,}"
                f"  ·  active {stats.active:,}  ·  dead {stats.dead:,}\n"
                + why_lines(self.queue, snap.diagnosis(self.queue))
            )
        self.query_one(LimitsPanel).show(stats.flow if stats else None)
        if snap.connected:
            self._peek()

    def action_next_view(self) -> None:
        """`v`: the next view (next of each level, each level paged, scheduled, active)."""
        views = view_names(self.host.snapshot.levels)
        self._view = (
            views[(views.index(self._view) + 1) % len(views)] if self._view in views else "next"
        )
        self._page_offset = 0
        self._peek()

    def action_page(self, step: int) -> None:
        """`]` / `[`: the next or previous page of a paged view."""
        if self._view == "next" or (step > 0 and not self._has_next):
            return
        self._page_offset = max(0, self._page_offset + step * PAGE)
        self._peek()

    @work(exclusive=True, group="peek")
    async def _peek(self) -> None:
        queue, view, offset = self.queue, self._view, self._page_offset
        try:
            shown = await self.host.call(lambda b: load_view(b, queue, view, offset))
        except Exception:
            return
        self._has_next = shown.has_next
        self.draw_now(lambda: self._show_view(view, shown))

    def _show_view(self, view: str, shown: ViewRows) -> None:
        self.query_one("#tasks-box").border_title = shown.title
        rows = shown.rows
        self.query_one("#tasks", VimTable).sync(rows)
        empty = self.query_one("#tasks-empty", Static)
        if view != "next":
            empty.update("No tasks in this view (v: other views).")
        empty.display = not rows

    def action_open_task(self) -> None:
        """`enter`: the task under the cursor, whole."""
        task_id = self.query_one("#tasks", VimTable).cursor_key
        if task_id:
            self._open_task(task_id)

    def on_data_table_row_selected(self) -> None:
        self.action_open_task()

    def action_cancel_task(self) -> None:
        """`x`: cancel the task under the cursor (it is removed; it never runs)."""
        task_id = self.query_one("#tasks", VimTable).cursor_key
        if task_id:
            self._cancel_task(task_id)

    @work(group="task")
    async def _cancel_task(self, task_id: str) -> None:
        queue = self.queue
        try:
            done = await self.host.call(lambda b: cancel_ops.cancel_task(b, task_id, queue))
        except Exception as exc:
            self.notify(f"could not cancel: {exc}", severity="error")
            return
        if done:
            self.notify(f"cancelled task {task_id[:12]}")
        else:
            self.notify(f"task {task_id[:12]} had already ended", severity="warning")
        self.host.refresh_soon()
        self._peek()

    @work(group="task")
    async def _open_task(self, task_id: str) -> None:
        queue = self.queue
        try:
            info = await self.host.call(lambda b: queue_ops.task_status(b, task_id, queue))
        except Exception as exc:
            self.notify(f"could not read task: {exc}", severity="error")
            return
        if info is None:
            self.notify(
                f"task {task_id[:12]} is gone (finished and its result expired)", severity="warning"
            )
            return
        self.app.push_screen(task_view(info))
