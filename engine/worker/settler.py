"""Settling: finished outcomes are buffered and written in batches, one script per queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from engine.broker import BATCH_MAX, Broker, chunks
from engine.metrics.recorder import MetricsRecorder
from engine.outcomes import Outcome
from engine.worker.health import REDIS_DOWN, RedisHealth
from engine.worker.leases import Leases

log = logging.getLogger("spool.worker")

# One buffered outcome: the outcome, and when its handler started and finished (epoch s).
Finished = tuple[Outcome, float, float]

# Metric samples are folded at most every _FOLD_EVERY_S, or as soon as _FOLD_AT are buffered:
# folding after every settle batch cost a fold per task at moderate rates (a batch of one), and
# the fold's fixed cost (11 histograms looked up, 14 tallies merged) is most of it.
_FOLD_EVERY_S = 0.02
_FOLD_AT = 256

# Server refusals that pass (memory freed, failover over, script finished): retried within the
# lease. Any other error reply is a fault of the call itself and is not retried as it is.
_TRANSIENT = (OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError)
_TRANSIENT_PREFIXES = ("OOM", "BUSY", "READONLY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN")


def is_transient(exc: RedisError) -> bool:
    """True for an error reply that says "not now" rather than "not this"."""
    if isinstance(exc, _TRANSIENT):
        return True
    return str(exc).lstrip().startswith(_TRANSIENT_PREFIXES) or " OOM " in str(exc)


class Settler:
    """Buffers outcomes from the slots and a flusher writes them while the slots run on.

    Each script call carries at most `BATCH_MAX` outcomes. A batch that cannot be written
    within one lease period (Redis away, writes refused) is given up: its leases are no longer
    renewed, so they expire and the reaper brings the tasks back to run again (at least once).
    An error reply that is not transient is not retried as it is: the batch is split in halves
    until the outcome that fails is alone, and only that one is given up.

    While outcomes keep arriving during a write, the next write waits until `coalesce_s` after
    the last one began, so it carries more of them.

    `counts` are this process's totals of settled outcomes (`given_up` among them);
    `exec_ewma_s` is the moving average of handler run time the fetcher sizes its batches by.
    """

    def __init__(
        self,
        broker: Broker,
        leases: Leases,
        health: RedisHealth,
        recorder: MetricsRecorder,
        wall: Callable[[], float] = time.time,
        coalesce_s: float = 0.0,
    ) -> None:
        self.broker = broker
        self._coalesce_s = coalesce_s
        self._wall = wall  # the server's time base, as the handler runner's stamps
        self.leases = leases
        self.health = health
        self.recorder = recorder
        self._buffer: dict[str, list[Finished]] = {}
        self._wanted = asyncio.Event()
        # Held while a batch is out of the buffer and being written.
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._unfolded = 0  # samples recorded since the last fold
        # Batches the fetcher is sending ahead of its wait (`take_riding`), not yet answered.
        self._riding = 0
        self._none_riding = asyncio.Event()
        self._none_riding.set()
        # After a rider failed, outcomes stay with the flusher until one of its writes works:
        # a batch that failed riding (its function not loaded after a restart) would ride
        # again first.
        self._riding_paused = False
        self._folded_at = 0.0  # time.monotonic() of the last fold
        self.exec_ewma_s = 1.0  # assume slow until measured: no big prefetch for long tasks
        #: True once a handler time was measured: the average then starts from that sample.
        self.exec_measured = False
        self.counts = {
            "processed": 0,
            "succeeded": 0,
            "failed": 0,
            "retried": 0,
            "dead": 0,
            "cancelled": 0,
            "handed_back": 0,
            "late": 0,
            "given_up": 0,
        }

    def add(self, outcome: Outcome, started: float, finished: float) -> None:
        """Buffer one outcome and wake the flusher."""
        queue = outcome.task.queue
        buf = self._buffer.get(queue)
        if buf is None:
            buf = self._buffer[queue] = []
        buf.append((outcome, started, finished))
        self._wanted.set()

    def take_riding(self, queue: str) -> tuple[list[Finished], float]:
        """Take the outcomes of `queue` buffered now (at most `BATCH_MAX`) for the fetcher to
        send ahead of its wake-up wait, in the same round trip, and the time they leave (their
        write time: the server settles them first); `rode` gets them back."""
        items = self._buffer.get(queue)
        if not items or self._riding_paused:
            return [], 0.0
        part, self._buffer[queue] = items[:BATCH_MAX], items[BATCH_MAX:]
        self.leases.settling.update(o.task.id for o, _, _ in part)
        self._riding += 1
        self._none_riding.clear()
        return part, self._wall()

    def rode(
        self, queue: str, items: list[Finished], flags: list[bool] | None, written: float
    ) -> None:
        """The end of a batch from `take_riding`: `flags` as settle returned them (the batch was
        written at `written`), or None when it failed or its fate is unknown: the batch goes
        back to the buffer and is written the ordinary way (a replay is rejected as stale)."""
        self.leases.settling.difference_update(o.task.id for o, _, _ in items)
        self._riding -= 1
        if not self._riding:
            self._none_riding.set()
        if flags is None:
            self._riding_paused = True
            self._buffer[queue] = items + self._buffer.get(queue, [])
            self._wanted.set()
        else:
            self._account(queue, items, flags, written)

    def start(self) -> None:
        """Start the flusher."""
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        """Stop the flusher; a batch it was still writing is given up (see `drain`)."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        left = [item for items in self._buffer.values() for item in items]
        self._buffer.clear()
        if left:
            self._give_up(left, "the drain ran out of time")

    async def _flush_loop(self) -> None:
        linger = self._coalesce_s
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            began = time.monotonic()
            await self.flush_once()
            if linger > 0 and self._wanted.is_set():
                # Outcomes came in while that batch was out: they come often, so the next
                # batch leaves `linger` after this one did and takes those that join meanwhile
                # (at moderate rates a settle per task was a third of the worker's CPU).
                rest = began + linger - time.monotonic()
                if rest > 0:
                    await asyncio.sleep(rest)

    async def flush_once(self) -> None:
        """Write everything buffered now."""
        async with self._lock:
            for queue in list(self._buffer):
                items = self._buffer.get(queue)
                if not items:
                    continue
                self._buffer[queue] = []
                for part in chunks(items, BATCH_MAX):
                    await self._settle(queue, list(part))

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every outcome buffered so far is written; False if `timeout_s` ran out
        first (what is left is given up by `stop`)."""
        try:
            await asyncio.wait_for(self._drain(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _drain(self) -> None:
        # The flusher may have taken a batch out of the buffer and be settling it: the buffer
        # looks empty then, so wait for the lock (the flush in progress) before deciding.
        while True:
            await self._none_riding.wait()  # a batch riding with the fetcher may come back
            async with self._lock:
                if not any(self._buffer.values()) and not self._riding:
                    return
            await self.flush_once()

    async def _settle(self, queue: str, items: list[Finished]) -> None:
        settling = self.leases.settling
        settling.update(o.task.id for o, _, _ in items)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.broker.config.lease_s
        try:
            flags = await self._write(queue, items, deadline)
        except asyncio.CancelledError:
            self._give_up(items, "the pool stopped while writing it")
            raise
        finally:
            settling.difference_update(o.task.id for o, _, _ in items)
        written = [(item, ok) for item, ok in zip(items, flags, strict=True) if ok is not None]
        if written:
            self._riding_paused = False
            self._account(queue, [i for i, _ in written], [ok for _, ok in written], self._wall())

    async def _write(self, queue: str, items: list[Finished], deadline: float) -> list[bool | None]:
        """Settle `items` before `deadline`: a flag per item, None where it was given up."""
        loop = asyncio.get_running_loop()
        outcomes = [o for o, _, _ in items]
        backoff = 0.05
        while True:
            left = deadline - loop.time()
            if left <= 0:
                self._give_up(items, f"not written within the lease ({self.health.error})")
                return [None] * len(items)
            try:
                flags = await asyncio.wait_for(self.broker.settle(queue, outcomes), left)
                self.health.mark_ok()
                return list(flags)
            except TimeoutError:
                continue  # the deadline check above gives the batch up
            except REDIS_DOWN as exc:
                # Outcomes are kept while the lease lasts: Redis may be back in time.
                self.health.mark_down(exc)
            except ResponseError as exc:
                if not is_transient(exc):
                    return await self._bisect(queue, items, deadline, exc)
                log.warning("settling %d outcome(s) of %s refused: %s", len(items), queue, exc)
            except RedisError as exc:
                log.warning("settling %d outcome(s) of %s failed: %s", len(items), queue, exc)
            await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
            backoff = min(backoff * 2, 5.0)

    async def _bisect(
        self, queue: str, items: list[Finished], deadline: float, exc: ResponseError
    ) -> list[bool | None]:
        """The script refused this batch: find the outcome(s) it refuses, write the rest."""
        if len(items) == 1:
            log.error("settle of task %s refused by the server: %s", items[0][0].task.id, exc)
            self._give_up(items, f"refused: {exc}")
            return [None]
        half = len(items) // 2
        first = await self._write(queue, items[:half], deadline)
        return first + await self._write(queue, items[half:], deadline)

    def _give_up(self, items: list[Finished], why: str) -> None:
        """Stop holding these tasks: their leases expire and the reaper brings them back."""
        inflight = self.leases.inflight
        for outcome, _, _ in items:
            inflight.pop(outcome.task.id, None)
        self.counts["given_up"] += len(items)
        self.recorder.count("settle_given_up", len(items), queue=items[0][0].task.queue)
        log.warning(
            "gave up settling %d outcome(s) of %s: %s; the reaper returns them after the lease",
            len(items),
            items[0][0].task.queue,
            why,
        )

    def _account(
        self, queue: str, items: list[Finished], flags: list[bool], written: float
    ) -> None:
        """Count a written batch and record its stage timings."""
        rec = self.recorder
        counts = self.counts
        inflight = self.leases.inflight
        ewma = self.exec_ewma_s
        if not self.exec_measured and items:
            # Start from the first sample: decaying from the 1 s guess took ~60 tasks, and the
            # auto-scaler sizes slots from this average.
            ewma = items[0][2] - items[0][1]
            self.exec_measured = True
        for (outcome, started, finished), ok in zip(items, flags, strict=True):
            t = outcome.task
            inflight.pop(t.id, None)
            kind = outcome.kind
            if kind == "h":  # not an attempt: no timing, not processed
                counts["handed_back"] += ok
                continue
            ewma += 0.05 * ((finished - started) - ewma)
            if not ok:
                counts["late"] += 1
                continue
            counts["processed"] += 1
            if kind == "s":
                counts["succeeded"] += 1
            elif kind == "c":
                counts["cancelled"] += 1
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
        self.exec_ewma_s = ewma
        # Fold a little at a time rather than a second's worth at once (a one-second fold at
        # 5,000 tasks/s stalled the event loop ~14 ms and showed up in p99), but not per batch.
        self._unfolded += len(items)
        mono = time.monotonic()
        if self._unfolded >= _FOLD_AT or mono - self._folded_at >= _FOLD_EVERY_S:
            rec.flush()
            self._unfolded = 0
            self._folded_at = mono
        rejected = flags.count(False)
        if rejected:
            rec.count("late_rejected", rejected, queue=queue)
        retried = sum(1 for o, _, _ in items if o.kind == "r")
        dead = sum(1 for o, _, _ in items if o.kind == "d")
        if retried:
            rec.count("retried", retried, queue=queue)
        if dead:
            rec.count("dead", dead, queue=queue)
