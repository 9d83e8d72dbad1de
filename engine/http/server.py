"""Start and stop the ingress: `start_http` binds a site, refusing unsafe addresses."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from engine.broker import Broker
from engine.http.app import build_app
from engine.http.deadline import DEFAULT_REQUEST_TIMEOUT_S
from engine.metrics.recorder import MetricsRecorder

if TYPE_CHECKING:
    from engine.worker.pool import WorkerPool

__all__ = ["build_app", "is_loopback", "start_http"]

log = logging.getLogger("spool.http")


def is_loopback(host: str) -> bool:
    """Whether `host` only ever reaches this machine ("localhost", 127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "": might resolve to anything, so it counts as public


async def start_http(
    broker: Broker,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    token: str | None = None,
    pool: WorkerPool | None = None,
    recorder: MetricsRecorder | None = None,
    max_body_bytes: int = 1 << 20,
    max_batch: int = 1000,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> web.AppRunner:
    """Serve the HTTP API on host:port; the caller awaits `runner.cleanup()` to stop it.

    Raises `ValueError` for a non-loopback address without a token: the API can enqueue and
    delete tasks, so it is never exposed unauthenticated.
    """
    if not token and not is_loopback(host):
        raise ValueError(
            f"refusing to serve the HTTP API on {host!r} without a token: set SPOOL_API_TOKEN or "
            "--api-token-file, or bind a loopback address such as 127.0.0.1"
        )
    app = build_app(
        broker,
        token=token or None,
        pool=pool,
        recorder=recorder,
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
        request_timeout_s=request_timeout_s,
    )
    # No access log: it costs ~10% of single-request throughput, and request lines are not
    # needed to operate a queue (errors are logged by the error middleware).
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info(
        "HTTP API on http://%s:%s%s",
        host if ":" not in host else f"[{host}]",
        port,
        " (bearer token required)" if token else "",
    )
    return runner
