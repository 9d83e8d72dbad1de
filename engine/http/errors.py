"""JSON errors: `ApiError`, and the middleware that turns every failure into `{"error": ...}`.

Clients only ever see a code and a one-line message. Tracebacks are logged server-side with
the API token and the Redis password scrubbed out.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.connection import RedisUnavailable
from engine.http.contract import ErrorDetail, ErrorReply, Reply, encode

log = logging.getLogger("spool.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds a client should wait before retrying while Redis is down.
RETRY_AFTER_S = 1

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_arguments",
    503: "redis_unavailable",
}


class ApiError(Exception):
    """An error a handler reports to the client as it is (status, code, message)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def reply(
    body: Reply, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response declared in `engine.http.contract`, encoded by msgspec."""
    return web.Response(
        body=encode(body), status=status, headers=headers, content_type="application/json"
    )


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The one error shape: `{"error": {"code", "message"}}`."""
    return reply(ErrorReply(error=ErrorDetail(code=code, message=message)), status, headers)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (of 3+ characters; shorter would mangle ordinary words) masked."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def unavailable(detail: str = "Redis is unavailable") -> ApiError:
    """The 503 every Redis outage maps to, with its Retry-After."""
    return ApiError(
        503, "redis_unavailable", f"{detail}; retry later", {"Retry-After": str(RETRY_AFTER_S)}
    )


def make_error_middleware(secrets: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The outermost middleware. `secrets` are scrubbed from anything it logs."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects are not errors
            # aiohttp's own 404/405/413: keep the status and headers (Allow), reshape the body.
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            text = exc.text or ""
            message = text if text and not text.startswith(str(exc.status)) else exc.reason
            return error_response(exc.status, _CODES.get(exc.status, "error"), message, headers)
        except (RedisConnectionError, RedisTimeoutError, RedisUnavailable) as exc:
            # Fail fast: nothing is held in memory; the client retries after Retry-After.
            log.warning(
                "Redis unavailable on %s %s: %s",
                request.method,
                request.path,
                redact(f"{type(exc).__name__}: {exc}", secrets),
            )
            err = unavailable()
            return error_response(err.status, err.code, err.message, err.headers)
        except asyncio.CancelledError:
            raise  # the client went away; aiohttp handles it
        except Exception:
            log.error(
                "unhandled error on %s %s\n%s",
                request.method,
                request.path,
                redact(traceback.format_exc(), secrets),
            )
            return error_response(500, "internal", "internal server error (logged on the server)")

    return error_middleware
