"""One deadline for each request's Redis work, answered with 503 + Retry-After when it passes
(and the same 503, saying so, when Redis is full).

A hung server (SIGSTOPped, swapping, blocked by a long script) accepts connections and never
answers: without an overall deadline a request waited through socket timeouts, retries and the
pool's wait in turn (10 to 20 s). The deadline covers everything after the body is read (a slow
upload is not Redis' fault). An expired request is not retried: a timed-out enqueue may still
land, so producers retry with the same `id`, which makes the retry a no-op if it did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.errors import RedisFull
from engine.http.errors import unavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds a request's Redis work may take (`--request-timeout`, `SPOOL_REQUEST_TIMEOUT_S`).
DEFAULT_REQUEST_TIMEOUT_S = 2.0


def make_deadline_middleware(
    timeout_s: float, max_body_bytes: int
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware giving each request `timeout_s` once its body (if any) is in."""
    if timeout_s <= 0:
        raise ValueError("the request timeout must be positive")

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if request.body_exists and (length is None or length <= max_body_bytes):
            # Cached by aiohttp: the handler's own read() returns it. An oversized body is left
            # for the handler, which refuses it with a 413 naming the limit.
            await request.read()
        timer = asyncio.timeout(timeout_s + _waiting_s(request))
        try:
            async with timer:
                return await handler(request)
        except RedisFull as exc:
            # Not an outage but the same advice: nothing was stored, try again a little later.
            raise unavailable(str(exc).partition("; retry")[0]) from None
        except TimeoutError:
            if not timer.expired():
                raise  # a timeout of the handler's own, not the request's deadline
            raise unavailable(
                f"Redis did not answer within {timeout_s:g} s (the request may still have "
                "been applied; retrying an enqueue with the same id is safe)"
            ) from None

    return deadline


def _waiting_s(request: web.Request) -> float:
    """Seconds the caller asked to wait for a result (`?wait=`, validated by the handler):
    waiting is not Redis work, so it extends the deadline."""
    raw = request.query.get("wait") if request.method == "GET" else None
    if not raw:
        return 0.0
    try:
        return min(max(float(raw), 0.0), 60.0)
    except ValueError:
        return 0.0
