"""Headless worker process (`spool-console --no-ui`): connect, run the pool, drain on signals."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import RedisUnavailable, mask_url, wait_for_redis
from engine.server_check import check_server
from engine.task import default_registry
from engine.worker.pool import PoolSettings, WorkerPool
from engine.worker.settings import with_declared_queues

log = logging.getLogger("spool.runner")

#: Seconds past the grace period a shutdown may take (closing HTTP, settling, releasing) before
#: it is cut short; a second margin later a timer thread exits whatever the event loop is doing.
SHUTDOWN_MARGIN_S = 6.0


#: The CLI's documented exit code for "Redis could not be reached" (spool_console.cli_output).
EXIT_REDIS_UNAVAILABLE = 3


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """Everything a headless run needs, already resolved from flags and environment."""

    redis_url: str | None
    config: EngineConfig = field(default_factory=EngineConfig)
    pool: PoolSettings = field(default_factory=PoolSettings)
    task_modules: tuple[str, ...] = ()
    status_interval_s: float = 5.0
    connect_deadline_s: float = 30.0
    http_host: str | None = None
    http_port: int | None = None
    api_token: str | None = None
    request_timeout_s: float = 2.0
    demo: bool = False
    metrics_port: int | None = None
    # No --queue given: also work on the queues the imported tasks declare.
    declared_queues: bool = False


def import_task_modules(modules: tuple[str, ...]) -> None:
    """Import the modules that declare `@task` handlers; a failure names the module."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `--tasks myapp.tasks` from the project directory
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise SystemExit(f"spool: cannot import task module {name!r}: {exc}") from exc


def status_line(pool: WorkerPool, per_s: float) -> str:
    """The one-line status printed every few seconds."""
    snap = pool.recorder.snapshot()
    e2e = snap.stage("end_to_end", 10)
    by_key = {(d.queue, d.level): d.depth for d in snap.depths}
    depth = " · ".join(
        f"{queue} "
        + " ".join(
            f"{level} {by_key.get((queue, level), 0)}" for level in pool.broker.keys(queue).levels
        )
        for queue in pool.settings.queues
    )
    p = pool.snapshot()
    redis = "" if p.redis_ok else f" · REDIS DOWN ({p.redis_error})"
    if p.stuck_threads:
        redis += f" · {p.stuck_threads} stuck thread(s) past their timeout"
    latency = f"p50 {e2e.p50_ms:.1f} ms p99 {e2e.p99_ms:.1f} ms" if e2e.count else "p50 - p99 -"
    return (
        f"spool: {per_s:,.0f}/s · in flight {p.in_flight}/{p.concurrency} · {latency} · "
        f"done {p.succeeded:,} failed {p.failed:,} dead {p.dead:,} · depth {depth or '-'}{redis}"
    )


async def _status_loop(pool: WorkerPool, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    last_n, last_t = pool.counts["processed"], loop.time()
    while True:
        await asyncio.sleep(interval_s)
        now, n = loop.time(), pool.counts["processed"]
        print(
            status_line(pool, (n - last_n) / max(1e-9, now - last_t)), file=sys.stderr, flush=True
        )
        last_n, last_t = n, now


def install_signal_handlers(on_first: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: graceful drain. Second: exit at once (leases bring tasks back)."""
    loop = asyncio.get_running_loop()
    seen = {"n": 0}

    def handle(signame: str) -> None:
        seen["n"] += 1
        if seen["n"] == 1:
            log.info("%s received: draining (send it again to exit at once)", signame)
            on_first()
        else:
            log.warning(
                "%s received again: exiting now; leases will return unfinished tasks", signame
            )
            os._exit(130)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig.name)


async def run_headless(
    opts: RunnerOptions, extra: Callable[[WorkerPool], Awaitable[Any]] | None = None
) -> int:
    """Run the worker pool until a signal arrives; return the process exit code."""
    import_task_modules(opts.task_modules)
    from engine.discovery import find_server

    choice = await asyncio.to_thread(find_server, opts.redis_url)
    server, url = choice.started, choice.url
    try:
        try:
            redis = await wait_for_redis(url, deadline_s=opts.connect_deadline_s)
        except RedisUnavailable as exc:
            print(f"spool: {exc}", file=sys.stderr)
            return EXIT_REDIS_UNAVAILABLE
        await check_server(redis, url)
        broker = Broker(redis, opts.config)
        pool_settings = opts.pool
        if opts.declared_queues:
            pool_settings = with_declared_queues(pool_settings, default_registry)
        pool = WorkerPool(broker, pool_settings)
        stop = asyncio.Event()
        install_signal_handlers(stop.set)
        await pool.start()
        log.info("worker %s connected to %s", pool.worker_id, mask_url(url))
        side: list[asyncio.Task[Any]] = [
            asyncio.create_task(_status_loop(pool, opts.status_interval_s))
        ]
        http_runner = metrics_runner = None
        try:
            if opts.http_port is not None:
                from engine.http.server import start_http

                http_runner = await start_http(
                    broker,
                    opts.http_host or "127.0.0.1",
                    opts.http_port,
                    token=opts.api_token,
                    pool=pool,
                    request_timeout_s=opts.request_timeout_s,
                )
            if opts.metrics_port is not None:
                from engine.metrics.exporter import start_metrics_server

                metrics_runner = await start_metrics_server(
                    broker, pool.recorder, opts.metrics_port
                )
                log.info("Prometheus metrics on http://127.0.0.1:%d/metrics", opts.metrics_port)
        except (OSError, ValueError) as exc:
            # The pool runs already: stop it, or the process would live on without its port.
            print(f"spool: cannot serve HTTP: {exc}", file=sys.stderr)
            await _shut_down(side, (http_runner,), pool, redis, grace_s=0.0)
            return 1
        if opts.demo:
            from engine.demo import run_demo_load

            side.append(
                asyncio.create_task(
                    run_demo_load(broker, pool_settings.queues[0], recorder=pool.recorder)
                )
            )
        if extra is not None:
            side.append(asyncio.create_task(extra(pool)))
        await stop.wait()
        return await _shut_down(side, (http_runner, metrics_runner), pool, redis)
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


async def _shut_down(
    side: list[asyncio.Task[Any]],
    runners: tuple[Any, ...],
    pool: WorkerPool,
    redis: Any,
    grace_s: float | None = None,
) -> int:
    """Stop everything within grace + `SHUTDOWN_MARGIN_S`; the exit code (1 when cut short)."""
    budget_s = (pool.settings.grace_s if grace_s is None else grace_s) + SHUTDOWN_MARGIN_S
    # Past the budget and one more margin, exit even if the event loop itself is stuck.
    hard_stop = threading.Timer(budget_s + SHUTDOWN_MARGIN_S, _exit_now, (budget_s,))
    hard_stop.daemon = True
    hard_stop.start()
    try:
        async with asyncio.timeout(budget_s):
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            for runner in runners:
                if runner is not None:
                    await runner.cleanup()
            await pool.stop(grace_s)
            await redis.aclose()
    except TimeoutError:
        log.error("shutdown took over %.0f s; exiting (leases return unfinished tasks)", budget_s)
        return 1
    finally:
        hard_stop.cancel()
    return 0


def _exit_now(budget_s: float) -> None:
    print(f"spool: shutdown stuck past {budget_s:.0f} s; exiting", file=sys.stderr, flush=True)
    os._exit(1)
