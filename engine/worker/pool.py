"""The in-process worker pool: a façade wiring fetcher, slots, handler runner, settler, leases
and periodic duties (see docs/architecture.md, "The worker runtime")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from engine import __version__, flow
from engine.broker import Broker
from engine.builtin_tasks import register_builtins
from engine.clock import ServerClock
from engine.liveness import RedisLiveness
from engine.metrics.publisher import SnapshotPublisher
from engine.metrics.recorder import MetricsRecorder
from engine.task import TaskRegistry, default_registry
from engine.worker import registry
from engine.worker.cancels import CancelListener
from engine.worker.duties import PeriodicDuties
from engine.worker.fetcher import Fetcher
from engine.worker.handler import HandlerRunner
from engine.worker.health import REDIS_DOWN, RedisHealth
from engine.worker.leases import Leases
from engine.worker.local_queue import LocalPriorityQueue
from engine.worker.maintenance import MaintenanceDuty
from engine.worker.routing import Routing
from engine.worker.scaling import ScalingDuty, make_scaler
from engine.worker.schedules import ScheduleDuty
from engine.worker.settings import PoolSettings, make_worker_id
from engine.worker.settler import Settler
from engine.worker.slots import Slots
from engine.worker.snapshot import PoolSnapshot, ScalerDecision

__all__ = ["PoolSettings", "WorkerPool", "make_worker_id"]

log = logging.getLogger("spool.worker")

# Time the drain gives outcome writes even with no grace left, and how long past the grace
# period a drain may take in all (Redis steps that hang are abandoned by then).
_SETTLE_FLOOR_S = 2.0
# How often the offset to the server's clock is measured again (clocks drift slowly).
_CLOCK_SYNC_S = 30.0
_DRAIN_EXTRA_S = 5.0


class WorkerPool:
    """Runs registered handlers for tasks of some queues.

    `start()` launches the loops; `stop()` drains gracefully: no more fetching, in-flight tasks
    get `grace_s` to finish, what is left goes back to pending, the process deregisters.
    Other parts may register their own periodic work with `pool.duties.add(...)` before or
    after `start()`.
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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.settings = s = settings or PoolSettings()
        self.registry = registry or default_registry
        register_builtins(self.registry)
        self.worker_id = worker_id or make_worker_id()
        self.recorder = recorder or MetricsRecorder(self.worker_id)
        self._clock = clock
        self.scaler = make_scaler(s, clock)
        self.health = RedisHealth()
        # One time base for stage timings: local stamps are moved onto the server's clock.
        self.server_clock = ServerClock(broker.redis, wall=wall_clock)
        self.liveness = RedisLiveness(broker.redis, on_change=self._on_liveness)
        self.leases = Leases(broker)
        self.settler = Settler(
            broker,
            self.leases,
            self.health,
            self.recorder,
            wall=self.server_clock.now,
            coalesce_s=s.coalesce_s,
        )
        self.runner = HandlerRunner(
            broker.config,
            self.registry,
            self.worker_id,
            default_timeout_s=s.default_timeout_s,
            threads=s.thread_pool_size,
            clock=clock,
            wall=self.server_clock.now,
        )
        self._local = LocalPriorityQueue()
        self.slots = Slots(self._local, self.runner, self.settler, self.leases, self.scaler, clock)
        self.routing = Routing(self.registry, broker.config, self.worker_id, clock=clock)
        self.fetcher = Fetcher(
            broker,
            s,
            self.worker_id,
            local=self._local,
            slots=self.slots,
            leases=self.leases,
            settler=self.settler,
            health=self.health,
            recorder=self.recorder,
            scaler=self.scaler,
            routing=self.routing,
        )
        self.cancels = CancelListener(broker, self.worker_id, self.runner, self.slots, self.leases)
        self.leases.on_cancel_requested = self.cancels.request
        self.slots.quiesce = self.fetcher.quiesce
        self.scaling = ScalingDuty(
            broker, s.queues, self.scaler, self.recorder, self.slots, self.fetcher, clock=clock
        )
        maintenance = MaintenanceDuty(
            broker,
            s.queues,
            interval_s=s.maintenance_s,
            repair_every_s=s.repair_every_s,
            clock=clock,
        )
        self.duties = PeriodicDuties(self.health)
        self.schedules = ScheduleDuty(broker, self.registry)
        if self.schedules.schedules:
            self.duties.add("schedules", self.schedules.interval_s, self.schedules.run_once)
        self.duties.add("lease renewal", self.leases.renew_every_s, self.leases.renew_once)
        self.duties.add("heartbeat", s.heartbeat_s, self._heartbeat_once)
        self.duties.add("reaper", maintenance.interval_s, maintenance.run_once)
        self.duties.add("watchdog", s.watchdog_tick_s, self.slots.enforce_timeouts)
        self.duties.add("auto-scaling", s.scaler_tick_s, self.scaling.tick)
        self.duties.add("server clock", _CLOCK_SYNC_S, self._sync_clock)
        self._stopping = False
        self._stopped = asyncio.Event()
        self._started_mono = clock()
        self._started_wall = time.time()
        self.publisher = SnapshotPublisher(
            broker.redis,
            broker.config.prefix,
            self.worker_id,
            self.recorder,
            interval_s=s.metrics_interval_s,
            ttl_s=max(5.0, s.metrics_interval_s * 5),
        )

    # -- state other code reads --------------------------------------------------------------------
    @property
    def target(self) -> int:
        """Concurrency the pool runs at now."""
        return self.scaler.concurrency

    @property
    def counts(self) -> dict[str, int]:
        """Totals of settled outcomes: processed, succeeded, failed, retried, dead, late,
        given_up."""
        return self.settler.counts

    @property
    def redis_ok(self) -> bool:
        """False while the latest Redis round trip failed."""
        return self.health.ok

    @property
    def redis_error(self) -> str | None:
        """Why Redis is unreachable, while it is."""
        return self.health.error

    @property
    def backlog(self) -> int:
        """Pending tasks across this pool's queues at the last sample."""
        return self.scaling.backlog

    def wait_p95_s(self) -> float | None:
        """Queue-wait p95 of recently fetched tasks (seconds), or None before any."""
        return self.fetcher.wait_p95_s()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Register the process and start fetching."""
        await self.broker.register_queues(self.settings.queues)
        await self._sync_clock()  # before the first task is stamped
        await flow.publish_limits(self.broker, self.settings.queues, self.registry)
        if self.settings.max_wait_s is not None:
            for queue in self.settings.queues:
                await flow.set_max_wait(self.broker, queue, self.settings.max_wait_s)
        # Announce our handlers and learn the fleet's before the first fetch, so tasks meant
        # for other workers go straight back to them.
        with contextlib.suppress(*REDIS_DOWN, RedisError):
            await self._heartbeat_once()
            await self.schedules.publish()
        self.liveness.start()
        self.slots.resize()
        self.duties.start()
        self.cancels.start()
        self.fetcher.start()
        self.publisher.start()
        self.settler.start()
        log.info("worker %s started on queues %s", self.worker_id, ", ".join(self.settings.queues))

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain gracefully: stop fetching, let running tasks finish, give back the rest."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self.slots.closed = True
        loop = asyncio.get_running_loop()
        grace = self.settings.grace_s if grace_s is None else grace_s
        grace_ends = loop.time() + grace
        # However Redis behaves (down, hung, refusing writes), stop() returns by `stop_by`:
        # each Redis step below gets what is left of it (and at least a moment).
        stop_by = grace_ends + _DRAIN_EXTRA_S

        def left(floor: float = 0.5) -> float:
            return max(floor, stop_by - loop.time())

        # Only the auto-scaler stops now. Lease renewal, heartbeats, the reaper and the
        # watchdog keep running while in-flight tasks finish: a task longer than the lease
        # must not be reclaimed (and run twice) during the grace period.
        await self.duties.cancel("auto-scaling")
        await self.fetcher.stop(min(self.settings.idle_block_s + 5, left()))
        # Not yet started: give back at once, so another worker can take them now.
        waiting = self.slots.take_waiting()
        await self._bounded(self.leases.release(waiting), "release", left())
        await self.slots.drain(max(0.0, grace_ends - loop.time()))
        # Writing outcomes shares the grace period, with a short floor so a pool stopped with
        # no grace still writes what finished; what is not written by then is given up.
        await self.settler.drain(min(max(_SETTLE_FLOOR_S, grace_ends - loop.time()), left()))
        await self.settler.stop()
        await self.duties.stop()
        await self._bounded(self.cancels.stop(), "cancel listener", left())
        leftovers = len(self.leases.inflight)
        await self.publisher.stop()
        await self._bounded(self._leave(), "giving back leases and leaving the fleet", left())
        await self.liveness.stop()
        self.runner.shutdown()
        self._stopped.set()
        log.info(
            "worker %s stopped: %d processed, %d released to pending, %d given up",
            self.worker_id,
            self.counts["processed"],
            len(waiting) + leftovers,
            self.counts["given_up"],
        )

    def _on_liveness(self, healthy: bool, error: str | None) -> None:
        if healthy:
            self.health.mark_ok()
        else:
            self.health.mark_down(ConnectionError(error))

    async def _leave(self) -> None:
        await self.leases.release_all()
        with contextlib.suppress(*REDIS_DOWN, RedisError):
            await self.publisher.publish_once()  # the final counts, kept until the key's TTL
            await registry.deregister(self.broker, self.worker_id)

    async def _bounded(self, step: Awaitable[object], what: str, timeout_s: float) -> None:
        """One Redis step of the drain, abandoned after `timeout_s` (Redis may hang)."""
        try:
            await asyncio.wait_for(step, timeout_s)
        except TimeoutError:
            log.warning("drain: %s took over %.1f s; left to the leases", what, timeout_s)

    # -- operator controls -------------------------------------------------------------------------
    def pin(self, concurrency: int) -> ScalerDecision:
        """Fix the concurrency (no automatic change until `unpin`)."""
        decision = self.scaler.pin(concurrency)
        self.slots.resize()
        return decision

    def unpin(self) -> ScalerDecision:
        """Return to automatic scaling."""
        decision = self.scaler.unpin()
        self.slots.resize()
        return decision

    def set_bounds(self, min_concurrency: int, max_concurrency: int) -> ScalerDecision | None:
        """Change the auto-scaler's bounds."""
        decision = self.scaler.set_bounds(min_concurrency, max_concurrency)
        self.slots.resize()
        return decision

    # -- fleet record and snapshot -----------------------------------------------------------------
    def record(self) -> registry.WorkerRecord:
        """This process's fleet record."""
        sc = self.scaler.settings
        return registry.WorkerRecord(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(self.settings.queues),
            concurrency=self.target,
            in_flight=self.slots.running + self._local.qsize(),
            processed=self.counts["processed"],
            failed=self.counts["failed"],
            started_at_s=self._started_wall,
            last_seen_s=time.time(),
            version=__version__,
            min_concurrency=sc.min_concurrency,
            max_concurrency=sc.max_concurrency,
            pinned=self.scaler.pinned,
            tasks=tuple(self.registry.names()),
        )

    async def _sync_clock(self) -> None:
        offset = self.server_clock.offset_s
        new = await self.server_clock.sync()
        if abs(new - offset) > 1.0:
            log.warning(
                "this host's clock is %+.3f s off the Redis server's; stage timings use the"
                " server's",
                -new,
            )

    async def _heartbeat_once(self) -> None:
        await registry.heartbeat(self.broker, self.record())
        self.routing.update(
            await registry.list_workers(self.broker.redis, self.broker.config.prefix)
        )

    def snapshot(self) -> PoolSnapshot:
        """The pool's state now, as plain values."""
        sc = self.scaler.settings
        c = self.counts
        return PoolSnapshot(
            worker_id=self.worker_id,
            queues=tuple(self.settings.queues),
            concurrency=self.target,
            min_concurrency=sc.min_concurrency,
            max_concurrency=sc.max_concurrency,
            pinned=self.scaler.pinned,
            in_flight=self.slots.running,
            prefetched=self._local.qsize(),
            processed=c["processed"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            retried=c["retried"],
            dead=c["dead"],
            late_rejected=c["late"],
            stuck_threads=len(self.runner.stuck),
            slots=self.slots.states(self.target),
            decisions=tuple(self.scaler.decisions),
            uptime_s=self._clock() - self._started_mono,
            running=not self._stopping,
            redis_ok=self.health.ok,
            redis_error=self.health.error,
            given_up=c["given_up"],
        )
