"""`cancel ID` and `schedules`: stop a task from a shell, and list the periodic tasks.

Both call what the console and the HTTP API call (`engine.cancel.cancel_and_report`,
`engine.schedule.list_schedules`); a cancel is recorded in the audit trail like theirs.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from spool_console.cli_output import EXIT_NOT_FOUND, EXIT_OK, CommandError, Output
from spool_console.restore_cmd import clock

if TYPE_CHECKING:
    from engine.broker import Broker

Audit = Callable[..., Awaitable[None]]


def add_cancel(p: argparse.ArgumentParser) -> None:
    """`cancel ID [--queue Q]`."""
    p.add_argument("task_id", metavar="ID", help="the task's id")
    p.add_argument("--queue", help="its queue (default: looked up in every queue)")


async def run_cancel(broker: Broker, args: argparse.Namespace, out: Output, audit: Audit) -> int:
    """Cancel a pending or scheduled task, or ask a running one's worker to stop it."""
    from engine import cancel as cancel_ops

    if args.queue is not None:
        broker.keys(args.queue)  # a bad name is refused before any read (ValueError)
    outcome = await cancel_ops.cancel_and_report(broker, args.task_id, args.queue)
    if outcome is None:
        raise CommandError(EXIT_NOT_FOUND, f"no task {args.task_id} (or it expired)")
    await audit(broker, "cancel", outcome.scope, outcome.result)
    if out.as_json:
        out.json({"id": args.task_id, "cancelled": outcome.cancelled, "state": outcome.state})
    else:
        out.line(f"{args.task_id}: {outcome.result}")
    return EXIT_OK


def add_schedules(p: argparse.ArgumentParser) -> None:
    """`schedules` takes no arguments of its own."""


def _every(every_s: float | None, cron: str | None, tz: str | None) -> str:
    if cron is not None:
        return f"cron {cron}" + (f" ({tz})" if tz else "")
    return f"every {every_s:g} s"


async def run_schedules(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    """The periodic tasks the workers run, with their last and next run."""
    from engine.schedule import list_schedules

    found = await list_schedules(broker)
    if out.as_json:
        out.json({"schedules": [s.to_dict() for s in found]})
        return EXIT_OK
    rows = [
        (
            s.name,
            s.queue,
            _every(s.every_s, s.cron, s.tz),
            clock(s.last_run_ms) if s.last_run_ms is not None else "never",
            clock(s.next_run_ms),
        )
        for s in found
    ]
    out.table(
        ("task", "queue", "when", "last run", "next run"),
        rows,
        "no periodic tasks (a worker publishes its @task(every=…|cron=…) when it starts)",
    )
    return EXIT_OK
