"""Settling: finished outcomes are buffered and written in batches, one script per queue."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from engine.broker import Broker
from engine.metrics.recorder import MetricsRecorder
from engine.outcomes import Outcome
from engine.worker.health import REDIS_DOWN, RedisHealth
from engine.worker.leases import Leases

log = logging.getLogger("spool.worker")

# One buffered outcome: the outcome, and when its handler started and finished (epoch s).
Finished = tuple[Outcome, float, float]


class Settler:
    """Buffers outcomes from the slots and a flusher writes them while the slots run on.

    `counts` are this process's totals of settled outcomes; `exec_ewma_s` is the moving
    average of handler run time the fetcher sizes its batches by.
    """

    def __init__(
        self, broker: Broker, leases: Leases, health: RedisHealth, recorder: MetricsRecorder
    ) -> None:
        self.broker = broker
        self.leases = leases
        self.health = health
        self.recorder = recorder
        self._buffer: dict[str, list[Finished]] = {}
        self._wanted = asyncio.Event()
        # Held while a batch is out of the buffer and being written.
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
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
        }

    def add(self, outcome: Outcome, started: float, finished: float) -> None:
        """Buffer one outcome and wake the flusher."""
        queue = outcome.task.queue
        buf = self._buffer.get(queue)
        if buf is None:
            buf = self._buffer[queue] = []
        buf.append((outcome, started, finished))
        self._wanted.set()

    def start(self) -> None:
        """Start the flusher."""
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        """Stop the flusher; call after `drain`, so nothing is left in the buffer."""
        if self._flusher is not None:
            # Safe now: drain took the lock, so no flush is in progress.
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush_loop(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.flush_once()

    async def flush_once(self) -> None:
        """Write everything buffered now."""
        async with self._lock:
            for queue in list(self._buffer):
                items = self._buffer.get(queue)
                if not items:
                    continue
                self._buffer[queue] = []
                await self._settle(queue, items)

    async def drain(self) -> None:
        """Return once every outcome buffered so far is written."""
        # The flusher may have taken a batch out of the buffer and be settling it: the buffer
        # looks empty then, so wait for the lock (the flush in progress) before deciding.
        while True:
            async with self._lock:
                if not any(self._buffer.values()):
                    return
            await self.flush_once()

    async def _settle(self, queue: str, items: list[Finished]) -> None:
        outcomes = [o for o, _, _ in items]
        settling = self.leases.settling
        settling.update(o.task.id for o in outcomes)
        backoff = 0.05
        while True:
            try:
                flags = await self.broker.settle(queue, outcomes)
                self.health.mark_ok()
                break
            except REDIS_DOWN as exc:
                # Outcomes are kept, not dropped: if Redis stays away the leases expire and the
                # tasks run again (at least once), which is what the lease is for.
                self.health.mark_down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except RedisError as exc:
                # A server-side refusal (OOM under noeviction, BUSY): keep the outcomes and try
                # again; letting it escape would end the flusher and strand every later result.
                log.warning("settling %d outcome(s) of %s failed: %s", len(outcomes), queue, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        self._account(queue, items, flags, time.time())
        settling.difference_update(o.task.id for o in outcomes)

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
        # Fold a little after every batch rather than a second's worth at once: a one-second
        # fold at 5,000 tasks/s stalled the event loop ~14 ms and showed up in p99.
        rec.flush()
        rejected = flags.count(False)
        if rejected:
            rec.count("late_rejected", rejected, queue=queue)
        retried = sum(1 for o, _, _ in items if o.kind == "r")
        dead = sum(1 for o, _, _ in items if o.kind == "d")
        if retried:
            rec.count("retried", retried, queue=queue)
        if dead:
            rec.count("dead", dead, queue=queue)
