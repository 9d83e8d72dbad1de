"""Bearer-token authentication, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.http.errors import ApiError, Handler

#: Routes that answer without a token: a liveness probe must work before secrets are mounted.
OPEN_PATHS = frozenset({"/healthz"})


def make_auth_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Require `Authorization: Bearer <token>` on every route except `OPEN_PATHS`."""
    expected = token.encode()

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            # compare_digest on bytes: its time does not depend on where the strings differ.
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8", "surrogateescape"), expected
            ):
                raise ApiError(
                    401,
                    "unauthorized",
                    "missing or invalid bearer token",
                    {"WWW-Authenticate": 'Bearer realm="spool"'},
                )
        return await handler(request)

    return auth_middleware
