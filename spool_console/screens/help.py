"""`HelpScreen`: every key of the screen underneath, generated from its live bindings."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Label

from spool_console.screens.base import keys_footer
from widgets.vim_table import VimTable


def binding_rows(
    bindings: dict[str, ActiveBinding], app: object
) -> list[tuple[str, tuple[str, str, str]]]:
    """(row key, (keys, action, where)) rows: this screen's keys first, in declared order,
    then the table's, then the app's, then Textual's own (focus, copy)."""
    rows: dict[str, list] = {}
    for index, (key, active) in enumerate(bindings.items()):
        b = active.binding
        node = active.node
        if node is app:
            where, rank = ("everywhere", 2) if b.id else ("system", 3)
        elif isinstance(node, Screen):
            where, rank = ("this screen", 0) if b.id else ("system", 3)
        elif isinstance(node, VimTable):
            where, rank = ("table", 1)
        else:  # a form field's own editing keys (a dropdown's, an input's): not this screen's
            continue
        desc = b.description or b.action.replace("_", " ")
        display = b.key_display or key
        name = f"{desc}|{where}"
        if name in rows:
            rows[name][0] = f"{rows[name][0]} {display}"
        else:
            rows[name] = [display, desc, where, (rank, index)]
    ordered = sorted(rows.items(), key=lambda kv: kv[1][3])
    return [(name, (keys, desc, where)) for name, (keys, desc, where, _) in ordered]


class HelpScreen(ModalScreen[None]):
    """Lists the keys that apply on the screen it was opened from."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 80; max-width: 95%; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-title { text-style: bold; padding: 0 0 1 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("question_mark", "close", "Close", show=False, id="help.close2"),
    ]

    def __init__(self, bindings: dict[str, ActiveBinding], title: str) -> None:
        super().__init__()
        self.bindings = bindings
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Keys — {self.title_text}   (escape closes)", id="help-title")
            yield VimTable(
                ("Key", "key"), ("Action", "action"), ("Where", "where"), id="help-table"
            )
        yield keys_footer()

    def on_mount(self) -> None:
        table = self.query_one(VimTable)
        table.sync(binding_rows(self.bindings, self.app))
        table.focus()

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)
