"""Operator actions as audit records: who did what, to what, with what result, and when.

The console, the CLI and the HTTP API record every action that changes something (requeue,
delete, restore, pause, resume, cancel, enqueue, pin, bounds) through `Broker.record_audit`;
the stream is capped at `AUDIT_MAX` entries (approximate trimming: O(1) per append). A delete's
entry carries its undo token and how many letters it held, so it can be restored from the
trail (`engine.undo`).
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("spool.audit")

#: Entries kept in the audit stream (older ones are trimmed).
AUDIT_MAX = 10_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action."""

    action: str
    scope: str
    result: str
    via: str = "console"
    host: str = ""
    user: str = ""
    at_ms: int = 0
    id: str = ""
    #: A delete's undo token ("" for other actions, or a delete that is final).
    undo: str = ""
    #: How many letters that delete held for undo.
    held: int = 0

    @classmethod
    def now(
        cls,
        action: str,
        scope: str,
        result: str,
        via: str = "console",
        *,
        host: str | None = None,
        user: str | None = None,
        undo: str = "",
        held: int = 0,
    ) -> AuditEntry:
        """An entry stamped with the clock, and with this machine's host and user unless given
        (the HTTP API gives the client's address and the caller's identity)."""
        if user is None:
            try:
                user = getpass.getuser()
            except Exception:  # no user name in this environment (some containers)
                user = "?"
        return cls(
            action,
            scope,
            result,
            via,
            socket.gethostname() if host is None else host,
            user,
            int(time.time() * 1000),
            undo=undo,
            held=held,
        )

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "action": self.action,
            "scope": self.scope,
            "result": self.result,
            "via": self.via,
            "host": self.host,
            "user": self.user,
            "at_ms": str(self.at_ms),
            **({"undo": self.undo, "held": str(self.held)} if self.undo else {}),
        }

    def cells(self) -> tuple[str, str, str, str, str, str]:
        """when (local MM-DD HH:MM:SS), action, scope, result, via, who (user@host): the
        columns the console's audit screen and `spool-console audit` both show."""
        when = time.strftime("%m-%d %H:%M:%S", time.localtime(self.at_ms / 1000))
        return (when, self.action, self.scope, self.result, self.via, f"{self.user}@{self.host}")

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[Any, Any]) -> AuditEntry:
        """Inverse of `fields` (missing fields are empty)."""
        f = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            action=f.get("action", ""),
            scope=f.get("scope", ""),
            result=f.get("result", ""),
            via=f.get("via", ""),
            host=f.get("host", ""),
            user=f.get("user", ""),
            at_ms=int(f.get("at_ms") or 0),
            id=entry_id,
            undo=f.get("undo", ""),
            held=int(f.get("held") or 0),
        )


async def record_quietly(broker: Any, entry: AuditEntry) -> None:
    """`broker.record_audit(entry)`, logging rather than raising: the action already happened,
    and its caller must still hear its result."""
    try:
        await broker.record_audit(entry)
    except Exception as exc:
        log.warning("could not record %s in the audit trail: %s", entry.action, exc)
