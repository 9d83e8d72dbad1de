"""`AuditScreen`: the audit trail, newest first: who did what, to what, with what result."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from engine.audit import AuditEntry
from spool_console.engine_host import EngineHost
from widgets.vim_table import VimTable

SHOWN = 200


class AuditScreen(ModalScreen[None]):
    """Operator actions recorded in Redis (console and HTTP API), newest first."""

    DEFAULT_CSS = """
    AuditScreen { align: center middle; }
    AuditScreen > Vertical {
        width: 95%; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    AuditScreen #audit-title { text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="audit.close"),
    ]

    def __init__(self, host: EngineHost) -> None:
        super().__init__()
        self.host = host

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                "Audit trail: every operator action, newest first (escape closes)", id="audit-title"
            )
            yield VimTable(
                ("When", "when"),
                ("Action", "action"),
                ("Scope", "scope"),
                ("Result", "result"),
                ("Via", "via"),
                ("Who", "who"),
                id="audit-table",
            )

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()
        self._load()

    @work(exclusive=True)
    async def _load(self) -> None:
        table = self.query_one(VimTable)
        try:
            entries: list[AuditEntry] = await self.host.call(lambda b: b.audit_log(SHOWN))
        except Exception as exc:
            self.query_one("#audit-title", Label).update(f"could not read the audit trail: {exc}")
            return
        table.sync(
            (
                e.id,
                (
                    dt.datetime.fromtimestamp(e.at_ms / 1000).strftime("%m-%d %H:%M:%S"),
                    e.action,
                    e.scope,
                    e.result,
                    e.via,
                    f"{e.user}@{e.host}",
                ),
            )
            for e in entries
        )
        if not entries:
            self.query_one("#audit-title", Label).update("Audit trail: no action recorded yet")

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)
