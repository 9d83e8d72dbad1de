"""What every handler needs, stored once on the application under a typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from engine.broker import Broker
from engine.http.coalesce import EnqueueCoalescer
from engine.liveness import RedisLiveness
from engine.metrics.recorder import MetricsRecorder
from engine.results import EndWatcher


@dataclass(frozen=True, slots=True)
class HttpContext:
    """The ingress's collaborators and limits.

    `broker` talks to Redis through the fail-fast client (see `fastredis`), so a request never
    waits through the worker's long reconnect retries.
    """

    broker: Broker
    recorder: MetricsRecorder
    coalescer: EnqueueCoalescer
    max_batch: int
    max_body_bytes: int
    openapi_json: bytes
    ends: EndWatcher
    #: The local worker pool's watch on Redis, when the ingress runs beside one (for /readyz).
    liveness: RedisLiveness | None = None
    #: Who a request is in the audit trail: every request that reaches a handler showed the
    #: one bearer token when the API has one ("api-token"), else nobody is known ("http").
    caller: str = "http"

    @property
    def prefix(self) -> str:
        """The key prefix of the engine this ingress serves."""
        return self.broker.config.prefix


CTX: web.AppKey[HttpContext] = web.AppKey("spool_http_context", HttpContext)


def ctx(request: web.Request) -> HttpContext:
    """The context of the application serving `request`."""
    return request.app[CTX]
