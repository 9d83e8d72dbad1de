"""`audit [--limit N]`: the audit trail from a shell, as the console's audit screen shows it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from spool_console.cli_output import EXIT_OK, Output
from spool_console.options import positive_int

if TYPE_CHECKING:
    from engine.broker import Broker


def add_audit(p: argparse.ArgumentParser) -> None:
    """`audit [--limit N]`."""
    p.add_argument("--limit", type=positive_int, default=50, help="how many, newest first")


async def run_audit(broker: Broker, args: argparse.Namespace, out: Output) -> int:
    """Operator actions from the console, the CLI and the HTTP API, newest first."""
    entries = await broker.audit_log(args.limit)
    if out.as_json:
        out.json({"entries": [_doc(e) for e in entries]})
        return EXIT_OK
    rows = [(*e.cells(), e.undo) for e in entries]
    out.table(
        ("when", "action", "scope", "result", "via", "who", "undo"),
        rows,
        "no action recorded yet",
    )
    return EXIT_OK


def _doc(entry: object) -> dict[str, object]:
    """An entry as GET /v1/audit serves it (empty undo and zero held left out)."""
    import msgspec

    from engine.http.contract import AuditView

    return msgspec.to_builtins(msgspec.convert(entry, AuditView, from_attributes=True))
