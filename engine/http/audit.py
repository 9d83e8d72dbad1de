"""The HTTP API's operator actions in the audit trail, one way for every write route."""

from __future__ import annotations

from aiohttp import web

from engine.audit import AuditEntry, record_quietly
from engine.http.context import ctx


async def record(
    request: web.Request,
    action: str,
    scope: str,
    result: str,
    *,
    undo: str = "",
    held: int = 0,
) -> None:
    """Append an action done for `request`: via "http", the client's address as host, the
    caller's identity (`HttpContext.caller`) as user. A failure is logged, not
    raised: the action already happened and the client must still hear its result."""
    entry = AuditEntry.now(
        action,
        scope,
        result,
        via="http",
        host=request.remote or "?",
        user=ctx(request).caller,
        undo=undo,
        held=held,
    )
    await record_quietly(ctx(request).broker, entry)
