"""Build the aiohttp application: routes, middlewares, the context and owned resources."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from engine.broker import Broker
from engine.http.auth import make_auth_middleware
from engine.http.coalesce import EnqueueCoalescer
from engine.http.context import CTX, HttpContext
from engine.http.deadline import DEFAULT_REQUEST_TIMEOUT_S, make_deadline_middleware
from engine.http.errors import make_error_middleware
from engine.http.fastredis import fail_fast_client, redis_password
from engine.http.openapi import build_openapi
from engine.http.routes import ROUTES
from engine.metrics.publisher import SnapshotPublisher
from engine.metrics.recorder import MetricsRecorder
from engine.results import EndWatcher

if TYPE_CHECKING:
    from engine.worker.pool import WorkerPool

def build_app(
    broker: Broker,
    *,
    token: str | None = None,
    pool: WorkerPool | None = None,
    recorder: MetricsRecorder | None = None,
    max_body_bytes: int = 1 << 20,
    max_batch: int = 1000,
    fail_fast: bool = True,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> web.Application:
    """The ingress application for `broker`.

    Metrics go to `recorder`, else `pool.recorder`, else a recorder of the app's own that it
    publishes to Redis itself (so `enqueued` counts reach the fleet view). With `fail_fast`
    (default) requests use a client of their own with one retry and short timeouts; the app
    closes it on cleanup. A `token` makes every route but /healthz require it. Each request's
    Redis work gets `request_timeout_s` in all, then a 503 (see `engine.http.deadline`).
    """
    if max_body_bytes < 1 or max_batch < 1:
        raise ValueError("max_body_bytes and max_batch must be positive")
    if token is not None and not token.strip():
        raise ValueError("the API token is empty")
    secrets = tuple(s for s in (token, redis_password(broker.redis)) if s)
    middlewares = [make_error_middleware(secrets)]
    if token is not None:
        middlewares.append(make_auth_middleware(token))
    middlewares.append(make_deadline_middleware(request_timeout_s, max_body_bytes))
    # client_max_size makes aiohttp itself refuse longer bodies (also chunked ones) with 413.
    app = web.Application(middlewares=middlewares, client_max_size=max_body_bytes)

    fast = fail_fast_client(broker.redis) if fail_fast else None
    http_broker = (
        Broker(fast, broker.config, registry=broker.registry) if fast is not None else broker
    )
    own_recorder = recorder is None and pool is None
    if recorder is None:
        recorder = pool.recorder if pool is not None else MetricsRecorder(_ingress_id())
    coalescer = EnqueueCoalescer(http_broker, recorder, max_batch=max_batch)
    document = build_openapi(ROUTES, max_batch=max_batch, max_body_bytes=max_body_bytes)
    app[CTX] = HttpContext(
        broker=http_broker,
        recorder=recorder,
        coalescer=coalescer,
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        openapi_json=orjson.dumps(document),
        ends=EndWatcher(http_broker),
        liveness=pool.liveness if pool is not None else None,
        caller="http" if token is None else "api-token",
    )
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        publisher = None
        if own_recorder:
            publisher = SnapshotPublisher(
                http_broker.redis, broker.config.prefix, recorder.worker_id, recorder
            )
            # One publish before serving, so the fleet view lists this process at once; the
            # loop keeps it fresh. Redis being down must not stop the ingress from starting.
            with contextlib.suppress(RedisError):
                await publisher.publish_once()
            publisher.start()
        yield
        await coalescer.close()  # writes in flight finish before the client closes
        await app[CTX].ends.close()
        if publisher is not None:
            await publisher.stop()
        if fast is not None:
            await fast.aclose()

    app.cleanup_ctx.append(resources)
    return app

def _ingress_id() -> str:
    """Worker id of an ingress-only process's metrics (it is not a worker)."""
    return f"http:{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
