"""Screen 4, Workers: every process sharing the Redis, and the local pool's auto-scaler."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Input, Label

from engine.worker.pool import WorkerPool
from spool_console.screens.base import SpoolScreen, keys_footer
from spool_console.snapshots import ConsoleSnapshot
from widgets.scaler_panel import ScalerPanel
from widgets.slots_table import SlotsTable
from widgets.status_bar import fmt_duration
from widgets.vim_table import VimTable

T = TypeVar("T")
#: The most slots one console's pool may be given (asyncio tasks; far above any real need).
MAX_CONCURRENCY = 10_000
#: Quiet time after a control before its toast shows (key repeat is ~30 ms apart).
TOAST_AFTER_S = 0.3


class NumbersScreen(ModalScreen[tuple[int, ...] | None]):
    """A tiny form of whole numbers (pin concurrency; min/max bounds)."""

    DEFAULT_CSS = """
    NumbersScreen { align: center middle; }
    NumbersScreen > Vertical {
        width: 50; height: auto; border: thick $primary; background: $surface; padding: 0 1;
    }
    NumbersScreen #title { text-style: bold; }
    NumbersScreen #error { color: $error; }
    NumbersScreen Horizontal { height: auto; align-horizontal: right; }
    NumbersScreen Button { margin-left: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="numbers.cancel")
    ]

    def __init__(
        self, title: str, fields: list[tuple[str, int]], *, ascending: bool = False
    ) -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.ascending = ascending  # each value at least the one before (min ≤ max)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            for i, (label, value) in enumerate(self.fields):
                yield Label(label)
                yield Input(str(value), type="integer", id=f"n{i}")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Apply", id="apply", variant="primary")
        yield keys_footer()

    def on_mount(self) -> None:
        self.query_one("#n0", Input).focus()

    def _submit(self) -> None:
        try:
            values = tuple(
                int(self.query_one(f"#n{i}", Input).value) for i in range(len(self.fields))
            )
        except ValueError:
            self.query_one("#error", Label).update("whole numbers only")
            return
        error = ""
        if any(v < 1 for v in values):
            error = "must be at least 1"
        elif any(v > MAX_CONCURRENCY for v in values):
            error = f"must be at most {MAX_CONCURRENCY:,}"
        elif self.ascending and list(values) != sorted(values):
            error = f"{self.fields[0][0].lower()} must not exceed {self.fields[-1][0].lower()}"
        if error:  # the dialog stays open with what was typed
            self.query_one("#error", Label).update(error)
            return
        self.dismiss(values)

    def on_input_submitted(self) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Nothing changes."""
        self.dismiss(None)


class WorkersScreen(SpoolScreen):
    """Fleet table and the local auto-scaler with its controls."""

    SCREEN_KEY = "4"
    POOL_ACTIONS: ClassVar[frozenset[str]] = frozenset(
        {"max_up", "max_down", "min_up", "min_down", "bounds", "pin", "unpin"}
    )
    DESTRUCTIVE: ClassVar[frozenset[str]] = POOL_ACTIONS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus", "max_up", "Max +1", key_display="+", id="workers.max_up"),
        Binding("minus", "max_down", "Max −1", key_display="-", id="workers.max_down"),
        Binding("greater_than_sign", "min_up", "Min +1", key_display=">", id="workers.min_up"),
        Binding("less_than_sign", "min_down", "Min −1", key_display="<", id="workers.min_down"),
        Binding("b", "bounds", "Bounds…", id="workers.bounds"),
        Binding("p", "pin", "Pin…", id="workers.pin"),
        Binding("u", "unpin", "Unpin", id="workers.unpin"),
    ]
    DEFAULT_CSS = """
    WorkersScreen .panel { border: round $primary 50%; border-title-color: $text-accent; }
    WorkersScreen #fleet-box { height: auto; max-height: 40%; }
    WorkersScreen #fleet { height: auto; max-height: 100%; }
    WorkersScreen #local { height: 1fr; }
    WorkersScreen #scaler-box { width: 3fr; height: 100%; }
    WorkersScreen #slots-box { width: 2fr; height: 100%; }
    WorkersScreen.-narrow #slots-box { display: none; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.narrow = False
        self._toast: Timer | None = None
        self._availability: tuple[bool, bool] | None = None

    def compose(self) -> ComposeResult:
        yield self.compose_status()
        self.narrow = self.app.size.width < 120
        self.set_class(self.narrow, "-narrow")
        with Vertical(id="fleet-box", classes="panel") as box:
            box.border_title = "Fleet: every process sharing this Redis"
            if self.narrow:
                yield VimTable(
                    ("Process", "proc"),
                    ("Conc.", "conc"),
                    ("In flight", "inflight"),
                    ("Processed", "processed"),
                    ("Failed", "failed"),
                    ("Beat", "beat"),
                    id="fleet",
                )
            else:
                yield VimTable(
                    ("Host", "host"),
                    ("PID", "pid"),
                    ("Queues", "queues"),
                    ("Conc.", "conc"),
                    ("In flight", "inflight"),
                    ("Processed", "processed"),
                    ("Failed", "failed"),
                    ("Uptime", "uptime"),
                    ("Heartbeat", "beat"),
                    ("", "local"),
                    id="fleet",
                )
        with Horizontal(id="local"):
            with Vertical(id="scaler-box", classes="panel") as box:
                box.border_title = (
                    "Local auto-scaler"
                    if self.spool.read_only
                    else "Local auto-scaler  (+/- max · >/< min · b bounds · p pin · u unpin)"
                )
                yield ScalerPanel(decisions=12, id="local-scaler")
            with Vertical(id="slots-box", classes="panel") as box:
                box.border_title = "Local pool slots: running now"
                yield SlotsTable(id="slots", cursor_type="none")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()

    def on_resize(self) -> None:
        self.recompose_if_narrow_changed(self.narrow)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if not allowed:
            return allowed
        if action in self.POOL_ACTIONS:
            pool = self.host.snapshot.pool
            if pool is None and self.host.settings.workers == 0:
                return False
            if action == "unpin" and pool is not None and not pool.pinned:
                return None  # shown dimmed
        return True

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        now = time.time()
        local = snap.pool.worker_id if snap.pool else None
        rows = []
        for w in snap.workers:
            conc = f"{w.concurrency}" + (
                " pinned" if w.pinned else f" ({w.min_concurrency}–{w.max_concurrency})"
            )
            beat = f"{max(0.0, now - w.last_seen_s):,.1f} s ago"
            if self.narrow:
                mine = " ◀ this console" if w.id == local else ""
                rows.append(
                    (
                        w.id,
                        (
                            f"{w.host}:{w.pid}{mine}",
                            conc,
                            f"{w.in_flight:,}",
                            f"{w.processed:,}",
                            f"{w.failed:,}",
                            beat,
                        ),
                    )
                )
                continue
            rows.append(
                (
                    w.id,
                    (
                        w.host,
                        str(w.pid),
                        ",".join(w.queues),
                        f"{w.concurrency}"
                        + (
                            " pinned" if w.pinned else f" ({w.min_concurrency}–{w.max_concurrency})"
                        ),
                        f"{w.in_flight:,}",
                        f"{w.processed:,}",
                        f"{w.failed:,}",
                        fmt_duration(w.uptime_s),
                        f"{max(0.0, now - w.last_seen_s):,.1f} s ago",
                        "◀ this console" if w.id == local else "",
                    ),
                )
            )
        self.query_one("#fleet", VimTable).sync(rows)
        self.query_one(ScalerPanel).show(
            snap.pool, now_s=snap.taken_at_s, absent=snap.no_pool_reason
        )
        self.query_one(SlotsTable).show(snap.pool)
        # Only when a key's availability changes: each refresh rebuilds the footer, and one a
        # snapshot kept it rebuilding (blank under load, its keys never laid out).
        availability = (snap.pool is None, snap.pool is not None and snap.pool.pinned)
        if availability != self._availability:
            self._availability = availability
            self.refresh_bindings()

    # -- controls -----------------------------------------------------------------------------
    def _bounds(self) -> tuple[int, int]:
        pool = self.host.snapshot.pool
        if pool is None:
            s = self.host.settings
            return s.min_workers, s.max_workers
        return pool.min_concurrency, pool.max_concurrency

    def action_max_up(self) -> None:
        """`+`: raise the maximum by one."""
        self._step(lambda lo, hi: (lo, hi + 1))

    def action_max_down(self) -> None:
        """`-`: lower the maximum by one (the minimum follows)."""
        self._step(lambda lo, hi: (min(lo, max(1, hi - 1)), max(1, hi - 1)))

    def action_min_up(self) -> None:
        """`>`: raise the minimum by one (the maximum follows)."""
        self._step(lambda lo, hi: (lo + 1, max(hi, lo + 1)))

    def action_min_down(self) -> None:
        """`<`: lower the minimum by one."""
        self._step(lambda lo, hi: (max(1, lo - 1), hi))

    def _step(self, change: Callable[[int, int], tuple[int, int]]) -> None:
        """Apply `change` to the pool's bounds as they are when it runs, not as last drawn:
        ten quick presses are ten steps even before a snapshot shows the first."""

        def apply(pool: WorkerPool) -> tuple[int, int]:
            current = pool.scaler.settings
            lo, hi = change(current.min_concurrency, current.max_concurrency)
            lo, hi = min(lo, MAX_CONCURRENCY), min(hi, MAX_CONCURRENCY)
            pool.set_bounds(lo, hi)
            return lo, hi

        self._control(apply, lambda bounds: f"bounds now {bounds[0]:,}–{bounds[1]:,}")

    def action_bounds(self) -> None:
        """`b`: type new min/max."""
        lo, hi = self._bounds()

        def done(values: tuple[int, ...] | None) -> None:
            if values:
                lo2, hi2 = values
                self._control(
                    lambda p: p.set_bounds(lo2, hi2), lambda _: f"bounds now {lo2:,}–{hi2:,}"
                )

        self.app.push_screen(
            NumbersScreen("Auto-scaler bounds", [("Minimum", lo), ("Maximum", hi)], ascending=True),
            done,
        )

    def action_pin(self) -> None:
        """`p`: fix the concurrency."""
        pool = self.host.snapshot.pool
        current = pool.concurrency if pool else self._bounds()[0]

        def done(values: tuple[int, ...] | None) -> None:
            if values:
                n = values[0]
                self._control(lambda p: p.pin(n), lambda _: f"pinned at {n:,}")

        self.app.push_screen(NumbersScreen("Pin concurrency", [("Concurrency", current)]), done)

    def action_unpin(self) -> None:
        """`u`: back to automatic scaling."""
        self._control(lambda p: p.unpin(), lambda _: "unpinned: automatic scaling")

    @work(group="pool-control")
    async def _control(self, fn: Callable[[WorkerPool], T], message: Callable[[T], str]) -> None:
        try:
            result = await self.host.call_pool(fn)
        except Exception as exc:
            self.notify(f"could not change the pool: {exc}", severity="error")
            return
        # A burst of presses gets one toast, with the final figure, once the keys pause.
        if self._toast is not None:
            self._toast.stop()
        text = message(result)
        self._toast = self.set_timer(TOAST_AFTER_S, lambda: self.notify(text))
        worker = self.host.snapshot.pool.worker_id if self.host.snapshot.pool else "local pool"
        await self.host.audit("pool control", worker, text)
        self.host.refresh_soon()
