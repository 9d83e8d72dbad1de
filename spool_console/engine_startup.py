"""What the console's engine starts once Redis answers: the local pool, demo load and HTTP API.

Run on the engine host's loop (`EngineHost._start_engine`); none of it under `--read-only`,
where `read_only_notes` says which of the flags given were ignored. No Textual import here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine.broker import Broker
from engine.task import default_registry
from engine.worker.pool import WorkerPool
from engine.worker.settings import with_declared_queues
from spool_console.settings import Settings

log = logging.getLogger("spool.console")


async def start_local_engine(s: Settings, broker: Broker) -> WorkerPool | None:
    """Import the task modules, register the queues and start the local pool (unless
    `--workers 0`); returns the pool."""
    if s.task_modules:
        from engine.worker.runner import import_task_modules

        import_task_modules(s.task_modules)
    try:
        await broker.register_queues(s.queues)
    except Exception as exc:
        log.warning("could not register queues yet: %s", exc)
    if s.workers == 0:
        return None
    pool_settings = s.pool_settings()
    if not s.queues_given:
        pool_settings = with_declared_queues(pool_settings, default_registry)
    pool = WorkerPool(broker, pool_settings)
    await pool.start()
    return pool


async def start_http_if_asked(s: Settings, broker: Broker, pool: WorkerPool | None) -> Any:
    """The HTTP API when `--http` was given (its runner, to clean up), else None."""
    address = s.http_address()
    if address is None:
        return None
    try:
        from engine.http.server import start_http
    except ImportError:
        log.warning("--http: engine.http is not available in this build")
        return None
    return await start_http(
        broker,
        address[0],
        address[1],
        token=s.api_token,
        pool=pool,
        request_timeout_s=s.request_timeout_s,
    )


async def demo_forever(broker: Broker, s: Settings, pool: WorkerPool | None) -> None:
    """The demo load, restarted after Redis outages."""
    from engine.demo import run_demo_load

    while True:
        try:
            await run_demo_load(
                broker, s.queues[0], recorder=pool.recorder if pool is not None else None
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("demo load paused: %s", exc)
            await asyncio.sleep(1.0)


def read_only_notes(s: Settings) -> tuple[str, ...]:
    """Under `--read-only`: which of the flags given were ignored, and why."""
    ignored = [
        flag
        for flag, asked in (
            ("--demo", s.demo),
            ("--http", s.http is not None),
            (f"--workers {s.workers}", bool(s.workers)),
        )
        if asked
    ]
    if not ignored:
        return ()
    return (f"read-only: {', '.join(ignored)} ignored (each would write to Redis)",)
