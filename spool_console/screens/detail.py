"""`DetailScreen`: one record shown whole (a task, a dead letter), read-only, `escape` closes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from spool_console.screens.base import keys_footer


def fmt_ms_time(ms: int | None) -> str:
    """Epoch milliseconds as local time with an age."""
    if not ms:
        return "-"
    when = dt.datetime.fromtimestamp(ms / 1000)
    age = time.time() - ms / 1000
    return f"{when:%Y-%m-%d %H:%M:%S}.{int(ms % 1000):03d} ({age:,.0f} s ago)"


def compact_json(value: Any) -> str:
    """One-line JSON for table cells: `[7,"a"]`, not the indented form (falls back to repr)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def as_json(value: Any) -> str:
    """Pretty JSON for args, kwargs and results (falls back to repr)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def record_view(
    fields: Sequence[tuple[str, Any]], blocks: Sequence[tuple[str, str, str]] = ()
) -> RenderableType:
    """A field table, then titled code blocks (title, text, lexer)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, value in fields:
        table.add_row(name, value if isinstance(value, Text) else Text(str(value)))
    parts: list[RenderableType] = [table]
    for title, text, lexer in blocks:
        parts.append(Text(f"\n{title}", style="bold underline"))
        parts.append(
            Syntax(
                text or "-", lexer, word_wrap=True, theme="ansi_dark", background_color="default"
            )
        )
    return Group(*parts)


class DetailScreen(ModalScreen[None]):
    """Shows a renderable in a scrollable box; the caller builds it (no I/O here)."""

    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll {
        width: 90%; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    DetailScreen #detail-title { text-style: bold; padding-bottom: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="detail.close"),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
    ]

    def __init__(self, title: str, body: RenderableType) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-scroll"):
            yield Label(self.title_text, id="detail-title")
            yield Static(self.body, id="detail-body")
        yield keys_footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_scroll(self, direction: str) -> None:
        """j/k scroll."""
        scroll = self.query_one(VerticalScroll)
        scroll.scroll_relative(y=1 if direction == "down" else -1, animate=False)

    def action_close(self) -> None:
        """Back to the list."""
        self.dismiss(None)
