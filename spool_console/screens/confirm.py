"""`ConfirmScreen`: scope → confirm, a `ModalScreen[bool]` with the focus on Cancel."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from spool_console.screens.base import keys_footer


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a destructive action. Shows the scope; Cancel has the focus."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 64; max-width: 90%; height: auto;
        border: thick $error; background: $surface; padding: 1 2;
    }
    ConfirmScreen #title { text-style: bold; margin-bottom: 1; }
    ConfirmScreen #scope { margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm.cancel"),
        Binding("y", "confirm", "Yes", show=False, id="confirm.yes"),
    ]

    def __init__(
        self, title: str, scope: str, verb: str = "Confirm", focus_cancel: bool = True
    ) -> None:
        super().__init__()
        self.title_text = title
        self.scope = scope
        self.verb = verb
        self.focus_cancel = focus_cancel

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Static(self.scope, id="scope")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.verb, id="confirm", variant="error")
        yield keys_footer()

    def on_mount(self) -> None:
        self.query_one("#cancel" if self.focus_cancel else "#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        """`escape`: nothing happens."""
        self.dismiss(False)

    def action_confirm(self) -> None:
        """`y`: go ahead."""
        self.dismiss(True)
