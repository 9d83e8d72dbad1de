"""Owns the engine in-process, on its own thread and event loop, and publishes snapshots.

The console never talks to Redis on Textual's message loop: every Redis call runs here, on a
private loop in a background thread. The UI reads `EngineHost.snapshot` (a frozen
`ConsoleSnapshot`, replaced whole once a second) and sends actions with `await host.call(fn)`,
which runs `fn(broker)` on the engine loop and hands the result back. No Textual import here.

Why a thread and not Textual's loop: the local pool at 5,000 tasks/s keeps its loop busy with
per-task Python work; on a separate loop the key handler only competes for the GIL, which
Python hands over every few milliseconds. Measured (tests/test_console_responsive.py, 2 cores,
server beside it): with the pool at 5,000 tasks/s a key reaches its action in p50 ~2.5 ms,
p95 4–15 ms, max 5–53 ms over 30 presses (the high ends while other jobs loaded the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from engine.audit import AuditEntry, record_quietly
from engine.broker import Broker
from engine.connection import mask_url, open_redis
from engine.worker.pool import WorkerPool
from spool_console.engine_startup import (
    demo_forever,
    read_only_notes,
    start_http_if_asked,
    start_local_engine,
)
from spool_console.settings import Settings
from spool_console.snapshots import (
    ConsoleSnapshot,
    DrainRates,
    down_diagnoses,
    no_pool_reason,
    read_fleet,
)

log = logging.getLogger("spool.console")
#: How long the PING deciding "down or only slow" after an overrun refresh may take.
PING_TIMEOUT_S = 2.0

T = TypeVar("T")


class EngineUnavailable(RuntimeError):
    """Raised by `EngineHost.call` while there is no Redis connection."""


class EngineHost:
    """Runs Redis, the broker, the local pool, demo load and HTTP on a private loop.

    `start()` returns at once; `snapshot` is valid from then on (disconnected until Redis
    answers). `stop()` drains the pool, closes Redis and stops the embedded server.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        interval_s: float = 1.0,
        stop_grace_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        refresh_timeout_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.interval_s = interval_s
        #: A refresh taking longer is abandoned (then Redis is down only if a PING fails).
        self.refresh_timeout_s = refresh_timeout_s or max(3.0, interval_s * 3)
        self.stop_grace_s = min(settings.grace_s, stop_grace_s)
        self._clock = clock
        self._started = clock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._url = settings.redis_url
        self._server: Any = None
        self.redis: Any = None
        self.broker: Broker | None = None
        self.pool: WorkerPool | None = None
        self._side: list[asyncio.Task[Any]] = []
        self._drain_rates = DrainRates(clock)
        self._http: Any = None
        self._notes: tuple[str, ...] = ()
        self._seq = 0
        self.snapshot = ConsoleSnapshot(
            seq=0,
            taken_at_s=time.time(),
            connected=False,
            url_masked=mask_url(self._url) if self._url else "embedded (starting)",
            error=None,
            embedded=self._url is None,
            uptime_s=0.0,
            levels=settings.engine_config().levels,
        )

    # -- lifecycle (called from the UI thread) -------------------------------------------------
    def start(self) -> None:
        """Start the engine thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._thread_main, name="spool-engine", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Drain and stop everything; blocks (call it off the UI loop)."""
        loop, stop_event, thread = self._loop, self._stop_event, self._thread
        if thread is None or loop is None or stop_event is None:
            return

        def stop_now() -> None:
            stop_event.set()
            if self._wake is not None:
                self._wake.set()

        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop_now)
        thread.join(timeout_s)
        self._thread = None

    @property
    def running(self) -> bool:
        """True while the engine thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def redis_url(self) -> str | None:
        """The URL in use (the embedded server's once started); never shown unmasked."""
        return self._url

    # -- actions (awaited from the UI loop) -----------------------------------------------------
    async def call(self, fn: Callable[[Broker], Awaitable[T]], timeout_s: float = 15.0) -> T:
        """Run `fn(broker)` on the engine loop and return its result here."""
        loop = self._loop
        broker = self.broker
        if loop is None or broker is None or not self.snapshot.connected:
            raise EngineUnavailable(self.snapshot.error or "not connected to Redis")

        async def bounded() -> T:
            return await asyncio.wait_for(fn(broker), timeout_s)

        future: Future[T] = asyncio.run_coroutine_threadsafe(bounded(), loop)
        return await asyncio.wrap_future(future)

    async def call_pool(self, fn: Callable[[WorkerPool], T]) -> T:
        """Run a synchronous pool control (pin, unpin, set_bounds) on the engine loop."""
        loop, pool = self._loop, self.pool
        if loop is None or pool is None:
            raise EngineUnavailable(no_pool_reason(self.settings, False))

        async def run() -> T:
            return fn(pool)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))

    async def audit(
        self, action: str, scope: str, result: str, *, undo: str = "", held: int = 0
    ) -> None:
        """Record an operator action in the audit trail (a delete with its undo token and how
        many letters it held); a failure to record is logged, not raised (the action itself
        already happened)."""
        entry = AuditEntry.now(action, scope, result, undo=undo, held=held)
        try:
            await self.call(lambda b: record_quietly(b, entry))
        except EngineUnavailable as exc:
            log.warning("could not record %s in the audit trail: %s", action, exc)

    def refresh_soon(self) -> None:
        """Take the next snapshot now rather than at the next tick (after an action)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def run_soon(self, coro_fn: Callable[[], Awaitable[Any]]) -> Future[Any]:
        """Schedule a coroutine on the engine loop without waiting (tests, scripts)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop)  # type: ignore[arg-type]

    # -- the engine thread ----------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:  # optional (not on Windows)
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except Exception:
            log.exception("engine host crashed")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._ready.set()
        try:
            if self._url is None:
                await self._start_embedded()
            if self._url is not None:
                await self._run_connected()
        finally:
            await self._shutdown()

    async def _start_embedded(self) -> None:
        from engine.discovery import find_server

        try:
            # A console already running owns the embedded server: share it (a second console,
            # or the console after a worker started it), else start it.
            choice = await asyncio.to_thread(find_server, None)
            self._server = choice.started
            self._url = choice.url
        except Exception as exc:
            self._publish_down(f"cannot start the embedded server: {exc}")
            while not await self._sleep(3600):
                pass

    async def _run_connected(self) -> None:
        assert self._stop_event is not None and self._url is not None
        backoff = 0.25
        while not self._stop_event.is_set():
            try:
                self.redis = await open_redis(
                    self._url, max_connections=48, retries=1, connect_timeout_s=2.0
                )
                break
            except Exception as exc:
                self._publish_down(f"{type(exc).__name__}: {exc}")
                if await self._sleep(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
        if self.redis is None:
            return
        cfg = self.settings.engine_config()
        self.broker = Broker(self.redis, cfg)
        await self._start_engine()
        backoff = self.interval_s
        while not self._stop_event.is_set():
            ok = await self._refresh() or await self._adopt_embedded()
            backoff = self.interval_s if ok else min(max(backoff * 2, 1.0), 5.0)
            if await self._sleep(backoff):
                return

    async def _adopt_embedded(self) -> bool:
        """Restart the shared embedded server after its owner quit (stopping it ended it for
        every process using it); this console owns it from then on. False if nothing to do."""
        from engine.discovery import find_server

        if self.settings.redis_url is not None or self._server is not None:
            return False
        try:
            choice = await asyncio.to_thread(find_server, None)
        except Exception as exc:
            log.warning("could not restart the embedded server: %s", exc)
            return False
        if choice.started is None or choice.url != self._url:
            if choice.started is not None:  # not the server this console was using
                await asyncio.to_thread(choice.started.stop)
            return False
        self._server = choice.started
        log.info("restarted the embedded server its owner stopped")
        return await self._refresh()

    async def _start_engine(self) -> None:
        s = self.settings
        assert self.broker is not None
        if s.read_only:
            # Read-only observes: no queue registration, pool, demo load or HTTP API (it has
            # write routes). Each would write to Redis.
            self._notes = read_only_notes(s)
            return
        self.pool = await start_local_engine(s, self.broker)
        if s.demo:
            self._side.append(asyncio.create_task(demo_forever(self.broker, s, self.pool)))
        self._http = await start_http_if_asked(s, self.broker, self.pool)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on stop or `refresh_soon`; True when stopping."""
        assert self._stop_event is not None and self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()
        return self._stop_event.is_set()

    async def _refresh(self) -> bool:
        """Build and publish one snapshot; False when Redis did not answer."""
        assert self.broker is not None
        try:
            async with asyncio.timeout(self.refresh_timeout_s):
                read = await read_fleet(
                    self.broker, self.redis, self.settings.prefix, self._drain_rates
                )
        except TimeoutError:
            # A refresh that overran is not Redis down: a profiled benchmark (tracemalloc slows
            # every thread of the process) or a busy machine stretches it. Down only if a
            # PING fails too; else keep the last numbers, marked stale.
            if await self._answers_ping():
                self._publish_stale(f"refresh took over {self.refresh_timeout_s:g} s")
                return True
            self._publish_down("TimeoutError: Redis did not answer")
            return False
        except Exception as exc:
            self._publish_down(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return False
        pool_snap = self.pool.snapshot() if self.pool is not None else None
        if pool_snap is not None and not pool_snap.redis_ok:
            # The console's reads went through, but the local pool's connections are being
            # reopened after a silence: say so rather than look healthy.
            self._publish_down(pool_snap.redis_error or "Redis unreachable")
            return False
        if read["metrics"] is None and self.pool is not None:
            read["metrics"] = self.pool.recorder.snapshot()
        self._publish(connected=True, error=None, pool=pool_snap, data_at_s=time.time(), **read)
        return True

    async def _answers_ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                return bool(await self.redis.ping())
        except Exception:
            return False

    def _publish_down(self, error: str) -> None:
        prev = self.snapshot
        self._publish_previous(
            "Redis unreachable",
            connected=False,
            error=error,
            diagnoses=down_diagnoses(prev.queues, error),
        )

    def _publish_stale(self, reason: str) -> None:
        """Connected, but with the last numbers read (marked stale with `reason`)."""
        self._publish_previous(reason, connected=True, error=None)

    def _publish_previous(self, stale_reason: str, **values: Any) -> None:
        """The last numbers read again, marked stale."""
        prev = self.snapshot
        values.setdefault("diagnoses", prev.diagnoses)
        self._publish(
            workers=prev.workers,
            pool=self.pool.snapshot() if self.pool is not None else None,
            metrics=prev.metrics,
            queues=prev.queues,
            dead_count=prev.dead_count,
            schedules=prev.schedules,
            data_at_s=prev.data_at_s,
            stale_reason=stale_reason,
            **values,
        )

    def _publish(self, **values: Any) -> None:
        self._seq += 1
        url = self._url
        masked = mask_url(url) if url else "embedded (not started)"
        embedded = self.settings.redis_url is None
        if self._server is not None:
            masked = f"{masked} (embedded)"
        elif embedded and url:
            masked = f"{masked} (embedded, shared)"
        snap = ConsoleSnapshot(
            seq=self._seq,
            taken_at_s=time.time(),
            url_masked=masked,
            embedded=embedded,
            uptime_s=self._clock() - self._started,
            levels=self.settings.engine_config().levels,
            notes=self._notes,
            no_pool_reason=no_pool_reason(self.settings, self.pool is not None),
            **values,
        )
        self.snapshot = snap  # one reference swap: readers on other threads see old or new

    async def _shutdown(self) -> None:
        for task in self._side:
            task.cancel()
        await asyncio.gather(*self._side, return_exceptions=True)
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.cleanup()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await self.pool.stop(self.stop_grace_s)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._server.stop)
