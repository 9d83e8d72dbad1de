"""What the queue list and one queue's page share: the state words and pause/enqueue keys."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import work

from engine import queues as queue_ops
from engine.diagnosis import Diagnosis, duration_text
from engine.task import TaskSpec
from spool_console.engine_host import EngineUnavailable
from spool_console.screens.base import SpoolScreen
from spool_console.screens.enqueue_form import EnqueueScreen


def state_label(paused: bool, diagnosis: Diagnosis | None, busy: bool = True) -> str:
    """The State cell: what the queue's diagnosis says first, in a word or two."""
    if diagnosis is None or not diagnosis.reasons:
        return "‖ paused" if paused else ("moving" if busy else "idle")
    code = diagnosis.reasons[0].code
    return "‖ paused" if code == "paused" else code.replace("_", " ")


def why_lines(queue: str, diagnosis: Diagnosis | None) -> str:
    """Every reason of one queue's diagnosis (and its oldest pending task's age)."""
    if diagnosis is not None and diagnosis.oldest_pending_age_s is not None:
        age = f" · oldest pending {duration_text(diagnosis.oldest_pending_age_s)}"
    else:
        age = ""
    return _why(queue, diagnosis) + age


def _why(queue: str, diagnosis: Diagnosis | None) -> str:
    if diagnosis is None:
        return f"[b]{queue}[/b]: no diagnosis yet"
    if not diagnosis.reasons:
        return f"[b]{queue}[/b]: [green]moving[/] (nothing holds it back)"
    verdict = "[green]moving[/]" if diagnosis.moving else "[b red]not moving[/]"
    return f"[b]{queue}[/b]: {verdict} · " + " · ".join(
        escape(r.message) for r in diagnosis.reasons
    )


class QueueActions(SpoolScreen):
    """Pause/resume and enqueue, shared by the queue list and one queue's page."""

    SCREEN_KEY = "2"
    DESTRUCTIVE: ClassVar[frozenset[str]] = frozenset({"toggle_pause", "enqueue"})

    def current_queue(self) -> str | None:
        """The queue the keys act on. Override."""
        return None

    def _paused(self, queue: str) -> bool:
        return any(q.paused for q in self.host.snapshot.queues if q.queue == queue)

    def action_toggle_pause(self) -> None:
        """`p`: pause the queue, or resume it when paused."""
        queue = self.current_queue()
        if queue is not None:
            self._toggle(queue, not self._paused(queue))

    @work(group="queue-action")
    async def _toggle(self, queue: str, pause: bool) -> None:
        op = queue_ops.pause if pause else queue_ops.resume
        try:
            await self.host.call(lambda b: op(b, queue))
        except (EngineUnavailable, Exception) as exc:
            self.notify(
                f"could not {'pause' if pause else 'resume'} {queue}: {exc}", severity="error"
            )
            return
        self.notify(f"{queue} {'paused' if pause else 'resumed'}")
        await self.host.audit("pause" if pause else "resume", f"queue {queue}", "done")
        self.host.refresh_soon()

    def action_enqueue(self) -> None:
        """`n`: the enqueue form."""
        queue = self.current_queue() or self.spool.settings.queues[0]
        levels = (
            self.host.broker.keys(queue).levels if self.host.broker else self.host.snapshot.levels
        )
        self.app.push_screen(EnqueueScreen(queue, tuple(levels)), self._enqueue_specs)

    def _enqueue_specs(self, specs: list[TaskSpec] | None) -> None:
        if specs:
            self._enqueue(specs)

    @work(group="queue-action")
    async def _enqueue(self, specs: list[TaskSpec]) -> None:
        try:
            ids = await self.host.call(lambda b: b.enqueue(specs))
        except Exception as exc:
            self.notify(f"enqueue failed: {exc}", severity="error")
            return
        first = specs[0]
        tail = f": {ids[0]}" if len(ids) == 1 else ""
        # Left blank in the form, the queue and priority are the task's declared ones.
        where = first.queue or "its declared queue"
        what = f"{len(ids):,} × {first.name} to {where}" + (
            f"/{first.priority}" if first.priority else ""
        )
        self.notify(f"enqueued {what}{tail}")
        await self.host.audit("enqueue", what, f"enqueued {len(ids):,}")
        self.host.refresh_soon()
