"""`SpoolScreen`: what every top-level screen shares (status bar, footer, snapshots, read-only)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from spool_console.engine_host import EngineHost
from spool_console.snapshots import ConsoleSnapshot
from widgets.stale_note import StaleNote
from widgets.status_bar import StatusBar
from widgets.vim_table import VimTable

if TYPE_CHECKING:
    from spool_console.app import SpoolApp


def keys_footer() -> Footer:
    """The footer every screen and dialog docks at the bottom: the keys that work there (a
    dialog's own, so the keys of the screen beneath are not offered while they do nothing)."""
    # Compact, and without the palette hint on the right: `:` is in the footer already.
    return Footer(compact=True, show_command_palette=False)


class SpoolScreen(Screen[None]):
    """A screen fed with `ConsoleSnapshot`s by the app; hides destructive actions when read-only."""

    DEFAULT_CSS = """
    SpoolScreen > .status { height: auto; }
    """

    SCREEN_KEY: ClassVar[str] = "1"
    #: Actions hidden (and refused) under `--read-only`.
    DESTRUCTIVE: ClassVar[frozenset[str]] = frozenset()

    @property
    def spool(self) -> SpoolApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    @property
    def host(self) -> EngineHost:
        """The engine host (all Redis access goes through it)."""
        return self.spool.host

    def compose_status(self) -> Vertical:
        """The top line, and under it a line that shows only while the numbers are stale;
        every screen has its own."""
        bar = StatusBar()
        bar.current = self.SCREEN_KEY
        return Vertical(bar, StaleNote(), classes="status")

    def compose_footer(self) -> Footer:
        """Textual's footer, showing the keys that apply here."""
        return keys_footer()

    def on_mount(self) -> None:
        # Textual 8.2 re-parses the whole stylesheet (~100 ms here) on every switch to a mode
        # whose screen was not yet mounted at its first switch, because that screen never
        # records the CSS generation it was styled with. A screen mounted now was styled with
        # the current CSS, so record it; a later theme change still triggers the refresh.
        if hasattr(self, "_css_update_count") and hasattr(self.app, "_css_update_count"):
            self._css_update_count = self.app._css_update_count

    def on_screen_resume(self) -> None:
        self.show_snapshot(self.host.snapshot)

    def show_snapshot(self, snap: ConsoleSnapshot) -> None:
        """Update the status bar, then the screen's own panels."""
        self.draw_now(lambda: self._show(snap))

    def draw_now(self, draw: Callable[[], None]) -> None:
        """Run `draw` (a snapshot, or a worker's result, into this screen's widgets) unless the
        screen is composing or torn down meanwhile: the next snapshot or load draws again."""
        if not self.is_mounted:
            return
        with contextlib.suppress(NoMatches):
            draw()

    def _show(self, snap: ConsoleSnapshot) -> None:
        self.show_status(snap)
        self.on_snapshot(snap)

    def show_status(self, snap: ConsoleSnapshot) -> None:
        """Update the status bar only (the app calls this while a dialog covers the screen)."""
        for bar in self.query(StatusBar):
            bar.connected = snap.connected
            bar.url = snap.url_masked
            bar.error = snap.error or ""
            bar.fleet_size = snap.fleet_size
            bar.uptime_s = snap.uptime_s
            bar.dead = snap.dead_count
            bar.read_only = self.spool.read_only
        for note in self.query(StaleNote):
            note.data_at_s = snap.data_at_s
            note.reason = snap.stale_reason
            note.refresh()  # the age moves on even when the reason does not change

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        """Draw `snap` (no I/O). Override."""

    def recompose_if_narrow_changed(self, narrow: bool, threshold: int = 120) -> None:
        """Recompose when the app crosses `threshold` columns: screens whose tables pick
        their columns at compose time call this from `on_resize`."""
        if (self.app.size.width < threshold) != narrow:
            self.refresh(recompose=True)
            self.call_after_refresh(self._focus_table)

    def _focus_table(self) -> None:
        # The recompose may not have mounted the table yet (a second resize, a busy loop):
        # then there is nothing to focus, and the next compose focuses it on mount.
        for table in self.query(VimTable).results():
            table.focus()
            return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self.DESTRUCTIVE and self.spool.read_only)
