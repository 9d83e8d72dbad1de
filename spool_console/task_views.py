"""The task views of a queue's page: the next tasks of each level, or one paged view.

`load_view` runs on the engine thread (through `EngineHost.call`) and returns the rows and a
title; the screen only draws them. Views: "next" (the next tasks of every level, the page's
default), "pending:<level>" (every pending task of a level, paged), "scheduled" and "active".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine import browse
from engine import queues as queue_ops
from engine.broker import Broker
from engine.task import TaskInfo
from spool_console.screens.detail import compact_json

PAGE = 50
NEXT_PER_LEVEL = 20


def view_names(levels: tuple[str, ...]) -> tuple[str, ...]:
    """Every view of a queue with `levels`, in the order `v` cycles through them."""
    return ("next", *(f"pending:{lv}" for lv in levels), "scheduled", "active")


@dataclass(frozen=True, slots=True)
class ViewRows:
    """What the tasks table shows: (task id, cells) rows, a title, and whether pages follow."""

    rows: list[tuple[str, tuple[str, ...]]]
    title: str
    has_next: bool


def _when(info: TaskInfo, now_ms: float) -> str:
    if info.due_at_ms is not None:
        return f"due in {max(0.0, (info.due_at_ms - now_ms) / 1000):,.1f} s"
    if info.lease_deadline_ms is not None:
        return f"lease {max(0.0, (info.lease_deadline_ms - now_ms) / 1000):,.1f} s"
    return "-"


def _row(info: TaskInfo, pos: int, now: float) -> tuple[str, tuple[str, ...]]:
    age = f"{now - info.enqueued_at_ms / 1000:,.1f} s ago" if info.enqueued_at_ms else "-"
    args = compact_json(info.args)
    return (
        info.id,
        (
            info.priority,
            f"{pos:,}",
            info.id[:12],
            info.name,
            args[:40],
            str(info.attempts),
            age,
            _when(info, now * 1000) if info.state.value != "pending" else "-",
        ),
    )


async def load_view(broker: Broker, queue: str, view: str, offset: int) -> ViewRows:
    """The rows of `view` from `offset` (ignored by "next")."""
    now = time.time()
    if view == "next":
        rows = []
        for level in broker.keys(queue).levels:
            for pos, info in enumerate(await queue_ops.peek(broker, queue, level, NEXT_PER_LEVEL)):
                rows.append(_row(info, pos + 1, now))
        title = f"Next {NEXT_PER_LEVEL} tasks of each level (fetch order) · v: other views"
        return ViewRows(rows, title, False)
    if view.startswith("pending:"):
        page = await browse.pending_page(broker, queue, view.split(":", 1)[1], offset, PAGE)
        label = f"Pending {view.split(':', 1)[1]} (fetch order)"
    elif view == "scheduled":
        page = await browse.scheduled_page(broker, queue, offset, PAGE)
        label = "Scheduled and retrying (soonest due first)"
    else:
        page = await browse.active_page(broker, queue, offset, PAGE)
        label = "Active (the lease ending soonest first)"
    rows = [_row(info, offset + i + 1, now) for i, info in enumerate(page.tasks)]
    if page.tasks:
        span = f"{offset + 1:,}–{offset + len(page.tasks):,} of {page.total:,}"
    else:
        span = f"none of {page.total:,}"
    return ViewRows(rows, f"{label} · {span} · [ ] pages · v: other views", page.has_next)
