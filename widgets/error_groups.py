"""`ErrorGroupsPane`: dead letters grouped by error, with the highlighted group's whole error.

The table's Error column gets what is left of a third of the screen (about 45 columns at 160),
so a group's error is cut there; the line under the table shows the highlighted group's error
in full (wrapped), with the tasks and queues it came from.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine.dead import DeadGroup
from widgets.vim_table import VimTable

#: The table's Error column keeps this much of a group's error (the full text is below it).
TABLE_ERROR_CHARS = 80


def group_detail(group: DeadGroup | None) -> Text:
    """The whole error of `group`, then the tasks and queues it was seen in."""
    if group is None:
        return Text("no error groups", style="dim")
    text = Text(group.sample_error.strip() or "(no error text)")
    seen = []
    if group.tasks:
        seen.append("task " + ", ".join(group.tasks))
    if group.queues:
        seen.append("queue " + ", ".join(group.queues))
    if seen:
        text.append("\n" + " · ".join(seen), style="dim")
    return text


class ErrorGroupsPane(Vertical):
    """The error-groups table (`#groups`) and, under it, the highlighted group in full."""

    DEFAULT_CSS = """
    ErrorGroupsPane #groups { overflow-x: hidden; }
    ErrorGroupsPane #group-error {
        height: auto; max-height: 7; padding: 0 1;
        border-top: solid $primary 30%;
    }
    """
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Count", "count"),
        ("Last", "last"),
        ("Error", "error"),
    )

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.groups: dict[str, DeadGroup] = {}

    def compose(self) -> ComposeResult:
        yield VimTable(*self.COLUMNS, id="groups")
        yield Static(group_detail(None), id="group-error")

    def show(self, groups: list[DeadGroup], chosen: str | None) -> None:
        """Draw `groups` (newest first as given); `chosen` is the group filtering the list."""
        self.groups = {g.fingerprint: g for g in groups}
        now = time.time()
        rows = []
        for g in groups:
            ago = f"{max(0.0, now - g.last_seen_ms / 1000):,.0f}s"
            label = ("▶ " if g.fingerprint == chosen else "") + g.sample_error
            rows.append((g.fingerprint, (f"{g.count:,}", ago, label[:TABLE_ERROR_CHARS])))
        table = self.query_one("#groups", VimTable)
        table.sync(rows)
        self._detail(table.cursor_key)

    def _detail(self, key: str | None) -> None:
        group = self.groups.get(key) if key else None
        if group is None and self.groups:
            group = next(iter(self.groups.values()))
        self.query_one("#group-error", Static).update(group_detail(group))

    @on(DataTable.RowHighlighted, "#groups")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(str(event.row_key.value) if event.row_key.value is not None else None)
