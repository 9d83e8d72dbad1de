"""The in-process worker pool: batched fetches, concurrent slots, batched settles."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import __version__, flow
from engine.broker import Broker
from engine.builtin_tasks import register_builtins
from engine.metrics.publisher import SnapshotPublisher
from engine.metrics.recorder import MetricsRecorder
from engine.outcomes import Outcome, failed, succeeded
from engine.task import FetchedTask, TaskContext, TaskRegistry, default_registry
from engine.worker import maintenance, registry
from engine.worker.local_queue import LocalPriorityQueue
from engine.worker.scaler import AutoScaler, ScalerInputs, ScalerSettings
from engine.worker.snapshot import PoolSnapshot, ScalerDecision, SlotState

log = logging.getLogger("spool.worker")

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How a pool runs. `concurrency` set means pinned; otherwise the auto-scaler moves it
    between `min_concurrency` and `max_concurrency`."""

    queues: tuple[str, ...] = ("default",)
    concurrency: int | None = None
    min_concurrency: int = 5
    max_concurrency: int = 30
    prefetch_ratio: float = 1.0
    fetch_batch_max: int = 256
    idle_block_s: float = 1.0
    default_timeout_s: float | None = 300.0
    thread_pool_size: int = 16
    grace_s: float = 30.0
    heartbeat_s: float = 2.0
    maintenance_s: float | None = None
    repair_every_s: float = 600.0
    scaler_tick_s: float = 1.0
    wait_p95_target_s: float = 1.0
    scale_down_after_idle_s: float = 10.0
    scale_up_cooldown_s: float = 1.0
    watchdog_tick_s: float = 0.05
    fast_task_s: float = 0.002
    fast_fetch_min: int = 64
    metrics_interval_s: float = 1.0


