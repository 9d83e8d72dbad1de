"""The fetcher: keeps the local queue topped up with leased tasks from the pool's queues."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque

from redis.exceptions import RedisError

from engine.broker import Broker, FetchResult
from engine.metrics.recorder import MetricsRecorder
from engine.task import FetchedTask
from engine.worker.health import REDIS_DOWN, RedisHealth
from engine.worker.leases import Leases
from engine.worker.local_queue import LocalPriorityQueue
from engine.worker.routing import Routing
from engine.worker.scaler import AutoScaler
from engine.worker.settings import PoolSettings
from engine.worker.settler import Finished, Settler
from engine.worker.slots import Slots
from engine.worker.wake import ClusterWake
from engine.worker.weights import WeightedSplit

log = logging.getLogger("spool.worker")

# The arrival rate `_coalescing` judges by is a count weighted over about this long.
_RATE_TAU_S = 0.1
# The longest wait while outcomes ride ahead of it: their counts and leases wait for its reply.
_RIDING_BLOCK_S = 0.05


class Fetcher:
    """One loop: while the pool holds less than it may, fetch a batch (queues in rotation);
    once every queue came back short, block on the queues' wake-up key until work or a due
    task, with the next fetch pipelined behind the wait (one server). While arrivals are
    frequent, the wait is put off by `coalesce_s` so one round trip takes several tasks.

    `waits` keeps the queue wait (ms) of recently fetched tasks for the auto-scaler.
    """

    def __init__(
        self,
        broker: Broker,
        settings: PoolSettings,
        worker_id: str,
        *,
        local: LocalPriorityQueue,
        slots: Slots,
        leases: Leases,
        settler: Settler,
        health: RedisHealth,
        recorder: MetricsRecorder,
        scaler: AutoScaler,
        routing: Routing,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.worker_id = worker_id
        self.local = local
        self.slots = slots
        self.leases = leases
        self.settler = settler
        self.health = health
        self.recorder = recorder
        self._scaler = scaler
        self.routing = routing
        self.waits: deque[float] = deque(maxlen=2048)
        #: Tasks fetched since start (the auto-scaler's arrival rate counts them).
        self.fetched_total = 0
        # Fetched tasks per second lately (exponentially weighted), for `_coalescing`.
        self._arrival_rate = 0.0
        self._rate_at = time.monotonic()
        self._blocking = False  # parked on the wake-up key or on slot capacity
        self._in_redis_wait = False  # parked in Broker.wait_and_fetch
        self._waiting_for_work = False  # parked on the wake-up keys (a Cluster's wait)
        #: Waits on the wake-up keys that ended (work, a timeout, a nudge, an error) since start.
        self.wakes = 0
        # Clear while a fetch (a round's, or one pipelined behind a wait) may lease tasks that
        # are not yet held: a suspect about to run alone waits for it (`quiesce`).
        self._no_fetch_in_flight = asyncio.Event()
        self._no_fetch_in_flight.set()
        self.closed = False
        # How an idle fetcher waits: on one server the wake-up and the fetch share a round
        # trip; on a Cluster one watcher per queue stays parked (a BLPOP cannot span slots).
        self._pipelined = not broker.cluster
        self._cluster_wake = (
            ClusterWake(broker, settings.queues, settings.idle_block_s)
            if broker.cluster and len(settings.queues) > 1
            else None
        )
        self._split = WeightedSplit(settings.queue_weights or (1,) * len(settings.queues))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start fetching."""
        if self._cluster_wake is not None:
            self._cluster_wake.start()
        self._task = asyncio.create_task(self._loop())

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop fetching without losing a fetch whose reply is in flight.

        Cancelling mid-fetch could strand leased tasks until their lease expires (and count
        that as a crash), so only a fetcher blocked on the wake key is cancelled outright.
        A fetch still in flight after `timeout_s` (default: the idle block + 5 s) is cancelled:
        Redis hangs, and its leases will bring the tasks back.
        """
        limit = self.settings.idle_block_s + 5 if timeout_s is None else timeout_s
        self.closed = True
        fetcher = self._task
        if fetcher is None:
            return
        self.slots.capacity.set()
        if self._in_redis_wait:
            # The fetch pipelined behind the wait may already have leased tasks: cancelling
            # would lose its reply (the tasks would sit leased until their lease expired and
            # count a crash). Nudge the wait to return, and take the reply.
            try:
                await asyncio.wait_for(
                    self.broker.nudge(self.settings.queues[0], self.worker_id), min(1.0, limit)
                )
            except (*REDIS_DOWN, RedisError):  # TimeoutError is an OSError
                fetcher.cancel()  # Redis is away or hung: nothing can be in flight anyway
        elif self._blocking:
            fetcher.cancel()
        done, _ = await asyncio.wait([fetcher], timeout=limit)
        if not done:
            fetcher.cancel()
        await asyncio.gather(fetcher, return_exceptions=True)
        if self._cluster_wake is not None:
            await self._cluster_wake.stop()

    @property
    def parked(self) -> bool:
        """True while the fetcher waits (for work in Redis, or for room in the slots)."""
        return self._blocking or self._in_redis_wait

    @property
    def waiting_for_work(self) -> bool:
        """True while the fetcher waits on the wake-up keys: the queues had nothing pending
        when it parked, and anything that makes a task pending pushes a token that ends the
        wait (and counts in `wakes`)."""
        return self._in_redis_wait or self._waiting_for_work

    async def quiesce(self) -> None:
        """Return once no fetch is pending, nudging a parked wait out.

        A suspect task about to run alone needs every task leased to this process in hand (to
        give it back first): a parked wait would lease more the moment a token arrives.
        """
        if self._in_redis_wait:
            try:
                await self.broker.nudge(self.settings.queues[0], self.worker_id)
            except (*REDIS_DOWN, RedisError):
                return  # Redis is away: no fetch can lease anything now
        await self._no_fetch_in_flight.wait()

    def wait_p95_s(self) -> float | None:
        """Queue-wait p95 of recently fetched tasks (seconds), or None before any."""
        if not self.waits:
            return None
        waits = sorted(self.waits)
        return waits[int(0.95 * (len(waits) - 1))] / 1000

    def _room(self) -> int:
        """How many more tasks the pool may hold now."""
        s = self.settings
        hold = int(self._scaler.concurrency * (1 + s.prefetch_ratio))
        if self.settler.exec_ewma_s < s.fast_task_s:
            # Short tasks: a batch sized by concurrency alone (8 at 4 slots) makes the round
            # trip the bottleneck; holding a few dozen leased tasks costs nothing here.
            hold = max(hold, s.fast_fetch_min)
        if self.slots.isolating:
            return 0
        return hold - self.slots.running - self.local.qsize()

    async def _loop(self) -> None:
        s = self.settings
        queues = list(s.queues)
        rotation = 0
        backoff = 0.05
        capacity = self.slots.capacity
        # Grows while whole rounds bring only tasks this process has no handler for (handed
        # back at once): another worker takes those, and this one must not spin on them.
        foreign_pause = 0.0
        # Every queue's last fetch came back short: nothing waits in Redis now, so the next
        # fetch rides behind the wake-up wait instead of running first and finding nothing
        # (one round trip per task less at moderate rates). Whatever makes work available
        # pushes a wake token, so the wait ends as soon as there is some.
        drained = False
        found = False  # the last fetch brought tasks
        lingered = False
        next_due_ms: int | None = None
        now_ms = 0
        while not self.closed:
            room = self._room()
            if room <= 0:
                capacity.clear()
                self._blocking = True
                try:
                    await capacity.wait()
                finally:
                    self._blocking = False
                continue
            try:
                if not drained:
                    got, runnable, short, next_due_ms, now_ms = await self._round(
                        queues, rotation, room
                    )
                    # On a Cluster the wait does not fetch, so a round follows every wait.
                    drained = short and self._pipelined
                    rotation += 1
                    self.health.mark_ok()
                    backoff = 0.05
                    if got and not runnable:
                        foreign_pause = min(max(foreign_pause * 2, 0.01), 0.5)
                        await asyncio.sleep(foreign_pause)
                        continue
                    foreign_pause = 0.0
                    found = got > 0
                    if found and not drained:
                        continue  # work may be waiting: fetch again at once
                # A suspect about to run alone has checked for a parked wait already: parking
                # now could lease tasks that would die with it.
                if self.closed or self.slots.isolating:
                    continue
                if found and not lingered and self._coalescing():
                    # Arrivals are frequent: let a few more arrive before the round trip that
                    # takes them (and let the slots finish what they hold meanwhile).
                    lingered = True
                    await asyncio.sleep(s.coalesce_s)
                    continue
                lingered = False
                block = s.idle_block_s
                if next_due_ms is not None:
                    block = min(block, max(0.001, (next_due_ms - now_ms) / 1000))
                queue = queues[rotation % len(queues)]
                if not self._pipelined:
                    found = False
                    await self._wait_for_work(queues, block)
                    continue
                res, asked, runnable = await self._wait(queues, queue, room, block)
                self.health.mark_ok()
                backoff = 0.05
                found = bool(res.tasks)
                next_due_ms, now_ms = res.next_due_ms, res.now_ms
                # With several queues the token may have been another queue's: fetch them all.
                drained = len(queues) == 1 and len(res.tasks) < asked
                if found and not runnable:
                    # Handing a task back wakes the wait again: pause as after such a round.
                    drained = False
                    foreign_pause = min(max(foreign_pause * 2, 0.01), 0.5)
                    await asyncio.sleep(foreign_pause)
                elif found:
                    foreign_pause = 0.0
            except REDIS_DOWN as exc:
                drained = found = False
                self.health.mark_down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                # A server error (OOM, a script error) must not end the fetcher for good: the
                # pool would look alive and never fetch again.
                drained = found = False
                log.exception("fetch failed; retrying in %.2f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _round(
        self, queues: list[str], rotation: int, room: int
    ) -> tuple[int, int, bool, int | None, int]:
        """Fetch up to `room` tasks across the queues: (fetched, runnable here, every queue
        came back short, the earliest next due time (server ms) or None, server now ms)."""
        got, runnable, next_due_ms, now_ms = 0, 0, None, 0
        short: set[str] = set()  # came back with less than asked: empty for now
        self._no_fetch_in_flight.clear()
        try:
            for queue, want in self._plan(queues, rotation, room):
                if got >= room:
                    break
                if queue in short:
                    continue
                asked = min(want, room - got, self.settings.fetch_batch_max)
                res = await self.broker.fetch(queue, asked, self.worker_id)
                if len(res.tasks) < asked:
                    short.add(queue)
                now_ms = res.now_ms
                if res.next_due_ms is not None:
                    next_due_ms = (
                        res.next_due_ms
                        if next_due_ms is None
                        else min(next_due_ms, res.next_due_ms)
                    )
                if res.tasks:
                    got += len(res.tasks)
                    runnable += await self._take(queue, res.tasks)
        finally:
            self._no_fetch_in_flight.set()
        return got, runnable, len(short) == len(queues), next_due_ms, now_ms

    def _coalescing(self) -> bool:
        """True while arrivals are frequent enough that lingering `coalesce_s` before the next
        fetch gathers at least two tasks into it (below that, lingering only adds wait)."""
        linger = self.settings.coalesce_s
        if linger <= 0:
            return False
        decay = math.exp((self._rate_at - time.monotonic()) / _RATE_TAU_S)
        return self._arrival_rate * decay * linger >= 2

    def _note_arrivals(self, n: int) -> None:
        """Fold `n` fetched tasks into the arrival rate (an exponentially weighted count)."""
        now = time.monotonic()
        decay = math.exp((self._rate_at - now) / _RATE_TAU_S)
        self._arrival_rate = self._arrival_rate * decay + n / _RATE_TAU_S
        self._rate_at = now

    def _plan(self, queues: list[str], rotation: int, room: int) -> list[tuple[str, int]]:
        """The fetches of one round: (queue, how many). One queue: all of the room. Several:
        each queue's weighted share first, then the whole room again to each in turn, so the
        share of a queue that had less goes to the others (the loop stops once room is full).
        """
        if len(queues) == 1:
            return [(queues[0], room)]
        shares = self._split.split(room)
        order = [queues[(rotation + i) % len(queues)] for i in range(len(queues))]
        first = [(q, n) for q, n in zip(queues, shares, strict=True) if n > 0]
        return first + [(q, room) for q in order]

    async def _wait(
        self, queues: list[str], queue: str, room: int, block_s: float
    ) -> tuple[FetchResult, int, int]:
        """Park on the wake-up keys until work may be there (or `block_s`), and fetch `queue`
        on the way out in the same round trip (one server): the result, how many it asked
        for, and how many of its tasks run here."""
        asked = min(room, self.settings.fetch_batch_max)
        # Outcomes finished meanwhile ride ahead of the wait: one round trip instead of two.
        riding, written = self.settler.take_riding(queue)
        ridden: list[Finished] = []
        flags: list[bool] | None = None
        self._in_redis_wait = True
        self._no_fetch_in_flight.clear()
        try:
            if riding:
                # Their flags come back with the wake-up: wait briefly, not a whole idle block.
                # Bounded like the settler's own writes: a server that takes no writes (paused,
                # hung) must not hold outcomes past their lease. On timeout they go back to the
                # settler, which gives them up when its deadline passes.
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the call as a task
                # of its own, one more loop turn between the reply and the tasks it brings.
                async with asyncio.timeout(self.broker.config.lease_s / 2):
                    settled, res = await self.broker.settle_and_wait(
                        [o for o, _, _ in riding],
                        queues,
                        queue,
                        asked,
                        self.worker_id,
                        min(block_s, _RIDING_BLOCK_S),
                    )
                flags = None if isinstance(settled, Exception) else settled
                riding, ridden = [], riding
            else:
                res = await self.broker.wait_and_fetch(
                    queues, queue, asked, self.worker_id, block_s
                )
            self._in_redis_wait = False
            runnable = await self._take(queue, res.tasks)  # not cancelled by stop(): leased
            if runnable:
                # Let the slots start them before the next round's fetch is even built, and
                # before the riders' bookkeeping: a new task's wait is the latency users see.
                await asyncio.sleep(0)
        finally:
            if ridden:
                self.settler.rode(queue, ridden, flags, written)
            if riding:  # the round trip failed: written or not, the settler tries again
                self.settler.rode(queue, riding, None, 0.0)
            self._in_redis_wait = False
            self.wakes += 1
            self._no_fetch_in_flight.set()
        return res, asked, runnable

    async def _wait_for_work(self, queues: list[str], block_s: float) -> None:
        """Park until a wake token arrives on a queue (or `block_s`); on a Cluster."""
        self._blocking = self._waiting_for_work = True
        try:
            if self._cluster_wake is not None:
                await self._cluster_wake.wait(block_s)
            else:
                await self.broker.wait_for_work(queues, block_s)
        finally:
            self._blocking = self._waiting_for_work = False
            self.wakes += 1

    async def _take(self, queue: str, tasks: list[FetchedTask]) -> int:
        """Hold a fetched batch of `queue`; return how many of its tasks run here."""
        if not tasks:
            return 0
        await self._mark_suspects(queue, [t for t in tasks if self.routing.runnable(t)])
        runnable = self._accept(tasks)
        self.recorder.count("started", len(tasks), queue=queue)
        return runnable

    def _accept(self, tasks: list[FetchedTask]) -> int:
        """Hold fetched tasks and queue them for the slots, highest priority first."""
        inflight = self.leases.inflight
        waits = self.waits
        local = self.local
        routing = self.routing
        queued = 0
        self.fetched_total += len(tasks)
        self._note_arrivals(len(tasks))
        for t in tasks:
            inflight[t.id] = t
            if not routing.runnable(t):
                now = time.time()
                self.settler.add(routing.outcome_for(t), now, now)
                continue
            queued += 1
            waits.append(t.fetched_at_ms - (t.ready_at_ms or t.enqueued_at_ms))
            local.put_nowait(t, self._rank(t))
        return queued

    def _rank(self, t: FetchedTask) -> int:
        """0 for the queue's highest level, 1 for the next, …"""
        levels = self.broker.keys(t.queue).levels
        return levels.index(t.level) if t.level in levels else len(levels) // 2

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
                self.slots.suspects.add(t.id)
