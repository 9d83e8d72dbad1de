"""The dead-letter screen's actions on letters: requeue or delete one, the marked ones, or all
that match, each through one path: scope (count + filter) → confirm (focus on Cancel) → busy
(a worker; the table shows `loading`) → result (`notify` with the engine's own count).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from functools import partial

from textual import work

from engine import dead as dead_ops
from engine import undo
from engine.broker import Broker
from engine.dead import DeadFilter, DeadItem
from spool_console.screens.base import SpoolScreen
from spool_console.screens.confirm import ConfirmScreen
from widgets.vim_table import VimTable

#: A dead-letter action given the undo token it runs under ("" unless it is a delete).
Act = Callable[[Broker, str], Awaitable[int]]


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


class DeadActions(SpoolScreen):
    """Requeue and delete for the dead-letter screen, which supplies what they act on."""

    marked: set[str]
    items: dict[str, DeadItem]
    _busy: bool

    @property
    def flt(self) -> DeadFilter:
        """The filter `R`/`D` act on. Override."""
        raise NotImplementedError

    def _cursor_item(self) -> DeadItem | None:
        """The letter under the cursor. Override."""
        raise NotImplementedError

    def reload(self) -> None:
        """Read the letters again after an action. Override."""
        raise NotImplementedError

    def _targets(self) -> dict[str, list[str]]:
        """Marked items, else the one under the cursor, per queue."""
        keys = list(self.marked) or (
            [self.query_one("#dead", VimTable).cursor_key] if self._cursor_item() else []
        )
        out: dict[str, list[str]] = {}
        for key in keys:
            item = self.items.get(key) if key else None
            if item:
                out.setdefault(item.queue, []).append(item.id)
        return out

    def action_requeue(self) -> None:
        """`r`: requeue the item under the cursor, or the marked items (after confirmation)."""
        targets = self._targets()
        n = sum(len(v) for v in targets.values())
        if not n:
            return
        op = dead_ops.requeue_dead
        self._bulk(
            verb="Requeue",
            done="requeued",
            scope=f"{n} marked dead letter(s)" if self.marked else None,
            run=lambda b, _undo: _per_queue(b, op, targets),
        )

    def action_delete(self) -> None:
        """`d`: delete the item under the cursor, or the marked items (after confirmation)."""
        targets = self._targets()
        n = sum(len(v) for v in targets.values())
        if not n:
            return
        item = self._cursor_item()
        what = (
            f"{n} marked dead letter(s)"
            if self.marked
            else f"1 dead letter: {item.name if item else ''} {item.id if item else ''}"
        )
        self._bulk(
            verb="Delete",
            done="deleted",
            scope=what,
            run=lambda b, token: _per_queue(b, partial(dead_ops.delete_dead, undo=token), targets),
            always_confirm=True,
            undoable=True,
        )

    def action_requeue_all(self) -> None:
        """`R`: requeue everything matching the filter or group."""
        flt = self.flt
        self._bulk(
            verb="Requeue",
            done="requeued",
            scope=None,
            flt=flt,
            matching=lambda b, pinned, _undo: dead_ops.requeue_matching(b, pinned),
        )

    def action_delete_all(self) -> None:
        """`D`: delete everything matching the filter or group."""
        flt = self.flt
        self._bulk(
            verb="Delete",
            done="deleted",
            scope=None,
            flt=flt,
            matching=dead_ops.delete_matching,
            undoable=True,
        )

    @work(group="dead-action", exclusive=True)
    async def _bulk(
        self,
        *,
        verb: str,
        done: str,
        scope: str | None,
        run: Act | None = None,
        flt: DeadFilter | None = None,
        matching: Callable[[Broker, DeadFilter, str], Awaitable[int]] | None = None,
        always_confirm: bool = False,
        undoable: bool = False,
    ) -> None:
        """scope → confirm → busy → result. With `flt`, the scope is pinned to what has died
        when it is counted, and `matching(broker, pinned filter, undo)` acts on exactly that.
        An `undoable` action (a delete) runs under a fresh undo token, recorded with it in the
        audit trail, where it can be restored while the token lasts (`engine.undo`)."""
        table = self.query_one("#dead", VimTable)
        if flt is not None:
            try:
                flt, count = await self.host.call(
                    lambda b: dead_ops.pin_scope(b, flt), timeout_s=30.0
                )
            except Exception as exc:
                self.notify(f"could not count: {exc}", severity="error")
                return
            if not count:
                self.notify("nothing matches", severity="warning")
                return
            assert flt.until_ms is not None
            cutoff = dt.datetime.fromtimestamp(flt.until_ms / 1000).strftime("%H:%M:%S")
            scope = (
                f"{count:,} dead letter(s) matching {flt.describe()} that died at or before"
                f" {cutoff} (any that die later are left alone)"
            )
            pinned, matching_op = flt, matching
            assert matching_op is not None

            async def run(b: Broker, token: str) -> int:
                return await matching_op(b, pinned, token)

        if scope is not None or always_confirm:
            text = f"Scope: {scope}"
            if undoable:
                window_s = self.host.settings.restore_window_s
                text += (
                    f"\nRestorable for {window_s / 60:g} min from the audit trail (a)."
                    if window_s
                    else "\nThis is final: --restore-window 0 keeps no copy."
                )
            ok = await self.app.push_screen_wait(
                ConfirmScreen(f"{verb} dead letters?", text, verb=verb, focus_cancel=True)
            )
            if not ok:
                self.notify(f"{verb.lower()} cancelled: nothing changed")
                return
        assert run is not None
        self._busy = True
        table.loading = True
        act = run
        try:
            token = await self.host.call(undo.new_undo) if undoable else ""
            n = await self.host.call(lambda b: act(b, token), timeout_s=120.0)
        except Exception as exc:
            self.notify(f"{verb.lower()} failed: {exc}", severity="error")
            return
        finally:
            table.loading = False
            self._busy = False
        self.marked.clear()
        result = f"{done} {n:,}"
        if flt is not None:
            try:
                newer = await self.host.call(lambda b: dead_ops.count_newer(b, flt))
            except Exception:  # the action is done; only the note is missing
                newer = 0
            if newer:
                result += f" · {newer:,} newer left alone"
        restorable = (
            f" · restorable until {_clock(undo.expiry_of(token))} from the audit trail (a)"
            if token and n
            else ""
        )
        self.notify(result + restorable)
        await self.host.audit(
            f"dead {verb.lower()}", scope or "1 dead letter", result, undo=token, held=n
        )
        self.host.refresh_soon()
        self.reload()


async def _per_queue(
    broker: Broker,
    op: Callable[[Broker, str, list[str]], Awaitable[int]],
    targets: dict[str, list[str]],
) -> int:
    total = 0
    for queue, ids in targets.items():
        total += await op(broker, queue, ids)
    return total