def make_worker_id() -> str:
    """host:pid:random — unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class WorkerPool:
    """Runs registered handlers for tasks of some queues.

    `start()` launches the loops; `stop()` drains gracefully: no more fetching, in-flight tasks
    get `grace_s` to finish, what is left goes back to pending, the process deregisters.
    """

    def __init__(
        self,
        broker: Broker,
        settings: PoolSettings | None = None,
        *,
        registry: TaskRegistry | None = None,
        recorder: MetricsRecorder | None = None,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.settings = s = settings or PoolSettings()
        self.registry = registry or default_registry
        register_builtins(self.registry)
        self.worker_id = worker_id or make_worker_id()
        self.recorder = recorder or MetricsRecorder(self.worker_id)
        self._clock = clock
        scaler_settings = ScalerSettings(
            min_concurrency=min(s.min_concurrency, s.max_concurrency),
            max_concurrency=s.max_concurrency,
            wait_p95_target_s=s.wait_p95_target_s,
            down_after_idle_s=s.scale_down_after_idle_s,
            up_cooldown_s=s.scale_up_cooldown_s,
        )
        self.scaler = AutoScaler(
            scaler_settings, initial=s.concurrency or s.min_concurrency, clock=clock
        )
        if s.concurrency is not None:
            self.scaler.pin(s.concurrency)
        self._local = LocalPriorityQueue()
        self._inflight: dict[str, FetchedTask] = {}
        self._slots: dict[int, asyncio.Task[None]] = {}
        self._slot_state: dict[int, tuple[str, str, float] | None] = {}
        self._running_count = 0
        self._capacity = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        self._settle_buf: dict[str, list[tuple[Outcome, float, float]]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._scaler_loop: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._fetch_blocking = False
        self._settle_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=s.thread_pool_size, thread_name_prefix="spool-sync"
        )
        self._stuck: set[Future[Any]] = set()
        # Redelivered tasks whose lease expired before: each runs alone (see _execute_isolated).
        self._suspects: set[str] = set()
        self._isolating = False
        self._deadlines: dict[int, float] = {}
        self._timed_out: set[int] = set()
        self._waits: deque[float] = deque(maxlen=2048)
        self._exec_ewma_s = 1.0  # assume slow until measured: no big prefetch for long tasks
        self._settling: set[str] = set()
        self._backlog = 0
        self._stopping = False
        self._started_mono = clock()
        self._started_wall = time.time()
        self.redis_ok = True
        self.redis_error: str | None = None
        self.counts = {
            "processed": 0,
            "succeeded": 0,
            "failed": 0,
            "retried": 0,
            "dead": 0,
            "late": 0,
        }
        self._stopped = asyncio.Event()
        self.publisher = SnapshotPublisher(
            broker.redis,
            broker.config.prefix,
            self.worker_id,
            self.recorder,
            interval_s=s.metrics_interval_s,
            ttl_s=max(5.0, s.metrics_interval_s * 5),
        )

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def target(self) -> int:
        """Concurrency the pool runs at now."""
        return self.scaler.concurrency

    async def start(self) -> None:
        """Register the process and start fetching."""
        await self.broker.register_queues(self.settings.queues)
        await flow.publish_limits(self.broker, self.settings.queues, self.registry)
        self._resize_slots()
        loops = [
            self._renew_loop(),
            self._heartbeat_loop(),
            self._maintenance_loop(),
            self._watchdog_loop(),
        ]
        self._loops = [asyncio.create_task(c) for c in loops]
        self._scaler_loop = asyncio.create_task(self._scale_loop())
        self._fetcher = asyncio.create_task(self._fetch_loop())
        self.publisher.start()
        self._flusher = asyncio.create_task(self._flush_loop())
        log.info("worker %s started on queues %s", self.worker_id, ", ".join(self.settings.queues))

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain gracefully: stop fetching, let running tasks finish, give back the rest."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.settings.grace_s if grace_s is None else grace_s
        # Only the auto-scaler stops now. Lease renewal, heartbeats, the reaper and the
        # watchdog keep running while in-flight tasks finish: a task longer than the lease
        # must not be reclaimed (and run twice) during the grace period.
        if self._scaler_loop is not None:
            self._scaler_loop.cancel()
            await asyncio.gather(self._scaler_loop, return_exceptions=True)
        await self._stop_fetcher()
        # Not yet started: give back at once, so another worker can take them now.
        waiting: list[FetchedTask] = []
        while not self._local.empty():
            waiting.append(self._local.get_nowait())
        await self._release(waiting)
        slots = list(self._slots.values())
        if slots:
            for slot in slots:
                if self._slot_state.get(self._slot_index(slot)) is None:
                    slot.cancel()  # idle: waiting on the local queue
            _, still = await asyncio.wait(slots, timeout=grace)
            for slot in still:
                slot.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
        await self._drain_settles()
        if self._flusher is not None:
            # Safe now: _drain_settles took the lock, so no flush is in progress, and no
            # outcome is left in the buffer.
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        leftovers = list(self._inflight.values())
        await self._release(leftovers)
        await self.publisher.stop()
        with contextlib.suppress(*_REDIS_DOWN, RedisError):
            await self.publisher.publish_once()  # the final counts, kept until the key's TTL
            await registry.deregister(self.broker.redis, self.broker.globals, self.worker_id)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()
        log.info(
            "worker %s stopped: %d processed, %d released to pending",
            self.worker_id,
            self.counts["processed"],
            len(waiting) + len(leftovers),
        )

    async def _stop_fetcher(self) -> None:
        """Stop the fetcher without losing a fetch whose reply is in flight.

        Cancelling mid-fetch could strand leased tasks until their lease expires (and count
        that as a crash), so only a fetcher blocked on the wake key is cancelled outright.
        """
        fetcher = self._fetcher
        if fetcher is None:
            return
        self._capacity.set()
        if self._fetch_blocking:
            fetcher.cancel()
        done, _ = await asyncio.wait([fetcher], timeout=self.settings.idle_block_s + 5)
        if not done:
            fetcher.cancel()
        await asyncio.gather(fetcher, return_exceptions=True)

    def _slot_index(self, slot: asyncio.Task[None]) -> int:
        for index, task in self._slots.items():
            if task is slot:
                return index
        return -1

    async def _release(self, tasks: list[FetchedTask]) -> None:
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for t in tasks:
            by_queue.setdefault(t.queue, []).append((t.id, t.token))
            self._inflight.pop(t.id, None)
        for queue, leases in by_queue.items():
            try:
                await self.broker.release(queue, leases)
            except (*_REDIS_DOWN, RedisError) as exc:
                # The leases will expire and the reaper brings the tasks back.
                log.warning("could not release %d task(s) of %s: %s", len(leases), queue, exc)

    # -- operator controls -----------------------------------------------------------------------
    def pin(self, concurrency: int) -> ScalerDecision:
        """Fix the concurrency (no automatic change until `unpin`)."""
        decision = self.scaler.pin(concurrency)
        self._resize_slots()
        return decision

    def unpin(self) -> ScalerDecision:
        """Return to automatic scaling."""
        decision = self.scaler.unpin()
        self._resize_slots()
        return decision

    def set_bounds(self, min_concurrency: int, max_concurrency: int) -> ScalerDecision | None:
        """Change the auto-scaler's bounds."""
        decision = self.scaler.set_bounds(min_concurrency, max_concurrency)
        self._resize_slots()
        return decision

    # -- slots ------------------------------------------------------------------------------------
    def _resize_slots(self) -> None:
        if self._stopping:
            return
        for index in range(self.target):
            slot = self._slots.get(index)
            if slot is None or slot.done():
                self._slot_state[index] = None
                self._slots[index] = asyncio.create_task(self._slot_loop(index))
        self._capacity.set()

    async def _slot_loop(self, index: int) -> None:
        try:
            while index < self.target and not self._stopping:
                try:
                    t = await self._local.get()
                except asyncio.CancelledError:
                    # A watchdog cancel that landed just after its handler returned.
                    if index in self._timed_out and not self._stopping:
                        self._timed_out.discard(index)
                        current = asyncio.current_task()
                        if current is not None:
                            current.uncancel()
                        continue
                    raise
                self._running_count += 1
                self._slot_state[index] = (t.name, t.id, self._clock())
                try:
                    if t.id in self._suspects:
                        await self._execute_isolated(t, index)
                    else:
                        await self._execute(t, index)
                finally:
                    self._running_count -= 1
                    self._slot_state[index] = None
                    self._capacity.set()
        finally:
            self._slot_state.pop(index, None)
            if self._slots.get(index) is asyncio.current_task():
                del self._slots[index]

    async def _execute_isolated(self, t: FetchedTask, index: int) -> None:
        """Run a task whose lease expired before (its worker may have died running it) alone.

        If it kills the process again, only its own lease expires: the tasks this process had
        prefetched are given back first and finished outcomes are settled, so the reaper does
        not charge innocent tasks with a crash (and quarantine them as `crash_loop`).
        """
        self._suspects.discard(t.id)
        if self._isolating:
            # Another suspect runs alone right now: this one waits its turn in Redis.
            await self._release([t])
            return
        self._isolating = True
        try:
            waiting: list[FetchedTask] = []
            while not self._local.empty():
                waiting.append(self._local.get_nowait())
            for w in waiting:
                self._suspects.discard(w.id)
            await self._release(waiting)
            while self._running_count > 1:  # rare path: poll until the other slots are done
                await asyncio.sleep(0.005)
            await self._drain_settles()
            await self._execute(t, index)
            await self._drain_settles()
        finally:
            self._isolating = False
            self._capacity.set()

    async def _mark_suspects(self, queue: str, tasks: list[FetchedTask]) -> None:
        """Note which redelivered tasks had a lease expire before (possible process killers)."""
        again = [t for t in tasks if t.attempt > 1]
        if not again:
            return
        try:
            crashes = await self.broker.redis.hmget(
                self.broker.keys(queue).crash, [t.id for t in again]
            )
        except Exception:
            # Unknown: be careful with all of them rather than lose track of a leased batch.
            crashes = [1] * len(again)
        for t, c in zip(again, crashes, strict=True):
            if c is not None and int(c) > 0:
                self._suspects.add(t.id)

    async def _execute(self, t: FetchedTask, index: int) -> None:
        started = time.time()
        outcome: Outcome
        if t.decode_error is not None:
            outcome = failed(
                t,
                None,
                self.broker.config,
                exc_type="UndecodablePayload",
                message=t.decode_error,
                reason="undecodable",
                retryable=False,
                worker=self.worker_id,
            )
        else:
            definition = self.registry.get(t.name)
            if definition is None:
                outcome = failed(
                    t,
                    None,
                    self.broker.config,
                    exc_type="UnknownTask",
                    message=f"no handler registered for task {t.name!r}",
                    reason="unknown_task",
                    retryable=False,
                    worker=self.worker_id,
                )
            else:
                timeout = t.timeout_s or definition.timeout_s or self.settings.default_timeout_s
                kwargs = t.kwargs
                if definition.wants_context:
                    kwargs = {
                        **kwargs,
                        "ctx": TaskContext(t.id, t.queue, t.name, t.attempt, t.max_retries),
                    }
                try:
                    if definition.is_async:
                        value = await self._run_async(definition.fn, t.args, kwargs, timeout, index)
                    else:
                        value = await self._run_sync(definition.fn, t.args, kwargs, timeout)
                    outcome = succeeded(t, value, int(started * 1000), int(time.time() * 1000))
                except _HandlerTimeout as exc:
                    outcome = failed(
                        t,
                        None,
                        self.broker.config,
                        exc_type="TimeoutError",
                        message=str(exc),
                        reason="timeout",
                        worker=self.worker_id,
                    )
                except asyncio.CancelledError:
                    raise  # shutdown past the grace period: the task is released, not failed
                except Exception as exc:
                    outcome = failed(t, exc, self.broker.config, worker=self.worker_id)
        buf = self._settle_buf.get(t.queue)
        if buf is None:
            buf = self._settle_buf[t.queue] = []
        buf.append((outcome, started, time.time()))
        self._flush_wanted.set()

    async def _run_async(
        self,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        index: int,
    ) -> Any:
        if not timeout:
            return await fn(*args, **kwargs)
        # The watchdog enforces the deadline: cheaper per task than a timer handle each.
        self._deadlines[index] = self._clock() + timeout
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError:
            if index in self._timed_out:
                self._timed_out.discard(index)
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                raise _HandlerTimeout(f"timed out after {timeout:g} s") from None
            raise
        finally:
            self._deadlines.pop(index, None)

    async def _watchdog_loop(self) -> None:
        while True:  # timeouts still apply during the drain; stop() cancels this
            now = self._clock()
            for index, deadline in list(self._deadlines.items()):
                if now >= deadline and index not in self._timed_out:
                    slot = self._slots.get(index)
                    if slot is not None:
                        self._timed_out.add(index)
                        slot.cancel()
            await asyncio.sleep(self.settings.watchdog_tick_s)

    async def _run_sync(
        self, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout: float | None
    ) -> Any:
        future = self._executor.submit(functools.partial(fn, *args, **kwargs))
        wrapped = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(asyncio.shield(wrapped), timeout)
        except TimeoutError:
            if future.done():
                return future.result()
            # A thread cannot be killed: count it until it returns on its own.
            self._stuck.add(future)
            future.add_done_callback(self._stuck.discard)
            raise _HandlerTimeout(
                f"timed out after {timeout:g} s (sync handler; its thread is still running)"
            ) from None

    # -- fetching ---------------------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        s = self.settings
        queues = list(s.queues)
        rotation = 0
        backoff = 0.05
        while not self._stopping:
            hold = int(self.target * (1 + s.prefetch_ratio))
            if self._exec_ewma_s < s.fast_task_s:
                # Short tasks: a batch sized by concurrency alone (8 at 4 slots) makes the round
                # trip the bottleneck; holding a few dozen leased tasks costs nothing here.
                hold = max(hold, s.fast_fetch_min)
            room = 0 if self._isolating else hold - self._running_count - self._local.qsize()
            if room <= 0:
                self._capacity.clear()
                self._fetch_blocking = True
                try:
                    await self._capacity.wait()
                finally:
                    self._fetch_blocking = False
                continue
            try:
                got, next_due_ms, now_ms = 0, None, 0
                for i in range(len(queues)):
                    queue = queues[(rotation + i) % len(queues)]
                    res = await self.broker.fetch(
                        queue, min(room - got, s.fetch_batch_max), self.worker_id
                    )
                    now_ms = res.now_ms
                    if res.next_due_ms is not None:
                        next_due_ms = (
                            res.next_due_ms
                            if next_due_ms is None
                            else min(next_due_ms, res.next_due_ms)
                        )
                    if res.tasks:
                        await self._mark_suspects(queue, res.tasks)
                    for t in res.tasks:
                        self._inflight[t.id] = t
                        self._waits.append(t.fetched_at_ms - (t.ready_at_ms or t.enqueued_at_ms))
                        self._local.put_nowait(t, self._rank(t))
                    if res.tasks:
                        got += len(res.tasks)
                        self.recorder.count("started", len(res.tasks), queue=queue)
                    if got >= room:
                        break
                rotation += 1
                self._mark_redis(ok=True)
                backoff = 0.05
                if got == 0:
                    block = s.idle_block_s
                    if next_due_ms is not None:
                        block = min(block, max(0.001, (next_due_ms - now_ms) / 1000))
                    self._fetch_blocking = True
                    try:
                        await self.broker.wait_for_work(queues, block)
                    finally:
                        self._fetch_blocking = False
            except _REDIS_DOWN as exc:
                self._mark_redis(ok=False, error=exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                # A server error (OOM, a script error) must not end the fetcher for good: the
                # pool would look alive and never fetch again.
                log.exception("fetch failed; retrying in %.2f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _rank(self, t: FetchedTask) -> int:
        """0 for the queue's highest level, 1 for the next, …"""
        levels = self.broker.keys(t.queue).levels
        return levels.index(t.level) if t.level in levels else len(levels) // 2

    def _mark_redis(self, ok: bool, error: BaseException | None = None) -> None:
        if ok:
            if not self.redis_ok:
                log.info("Redis reachable again")
            self.redis_ok, self.redis_error = True, None
            return
        if self.redis_ok:
            log.warning("Redis unreachable (%s); retrying with backoff", type(error).__name__)
        self.redis_ok = False
        self.redis_error = f"{type(error).__name__}: {error}"

    # -- settling ---------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            await self._flush_once()

    async def _flush_once(self) -> None:
        async with self._settle_lock:
            for queue in list(self._settle_buf):
                items = self._settle_buf.get(queue)
                if not items:
                    continue
                self._settle_buf[queue] = []
                await self._settle(queue, items)

    async def _drain_settles(self) -> None:
        # The flusher may have taken a batch out of the buffer and be settling it: the buffer
        # looks empty then, so wait for the lock (the flush in progress) before deciding.
        while True:
            async with self._settle_lock:
                if not any(self._settle_buf.values()):
                    return
            await self._flush_once()

    async def _settle(self, queue: str, items: list[tuple[Outcome, float, float]]) -> None:
        outcomes = [o for o, _, _ in items]
        self._settling.update(o.task.id for o in outcomes)
        backoff = 0.05
        while True:
            try:
                flags = await self.broker.settle(queue, outcomes)
                self._mark_redis(ok=True)
                break
            except _REDIS_DOWN as exc:
                # Outcomes are kept, not dropped: if Redis stays away the leases expire and the
                # tasks run again (at least once), which is what the lease is for.
                self._mark_redis(ok=False, error=exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except RedisError as exc:
                # A server-side refusal (OOM under noeviction, BUSY): keep the outcomes and try
                # again; letting it escape would end the flusher and strand every later result.
                log.warning("settling %d outcome(s) of %s failed: %s", len(outcomes), queue, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        written = time.time()
        rec = self.recorder
        counts = self.counts
        ewma = self._exec_ewma_s
        for (outcome, started, finished), ok in zip(items, flags, strict=True):
            t = outcome.task
            self._inflight.pop(t.id, None)
            ewma += 0.05 * ((finished - started) - ewma)
            if not ok:
                counts["late"] += 1
                continue
            counts["processed"] += 1
            kind = outcome.kind
            if kind == "s":
                counts["succeeded"] += 1
            else:
                counts["failed"] += 1
                counts["retried" if kind == "r" else "dead"] += 1
            rec.record_task(
                queue,
                t.level,
                t.name,
                t.enqueued_at_ms / 1000,
                t.fetched_at_ms / 1000,
                started,
                finished,
                written,
                None if t.received_at_ms is None else t.received_at_ms / 1000,
                kind == "s",
                None if t.ready_at_ms is None else t.ready_at_ms / 1000,
            )
        self._exec_ewma_s = ewma
        self._settling.difference_update(o.task.id for o in outcomes)
        # Fold a little after every batch rather than a second's worth at once: a one-second
        # fold at 5,000 tasks/s stalled the event loop ~14 ms and showed up in p99.
        rec.flush()
        rejected = flags.count(False)
        if rejected:
            rec.count("late_rejected", rejected, queue=queue)
        retried = sum(1 for o in outcomes if o.kind == "r")
        dead = sum(1 for o in outcomes if o.kind == "d")
        if retried:
            rec.count("retried", retried, queue=queue)
        if dead:
            rec.count("dead", dead, queue=queue)

    # -- periodic duties ---------------------------------------------------------------------------
    async def _every(self, interval_s: float, fn: Callable[[], Any], what: str) -> None:
        while True:  # cancelled by stop() once the drain is over
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except _REDIS_DOWN as exc:
                self._mark_redis(ok=False, error=exc)
            except Exception:
                log.exception("%s failed; will try again", what)
            await asyncio.sleep(interval_s)

    async def _renew_loop(self) -> None:
        await self._every(self.broker.config.lease_s / 3, self._renew_once, "lease renewal")

    async def _renew_once(self) -> None:
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for t in list(self._inflight.values()):
            by_queue.setdefault(t.queue, []).append((t.id, t.token))
        for queue, leases in by_queue.items():
            flags = await self.broker.extend(queue, leases)
            # A task settled while the renewal was in flight is not a lost lease.
            lost = sum(
                1
                for (tid, _), ok in zip(leases, flags, strict=True)
                if not ok and tid in self._inflight and tid not in self._settling
            )
            if lost:
                log.warning("%d lease(s) of %s were lost (expired or reclaimed)", lost, queue)

    async def _scale_loop(self) -> None:
        await self._every(self.settings.scaler_tick_s, self._scale_once, "auto-scaling")

    def wait_p95_s(self) -> float | None:
        """Queue-wait p95 of recently fetched tasks (seconds), or None before any."""
        if not self._waits:
            return None
        waits = sorted(self._waits)
        return waits[int(0.95 * (len(waits) - 1))] / 1000

    async def _scale_once(self) -> None:
        backlog = 0
        for queue in self.settings.queues:
            keys = self.broker.keys(queue)
            async with self.broker.redis.pipeline(transaction=False) as pipe:
                for key in keys.pending_keys:
                    pipe.llen(key)
                depths = await pipe.execute()
            for level, depth in zip(keys.levels, depths, strict=True):
                self.recorder.set_depth(queue, level, int(depth))
                backlog += int(depth)
        self._backlog = backlog
        busy = self._running_count / max(1, self.target)
        decision = self.scaler.tick(ScalerInputs(backlog, self.wait_p95_s(), busy))
        self._waits.clear()  # the next tick judges the next second's waits
        if decision is not None:
            log.info("auto-scaler %d -> %d: %s", decision.old, decision.new, decision.reason)
            self._resize_slots()

    async def _heartbeat_loop(self) -> None:
        await self._every(self.settings.heartbeat_s, self._heartbeat_once, "heartbeat")

    def record(self) -> registry.WorkerRecord:
        """This process's fleet record."""
        host, pid = socket.gethostname(), os.getpid()
        sc = self.scaler.settings
        return registry.WorkerRecord(
            id=self.worker_id,
            host=host,
            pid=pid,
            queues=tuple(self.settings.queues),
            concurrency=self.target,
            in_flight=self._running_count + self._local.qsize(),
            processed=self.counts["processed"],
            failed=self.counts["failed"],
            started_at_s=self._started_wall,
            last_seen_s=time.time(),
            version=__version__,
            min_concurrency=sc.min_concurrency,
            max_concurrency=sc.max_concurrency,
            pinned=self.scaler.pinned,
        )

    async def _heartbeat_once(self) -> None:
        await registry.heartbeat(self.broker.redis, self.broker.globals, self.record())

    async def _maintenance_loop(self) -> None:
        cfg = self.broker.config
        interval = self.settings.maintenance_s or min(1.0, cfg.lease_s / 2)
        lock_ms = max(1, int(interval * 1000 * 0.9))
        last_repair = self._clock()

        async def once() -> None:
            nonlocal last_repair
            for queue in self.settings.queues:
                await maintenance.reap_if_leader(self.broker, queue, lock_ms)
            if self._clock() - last_repair >= self.settings.repair_every_s:
                last_repair = self._clock()
                for queue in self.settings.queues:
                    await maintenance.repair_if_leader(
                        self.broker, queue, int(self.settings.repair_every_s * 900)
                    )

        await self._every(interval, once, "reaper")

    # -- snapshot ---------------------------------------------------------------------------------
    def snapshot(self) -> PoolSnapshot:
        """The pool's state now, as plain values."""
        now = self._clock()
        slots = []
        for index in range(self.target):
            state = self._slot_state.get(index)
            if state is None:
                slots.append(SlotState(index, None, None, 0.0))
            else:
                slots.append(SlotState(index, state[0], state[1], now - state[2]))
        sc = self.scaler.settings
        c = self.counts
        return PoolSnapshot(
            worker_id=self.worker_id,
            queues=tuple(self.settings.queues),
            concurrency=self.target,
            min_concurrency=sc.min_concurrency,
            max_concurrency=sc.max_concurrency,
            pinned=self.scaler.pinned,
            in_flight=self._running_count,
            prefetched=self._local.qsize(),
            processed=c["processed"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            retried=c["retried"],
            dead=c["dead"],
            late_rejected=c["late"],
            stuck_threads=len(self._stuck),
            slots=tuple(slots),
            decisions=tuple(self.scaler.decisions),
            uptime_s=now - self._started_mono,
            running=not self._stopping,
            redis_ok=self.redis_ok,
            redis_error=self.redis_error,
        )

    @property
    def backlog(self) -> int:
        """Pending tasks across this pool's queues at the last sample."""
        return self._backlog


class _HandlerTimeout(Exception):
    """The pool's own per-task timeout fired (distinct from a handler's TimeoutError)."""
