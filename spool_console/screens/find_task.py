"""`FindTaskScreen`: ask for a task id (`t` from any screen); the app then shows the task."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from spool_console.screens.base import keys_footer


class FindTaskScreen(ModalScreen[str | None]):
    """One input: a task id, looked up in every queue. Escape closes it with nothing."""

    DEFAULT_CSS = """
    FindTaskScreen { align: center middle; }
    FindTaskScreen > Vertical {
        width: 72; max-width: 95%; height: auto;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    FindTaskScreen #find-hint { color: $text-muted; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="find.close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Find a task by id")
            yield Input(placeholder="task id", id="find-id", max_length=256)
            yield Static("enter looks it up in every queue · escape closes", id="find-hint")
        yield keys_footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.dismiss(value)

    def action_close(self) -> None:
        """`escape`: look nothing up."""
        self.dismiss(None)
