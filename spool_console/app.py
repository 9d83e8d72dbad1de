"""The Textual app: five modes (screens 1–5), help, palette, and the snapshot pump."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from platformdirs import user_downloads_path
from rich.console import RenderableType
from textual import work
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.screen import ModalScreen, Screen

from engine.embedded import default_state_dir
from engine.queues import task_status
from spool_console.engine_host import EngineHost
from spool_console.screens.audit import AuditScreen
from spool_console.screens.base import SpoolScreen
from spool_console.screens.bench import BenchScreen
from spool_console.screens.dashboard import DashboardScreen
from spool_console.screens.dead import DeadScreen
from spool_console.screens.find_task import FindTaskScreen
from spool_console.screens.help import HelpScreen
from spool_console.screens.queue_detail import task_view
from spool_console.screens.queues import QueuesScreen
from spool_console.screens.workers import WorkersScreen
from spool_console.settings import Settings

_SCREENS = Binding.Group("screens")
#: The app's keys that open or switch screens: off under a dialog (Textual's own, such as tab
#: moving the focus between a dialog's buttons, and ctrl+q stay on).
_SCREEN_ACTIONS = frozenset({"show", "help", "audit", "find_task", "command_palette"})


class SpoolApp(App[int]):
    """Spool's operations console. Hosts the engine (in its own thread) and draws snapshots."""

    TITLE = "spool"
    MODES: ClassVar[dict[str, type[Screen]]] = {  # type: ignore[assignment]
        "dashboard": DashboardScreen,
        "queues": QueuesScreen,
        "dead": DeadScreen,
        "workers": WorkersScreen,
        "bench": BenchScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('dashboard')", "Dashboard", id="screen.dashboard", group=_SCREENS),
        Binding("2", "show('queues')", "Queues", id="screen.queues", group=_SCREENS),
        Binding("3", "show('dead')", "Dead letters", id="screen.dead", group=_SCREENS),
        Binding("4", "show('workers')", "Workers", id="screen.workers", group=_SCREENS),
        Binding("5", "show('bench')", "Benchmarks", id="screen.bench", group=_SCREENS),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("a", "audit", "Audit trail", id="app.audit"),
        Binding("t", "find_task", "Find task", id="app.find_task"),
        # `:` replaces Textual's default palette key, so ctrl+p is declared as well.
        # Neither is a priority binding: typing `:` in an input must type it.
        Binding("colon", "command_palette", "Palette", key_display=":", id="app.palette"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="app.palette.ctrl"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        host: EngineHost | None = None,
        *,
        pump_s: float = 0.5,
        bench_store: Path | bool | None = True,
        own_host: bool | None = None,
        warm_up: bool = True,
    ) -> None:
        super().__init__()
        if bench_store is True:
            from engine.embedded import default_state_dir

            bench_store = default_state_dir() / "bench-last.json"
        self.bench_store: Path | None = bench_store or None
        self.settings = settings
        self.read_only = settings.read_only
        self.host = host or EngineHost(settings)
        self._owns_host = host is None if own_host is None else own_host
        self._pump_s = pump_s
        self._last_seq = -1
        self._warm = asyncio.Event()
        self._warm_up_at_start = warm_up
        self._warming = False
        self._leaving = False
        self._exit_after_warm_up: Callable[[], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.host.start()
        self.set_interval(self._pump_s, self.pump)
        if self._warm_up_at_start:
            self.call_after_refresh(self._warm_up)
        else:  # each screen is built on its first visit instead
            self._warm.set()

    @property
    def ready(self) -> bool:
        """True once every screen has been built (start-up is over)."""
        return self._warm.is_set()

    async def _warm_up(self) -> None:
        """Build every screen once at start-up, off screen.

        A screen's first build costs 100–400 ms while the local pool is busy; paid here, a key
        never waits for it (keys pressed meanwhile run right after, in order).
        """
        self._warming = True
        try:
            with self.batch_update():
                for mode in (*self.MODES, self.DEFAULT_MODE):
                    # Leaving (ctrl+q in the first second): adding a mode now would change
                    # the screen stacks Textual is about to close.
                    if self._leaving or not self._running:
                        return
                    if mode != self.current_mode:
                        await self.switch_mode(mode)
        finally:
            self._warm.set()
            if self._exit_after_warm_up is not None:
                self._exit_after_warm_up()
        if self._leaving:
            return
        # Start-up garbage (imports, CSS, the first screens) never becomes free: freezing it
        # keeps full collections short, and a full collection pauses key handling too.
        gc.collect()
        gc.freeze()

    def exit(
        self,
        result: object | None = None,
        return_code: int = 0,
        message: RenderableType | None = None,
    ) -> None:
        """Leave the app; during start-up, once the screen being built is mounted.

        The warm-up runs on the first screen's task: leaving the app's message loop while a
        screen is half composed mounts none of its widgets, and its on_mount then fails
        (NoMatches printed on exit, seen with ctrl+q one second after start).
        """
        if self._warming and not self._warm.is_set():
            self._leaving = True
            self._exit_after_warm_up = partial(super().exit, result, return_code, message)
            return
        super().exit(result, return_code, message)

    async def _shutdown(self) -> None:
        # A test's Pilot shuts the app down from its own task without calling exit(), so the
        # same wait happens here; bounded, so a wedged mount cannot keep the app from closing.
        self._leaving = True
        if self._warming and not self._warm.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._warm.wait(), timeout=5.0)
        await super()._shutdown()

    async def on_unmount(self) -> None:
        if self._owns_host:
            await asyncio.to_thread(self.host.stop)

    def pump(self, force: bool = False) -> None:
        """Hand the newest snapshot to the visible screen; under a modal only the status bar of
        the screen beneath moves on (its uptime and connection state stay true)."""
        snap = self.host.snapshot
        try:
            screen = self.screen
        except ScreenStackError:  # starting up or shutting down
            return
        if snap.seq == self._last_seq and not force:
            return
        self._last_seq = snap.seq
        if isinstance(screen, ModalScreen):
            below = next(
                (s for s in reversed(self.screen_stack) if isinstance(s, SpoolScreen)), None
            )
            if below is not None:
                below.show_status(snap)
            return
        if isinstance(screen, SpoolScreen):
            screen.show_snapshot(snap)
        elif hasattr(screen, "show_snapshot"):
            screen.show_snapshot(snap)  # type: ignore[attr-defined]

    # -- actions ------------------------------------------------------------------------------
    async def action_show(self, mode: str) -> None:
        """Switch to screen `mode` (keys 1–5)."""
        await self._warm.wait()
        if self.current_mode != mode:
            await self.switch_mode(mode)
        self.pump(force=True)

    def action_find_task(self) -> None:
        """`t`: ask for a task id, then show that task whole (from any screen)."""
        if not isinstance(self.screen, ModalScreen):
            self.push_screen(FindTaskScreen(), self._show_task)

    @work(group="find-task")
    async def _show_task(self, task_id: str | None) -> None:
        if not task_id:
            return
        try:
            info = await self.host.call(lambda b: task_status(b, task_id))
        except Exception as exc:
            self.notify(f"cannot look up {task_id}: {exc}", severity="error")
            return
        if info is None:
            self.notify(f"no task {task_id} in any queue", severity="warning")
            return
        self.push_screen(task_view(info))

    def action_audit(self) -> None:
        """`a`: the audit trail (every operator action recorded in Redis)."""
        if not isinstance(self.screen, AuditScreen):
            self.push_screen(AuditScreen(self.host, read_only=self.read_only))

    def action_help(self) -> None:
        """`?`: the keys of this screen, from its live bindings."""
        if isinstance(self.screen, HelpScreen):
            return
        screen = self.screen
        self.push_screen(
            HelpScreen(screen.active_bindings, type(screen).__name__.removesuffix("Screen"))
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Under a dialog the keys that open or switch screens are off (and its footer shows
        only the keys that work there); the palette, itself a dialog, still lists them."""
        return action not in _SCREEN_ACTIONS or not self._dialog_open()

    def _dialog_open(self) -> bool:
        try:
            screen = self.screen
        except ScreenStackError:
            return False
        return isinstance(screen, ModalScreen) and not isinstance(screen, CommandPalette)

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Save an SVG of the screen (the palette's "Screenshot") to the Downloads directory,
        or to the state directory's `screenshots/` where there is none (Textual's default
        then failed: "Failed to save screenshot")."""
        if path is None:
            downloads = user_downloads_path()
            target = downloads if downloads.is_dir() else default_state_dir() / "screenshots"
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.notify(f"cannot save a screenshot in {target}: {exc}", severity="error")
                return None
            path = str(target)
        return super().deliver_screenshot(filename, path, time_format)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: every action bound on this screen and the app, then every other
        screen's actions (which switch to that screen first), then Textual's own."""
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if not active.enabled or b.action == "command_palette" or not b.description:
                continue
            if not (isinstance(active.node, (Screen, App))):
                continue
            title = b.description
            if title in seen:
                continue
            seen.add(title)
            display = b.key_display or key
            yield SystemCommand(title, f"key {display}", partial(active.node.run_action, b.action))
        for mode, cls in self.MODES.items():
            if isinstance(screen, cls) or not issubclass(cls, SpoolScreen):
                continue
            name = cls.__name__.removesuffix("Screen")
            for b in cls.BINDINGS:
                if not isinstance(b, Binding) or not b.description:
                    continue
                if self.read_only and b.action in cls.DESTRUCTIVE:
                    continue
                display = b.key_display or b.key
                yield SystemCommand(
                    f"{b.description} ({name})",
                    f"screen {cls.SCREEN_KEY}, key {display}",
                    partial(self._run_on_mode, mode, b.action),
                )
        yield from super().get_system_commands(screen)

    async def _run_on_mode(self, mode: str, action: str) -> None:
        """A palette entry of another screen: switch there, then run its action."""
        await self.action_show(mode)
        await self.screen.run_action(action)


def _log_to_file(level: int) -> None:
    """Engine logs go to a file: anything written to the terminal would tear the screen."""
    from engine.embedded import default_state_dir

    try:
        path = default_state_dir() / "console.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("spool", "engine"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def run_app(settings: Settings) -> int:
    """Run the console until `ctrl+q`; returns the exit code."""
    _log_to_file(getattr(logging, settings.log_level.upper()))
    app = SpoolApp(settings)
    result = app.run()
    return int(result or 0)
