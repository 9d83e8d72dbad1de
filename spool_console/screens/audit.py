"""`AuditScreen`: the audit trail, newest first: who did what, to what, with what result.

A delete's entry can be restored (`u`) while its restore window lasts: scope (how many letters
come back, how many already expired) → confirm → restore → result, itself recorded.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from engine import undo
from engine.audit import AuditEntry
from spool_console.engine_host import EngineHost
from spool_console.screens.base import keys_footer
from spool_console.screens.confirm import ConfirmScreen
from widgets.vim_table import VimTable

SHOWN = 200
REFRESH_S = 2.0  # actions from other consoles, the CLI and HTTP show up while this is open


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


class AuditScreen(ModalScreen[None]):
    """Operator actions recorded in Redis (console, CLI and HTTP API), newest first."""

    DEFAULT_CSS = """
    AuditScreen { align: center middle; }
    AuditScreen > Vertical {
        width: 95%; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    AuditScreen #audit-title { text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "restore", "Restore", tooltip="Restore the letters of a delete",
                id="audit.restore"),
        Binding("escape", "close", "Close", id="audit.close"),
    ]

    def __init__(self, host: EngineHost, *, read_only: bool = False) -> None:
        super().__init__()
        self.host = host
        self.read_only = read_only
        self.entries: dict[str, AuditEntry] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title(), id="audit-title")
            yield VimTable(
                ("When", "when"),
                ("Action", "action"),
                ("Scope", "scope"),
                ("Result", "result"),
                ("Via", "via"),
                ("Who", "who"),
                ("Undo", "undo"),
                id="audit-table",
            )
        yield keys_footer()

    def _title(self) -> str:
        keys = "escape closes" if self.read_only else "u restores a delete, escape closes"
        return f"Audit trail: every operator action, newest first ({keys})"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Under `--read-only` restore does not exist (no key, footer entry or palette)."""
        return not (action == "restore" and self.read_only)

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()
        self._load()
        self.set_interval(REFRESH_S, self._load)

    @work(exclusive=True, group="audit-load")
    async def _load(self) -> None:
        table = self.query_one(VimTable)
        try:
            entries: list[AuditEntry] = await self.host.call(lambda b: b.audit_log(SHOWN))
        except Exception as exc:
            self.query_one("#audit-title", Label).update(f"could not read the audit trail: {exc}")
            return
        self.entries = {e.id: e for e in entries}
        now_ms = time.time() * 1000
        table.sync(
            (
                e.id,
                (*e.cells(), "" if self.read_only else _undo_cell(e, now_ms)),
            )
            for e in entries
        )
        if not entries:
            self.query_one("#audit-title", Label).update("Audit trail: no action recorded yet")

    def action_restore(self) -> None:
        """`u`: restore the letters of the delete under the cursor (after confirmation)."""
        if self.read_only:
            return
        key = self.query_one(VimTable).cursor_key
        entry = self.entries.get(key) if key else None
        if entry is None or not entry.undo:
            self.notify("only a delete can be restored: select a dead delete entry",
                        severity="warning")
            return
        self._restore(entry)

    @work(exclusive=True, group="audit-restore")
    async def _restore(self, entry: AuditEntry) -> None:
        token = entry.undo
        try:
            found = await self.host.call(lambda b: undo.held(b, token))
        except Exception as exc:
            self.notify(f"could not count the deleted letters: {exc}", severity="error")
            return
        deleted = f"the {entry.held:,} dead letter(s) deleted at {_clock(entry.at_ms)}"
        if not found.count:
            why = (
                f"its restore window ended at {_clock(found.expires_at_ms)}"
                if found.expired
                else "already restored or expired"
            )
            self.notify(f"nothing to restore: {deleted} are gone ({why})", severity="warning")
            return
        expired = max(0, entry.held - found.count)
        ok = await self.app.push_screen_wait(
            ConfirmScreen(
                "Restore deleted dead letters?",
                f"Delete of {_clock(entry.at_ms)}: {entry.scope}\n"
                f"{found.count:,} will come back to the dead letters · {expired:,} already "
                f"expired (restorable until {_clock(found.expires_at_ms)})",
                verb="Restore",
            )
        )
        if not ok:
            self.notify("restore cancelled: nothing changed")
            return
        try:
            done = await self.host.call(lambda b: undo.restore(b, token), timeout_s=120.0)
        except Exception as exc:
            self.notify(f"restore failed: {exc}", severity="error")
            return
        result = f"restored {done.restored:,}"
        if done.id_in_use:
            result += f" · {done.id_in_use:,} left deleted (id in use again)"
        if expired:
            result += f" · {expired:,} expired"
        self.notify(result)
        await self.host.audit("dead restore", f"delete of {_clock(entry.at_ms)}: {entry.scope}",
                              result)
        self.host.refresh_soon()
        self._load()

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)


def _undo_cell(entry: AuditEntry, now_ms: float) -> str:
    """`restorable until HH:MM:SS` for a delete that may still be restored, else blank."""
    if not entry.undo:
        return ""
    try:
        expires = undo.expiry_of(entry.undo)
    except ValueError:
        return ""
    return f"restorable until {_clock(expires)}" if expires > now_ms else "expired"
