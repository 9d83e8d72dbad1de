"""`dead deleted` and `dead restore TOKEN`: deleted dead letters, restorable for a while.

A `dead delete` prints the undo token of its action; `dead restore TOKEN` brings those letters
back as they were (`engine.undo`), and is itself recorded in the audit trail.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from spool_console.cli_output import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CommandError, Output

if TYPE_CHECKING:
    from engine.broker import Broker

Audit = Callable[..., Awaitable[None]]


def clock(ms: int) -> str:
    """Epoch ms as local HH:MM:SS."""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def add_restore_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `deleted` and `restore` subcommands of `dead`."""
    sub.add_parser("deleted", help="deletes that can still be restored", allow_abbrev=False)
    restore = sub.add_parser("restore", help="restore the letters of a delete, by its undo "
                             "token", allow_abbrev=False)
    restore.add_argument("token", help="the undo token a delete printed (also in `dead deleted`)")


def undo_note(token: str, deleted: int, out: Output) -> dict[str, object]:
    """After a delete: how to undo it (a line for people; the JSON fields for scripts)."""
    from engine.undo import expiry_of

    if not token or not deleted:
        return {}
    until = expiry_of(token)
    if not out.as_json:
        out.line(f"restore until {clock(until)} with: spool-console dead restore {token}")
    return {"undo": token, "restorable_until_ms": until}


async def run_deleted(broker: Broker, out: Output) -> int:
    """Every delete still restorable, with its token and letters per queue."""
    from engine.undo import held_deletes

    found = await held_deletes(broker)
    if out.as_json:
        out.json({"deleted": [
            {"undo": h.token, "count": h.count, "by_queue": h.by_queue,
             "restorable_until_ms": h.expires_at_ms}
            for h in found
        ]})
        return EXIT_OK
    rows = [
        (h.token, h.count, ",".join(sorted(h.by_queue)), clock(h.expires_at_ms)) for h in found
    ]
    out.table(("undo token", "letters", "queues", "until"), rows, "no deletes to restore")
    return EXIT_OK


async def run_restore(broker: Broker, args: argparse.Namespace, out: Output, audit: Audit) -> int:
    """Restore the letters held under `args.token`."""
    from engine import undo

    try:
        undo.expiry_of(args.token)
    except ValueError as exc:
        raise CommandError(EXIT_USAGE, f"restore: {exc}") from None
    done = await undo.restore(broker, args.token)
    if done.expired:
        raise CommandError(EXIT_NOT_FOUND, f"restore: the window of {args.token} ended at "
                                           f"{clock(done.expires_at_ms)}; its letters are gone")
    if not done.restored and not done.id_in_use:
        raise CommandError(EXIT_NOT_FOUND, f"restore: nothing held under {args.token} (already "
                                           "restored, or dropped to keep the holding bounded)")
    result = f"restored {done.restored:,}"
    if done.id_in_use:
        result += f" · {done.id_in_use:,} left deleted (id in use again)"
    await audit(broker, "dead restore", f"undo {args.token}", result)
    if out.as_json:
        out.json({"restored": done.restored, "id_in_use": done.id_in_use})
    else:
        out.line(f"restored={done.restored}" + (f" id_in_use={done.id_in_use}"
                                                 if done.id_in_use else ""))
    return EXIT_OK
