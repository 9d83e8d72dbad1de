"""One queue's page: its counts, diagnosis and limits, and its tasks in paged views."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from engine import cancel as cancel_ops
from engine import queues as queue_ops
from engine.task import TaskInfo
from spool_console.screens.detail import DetailScreen, as_json, fmt_ms_time, record_view
from spool_console.screens.queue_actions import QueueActions, state_label, why_lines
from spool_console.snapshots import ConsoleSnapshot
from spool_console.task_views import PAGE, ViewRows, load_view, view_names
from widgets.limits_panel import LimitsPanel
from widgets.vim_table import VimTable


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
            outcome = await self.host.call(
                lambda b: cancel_ops.cancel_and_report(b, task_id, queue)
            )
        except Exception as exc:
            self.notify(f"could not cancel: {exc}", severity="error")
            return
        if outcome is None:
            self.notify(f"task {task_id[:12]} is gone (ended and expired)", severity="warning")
            return
        if outcome.cancelled:
            self.notify(f"cancelled task {task_id[:12]}, now {outcome.state}")
        else:
            self.notify(f"task {task_id[:12]} had already ended", severity="warning")
        await self.host.audit("cancel", outcome.scope, outcome.result)
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
