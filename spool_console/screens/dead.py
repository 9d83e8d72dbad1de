"""Screen 3, Dead letters: filter, error groups, inspect, requeue and delete (one or many).

This module holds what the screen shows and how it is filtered; requeue and delete, which
every bulk action runs through one path, are `DeadActions` (dead_actions.py).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Static

from engine import dead as dead_ops
from engine.broker import Broker
from engine.dead import DeadFilter, DeadGroup, DeadItem
from spool_console.engine_host import ConsoleSnapshot
from spool_console.screens.dead_actions import DeadActions
from spool_console.screens.detail import DetailScreen, as_json, fmt_ms_time, record_view
from widgets.error_groups import ErrorGroupsPane
from widgets.vim_table import VimTable

PAGE = 500
RELOAD_EVERY_S = 5.0
#: Actions on the dead letters under the cursor or marked (not on a filter or group).
_ON_ITEMS = frozenset({"mark", "requeue", "delete"})


def dead_view(item: DeadItem) -> DetailScreen:
    """A dead letter whole: record, args, kwargs, the full traceback."""
    fields = [
        ("id", item.id),
        ("queue", item.queue),
        ("task", item.name),
        ("priority", item.priority or "-"),
        ("attempts", str(item.attempts)),
        ("reason", item.reason or "-"),
        ("worker", item.worker or "-"),
        ("group", item.fingerprint),
        ("enqueued", fmt_ms_time(item.enqueued_at_ms)),
        ("died", fmt_ms_time(item.died_at_ms)),
    ]
    blocks = [
        ("args", as_json(item.args), "json"),
        ("kwargs", as_json(item.kwargs), "json"),
        (f"error ({item.exc_type})", item.error, "text"),
        ("traceback", item.traceback, "pytb"),
    ]
    return DetailScreen(f"Dead letter {item.id} · {item.name}", record_view(fields, blocks))


class DeadScreen(DeadActions):
    """The dead-letter queue across every queue, newest first."""

    SCREEN_KEY = "3"
    DESTRUCTIVE: ClassVar[frozenset[str]] = frozenset(
        {"requeue", "requeue_all", "delete", "delete_all"}
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="dead.filter"),
        Binding("enter", "open", "Open", id="dead.open"),
        Binding("space", "mark", "Mark", id="dead.mark"),
        Binding("r", "requeue", "Requeue", id="dead.requeue"),
        Binding(
            "R",
            "requeue_all",
            "Requeue all",
            tooltip="Requeue everything matching the filter or group",
            id="dead.requeue_all",
        ),
        Binding("d", "delete", "Delete", id="dead.delete"),
        Binding(
            "D",
            "delete_all",
            "Delete all",
            tooltip="Delete everything matching the filter or group",
            id="dead.delete_all",
        ),
        Binding("e", "groups", "Groups", id="dead.groups"),
        Binding("escape", "clear", "Clear", id="dead.clear"),
    ]
    DEFAULT_CSS = """
    DeadScreen #dead-main { height: 1fr; }
    DeadScreen .panel { border: round $primary 50%; border-title-color: $text-accent; }
    DeadScreen .panel:focus-within { border: round $accent; }
    DeadScreen #groups-box { width: 3fr; }
    DeadScreen #items-box { width: 4fr; }
    /* No sideways scrolling: a dead letter's whole error is one enter away, and the
       horizontal scrollbar only drew a stray bar under the table. */
    DeadScreen #dead { overflow-x: hidden; }
    DeadScreen #filter { display: none; height: 3; }
    DeadScreen #filter.-shown { display: block; }
    DeadScreen #scope { height: 1; padding: 0 1; color: $text-muted; }
    DeadScreen.-narrow #groups-box { display: none; }
    /* Narrow: the groups, when asked for (e), take the whole width until one is chosen. */
    DeadScreen.-narrow.-groups-shown #groups-box { display: block; width: 1fr; }
    DeadScreen.-narrow.-groups-shown #items-box { display: none; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.group: str | None = None
        self.items: dict[str, DeadItem] = {}
        self.groups: list[DeadGroup] = []
        self.matching = 0
        self.marked: set[str] = set()
        self._loaded_at = 0.0
        self._loaded_dead = -1
        self._busy = False

    def compose(self) -> ComposeResult:
        yield self.compose_status()
        with Horizontal(id="dead-main"):
            with ErrorGroupsPane(id="groups-box", classes="panel") as box:
                box.border_title = "Error groups (enter filters)"
            with Vertical(id="items-box", classes="panel") as box:
                box.border_title = "Dead letters"
                yield Input(
                    placeholder="filter by task name or error text (enter applies, escape clears)",
                    id="filter",
                )
                yield Static("", id="scope")
                yield VimTable(
                    ("✓", "mark"),
                    ("Died", "died"),
                    ("Queue", "queue"),
                    ("Task", "task"),
                    ("Att", "att"),
                    ("Error", "error"),
                    id="dead",
                )
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#dead", VimTable).focus()
        self._show_scope()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "-narrow")
        self.refresh_bindings()

    def _show_groups(self, shown: bool) -> None:
        self.set_class(shown, "-groups-shown")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the groups cover a narrow screen, the letters are hidden: nothing may act on
        # the one under their cursor unseen (the footer drops those keys meanwhile).
        if action in _ON_ITEMS and self.has_class("-narrow", "-groups-shown"):
            return False
        return super().check_action(action, parameters)

    # -- data -------------------------------------------------------------------------------
    @property
    def flt(self) -> DeadFilter:
        """The filter the table and `R`/`D` use."""
        return DeadFilter(text=self.text or None, fingerprint=self.group)

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        if not snap.connected:
            # Not "0 matching": nothing could be counted. What was loaded stays, marked.
            when = (
                dt.datetime.fromtimestamp(
                    time.time() - (time.monotonic() - self._loaded_at)
                ).strftime("%H:%M:%S")
                if self._loaded_at
                else None
            )
            self.query_one("#scope", Static).update(
                "[b red]Redis unreachable[/]: "
                + (f"showing what was loaded at {when}" if when else "nothing loaded yet")
            )
            return
        stale = time.monotonic() - self._loaded_at > RELOAD_EVERY_S
        if snap.connected and not self._busy and (stale or snap.dead_count != self._loaded_dead):
            self._loaded_dead = snap.dead_count
            self.reload()

    def reload(self) -> None:
        """Read the page, the groups and the count again (off the message loop)."""
        self._load(self.flt)

    @work(exclusive=True, group="dead-load")
    async def _load(self, flt: DeadFilter) -> None:
        async def fetch(b: Broker) -> tuple[dead_ops.DeadPage, list[DeadGroup], int]:
            page = await dead_ops.list_dead(b, flt, PAGE)
            groups = await dead_ops.dead_groups(b, DeadFilter(text=flt.text))
            count = (
                len(page.items) if page.cursor is None else await dead_ops.count_matching(b, flt)
            )
            return page, groups, count

        try:
            page, groups, count = await self.host.call(fetch, timeout_s=30.0)
        except Exception as exc:
            self.query_one("#scope", Static).update(f"[red]could not load dead letters: {exc}[/]")
            return
        if flt != self.flt:
            return  # the filter moved on while this was loading
        self._loaded_at = time.monotonic()
        self.items = {f"{i.queue}/{i.id}": i for i in page.items}
        self.marked &= set(self.items)
        self.groups = groups
        self.matching = count
        self.draw_now(self._draw)

    def _draw(self) -> None:
        rows = []
        for key, item in self.items.items():
            died = dt.datetime.fromtimestamp(item.died_at_ms / 1000).strftime("%H:%M:%S")
            rows.append(
                (
                    key,
                    (
                        "✓" if key in self.marked else " ",
                        died,
                        item.queue,
                        item.name,
                        str(item.attempts),
                        item.error_line[:120],
                    ),
                )
            )
        self.query_one("#dead", VimTable).sync(rows)
        self.query_one(ErrorGroupsPane).show(self.groups, self.group)
        self._show_scope()

    def _show_scope(self) -> None:
        parts = [f"[b]{self.matching:,}[/b] matching {self.flt.describe()}"]
        if len(self.items) < self.matching:
            parts.append(f"showing newest {len(self.items):,}")
        if self.marked:
            parts.append(f"[b]{len(self.marked)}[/b] marked")
        self.query_one("#scope", Static).update(" · ".join(parts))

    # -- filter and groups --------------------------------------------------------------------
    def action_filter(self) -> None:
        """`/`: type a filter (task name or error text)."""
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.text = event.value.strip()
        self.reload()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one("#dead", VimTable).focus()

    def action_clear(self) -> None:
        """`escape`: drop the filter and the group (never leaves the screen)."""
        box = self.query_one("#filter", Input)
        if box.has_focus and box.value:
            box.value = ""
        self.text = ""
        self.group = None
        box.value = ""
        box.remove_class("-shown")
        self._show_groups(False)
        self.query_one("#groups", VimTable).move_cursor(row=0)  # off the group just dropped
        self.query_one("#dead", VimTable).focus()
        self.reload()

    def action_groups(self) -> None:
        """`e`: focus the error groups (shows them on narrow terminals)."""
        table = self.query_one("#groups", VimTable)
        if table.has_focus:
            self._show_groups(False)
            self.query_one("#dead", VimTable).focus()
        else:
            self._show_groups(True)
            table.focus()

    def choose_group(self, fingerprint: str | None) -> None:
        """Filter the table to one error group (the same group again drops it)."""
        self.group = None if fingerprint == self.group else fingerprint
        self.marked.clear()
        self._show_groups(False)
        self.reload()
        self.query_one("#dead", VimTable).focus()

    # -- items ---------------------------------------------------------------------------------
    def _cursor_item(self) -> DeadItem | None:
        key = self.query_one("#dead", VimTable).cursor_key
        return self.items.get(key) if key else None

    def action_open(self) -> None:
        """`enter`: on a group, filter by it; on a dead letter, show it whole."""
        groups = self.query_one("#groups", VimTable)
        if groups.has_focus:
            self.choose_group(groups.cursor_key)
            return
        item = self._cursor_item()
        if item is not None:
            self._open(item.queue, item.id)

    def on_data_table_row_selected(self, event: VimTable.RowSelected) -> None:
        if event.data_table.id == "groups":
            self.choose_group(event.row_key.value)
        else:
            item = self.items.get(str(event.row_key.value))
            if item:
                self._open(item.queue, item.id)

    @work(group="dead-open")
    async def _open(self, queue: str, task_id: str) -> None:
        try:
            item = await self.host.call(lambda b: dead_ops.get_dead(b, queue, task_id))
        except Exception as exc:
            self.notify(f"could not read the dead letter: {exc}", severity="error")
            return
        if item is None:
            self.notify("that dead letter is gone (requeued or deleted)", severity="warning")
            return
        self.app.push_screen(dead_view(item))

    def action_mark(self) -> None:
        """`space`: mark or unmark the item under the cursor (then move down)."""
        table = self.query_one("#dead", VimTable)
        key = table.cursor_key
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        table.update_cell(key, "mark", "✓" if key in self.marked else " ")
        table.action_cursor_down()
        self._show_scope()
