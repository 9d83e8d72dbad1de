"""Producers: a bulk preloader, and an open-loop producer that keeps its schedule.

The open-loop producer decides what to send from the clock alone: task i is due at i / rate
seconds after the start. Each tick it sends everything that is due, in batches; when the system
is slow it does not wait for it (closed-loop producers do, and so hide queueing delay behind
their own slowness). How late each batch went out against its schedule is recorded, so a
producer that itself fell behind is visible in the report instead of silently lowering the load.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.broker import Broker
from engine.metrics.histogram import LogHistogram
from engine.metrics.recorder import MetricsRecorder
from engine.task import TaskSpec


def _specs(name: str, args: list[Any], queue: str, priority: str, n: int) -> list[TaskSpec]:
    return [TaskSpec(name, args, queue=queue, priority=priority) for _ in range(n)]


async def preload(
    broker: Broker,
    queue: str,
    name: str,
    args: list[Any],
    n: int,
    *,
    priority: str = "default",
    batch: int = 1_000,
    recorder: MetricsRecorder | None = None,
) -> float:
    """Enqueue `n` tasks as fast as one connection allows; return the seconds it took."""
    started = time.perf_counter()
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        t = time.perf_counter()
        await broker.enqueue(_specs(name, args, queue, priority, k))
        if recorder is not None:
            recorder.record_stage("enqueue", time.perf_counter() - t, queue=queue, level=priority)
        sent += k
    return time.perf_counter() - started


class OpenLoopProducer:
    """Offers `total` tasks at `rate` per second from `start()`, whatever the consumers do."""

    def __init__(
        self,
        broker: Broker,
        queue: str,
        name: str,
        args: list[Any],
        *,
        rate: float,
        total: int,
        priority: str = "default",
        tick_s: float = 0.002,
        batch_max: int = 500,
        recorder: MetricsRecorder | None = None,
        stamp: bool = False,
    ) -> None:
        self.broker = broker
        #: With `stamp`, each task's only argument is time.time() read just before its
        #: enqueue call, and the returned ids are kept (`ids`) to read the results back.
        self.stamp = stamp
        self.ids: list[str] = []
        self.queue = queue
        self.name = name
        self.args = args
        self.rate = rate
        self.total = total
        self.priority = priority
        self.tick_s = tick_s
        self.batch_max = batch_max
        self.recorder = recorder
        self.sent = 0
        #: How late each task went out against its schedule (µs; bounded memory for long runs).
        self.lags = LogHistogram()
        self.started_mono: float | None = None
        self.finished_mono: float | None = None

    async def run(self) -> None:
        """Send until `total` tasks are out (cancel to stop early)."""
        start = self.started_mono = time.monotonic()
        rate, total = self.rate, self.total
        try:
            while self.sent < total:
                now = time.monotonic() - start
                # Catch up on everything due, batch by batch, without sleeping in between.
                due = min(total, int(now * rate) + 1)
                while self.sent < due:
                    n = min(self.batch_max, due - self.sent)
                    # Task k of the batch was due at (sent + k) / rate; all leave together now.
                    for k in range(n):
                        self.lags.record(max(0.0, now - (self.sent + k) / rate) * 1e6)
                    if self.stamp:
                        sent_at = time.time()
                        specs = [
                            TaskSpec(self.name, [sent_at], queue=self.queue, priority=self.priority)
                            for _ in range(n)
                        ]
                    else:
                        specs = _specs(self.name, self.args, self.queue, self.priority, n)
                    t = time.perf_counter()
                    ids = await self.broker.enqueue(specs)
                    if self.stamp:
                        self.ids += ids
                    if self.recorder is not None:
                        self.recorder.record_stage(
                            "enqueue",
                            time.perf_counter() - t,
                            queue=self.queue,
                            level=self.priority,
                        )
                    self.sent += n
                    now = time.monotonic() - start
                    due = min(total, int(now * rate) + 1)
                if self.sent >= total:
                    break
                # Sleep until the next task is due, but at least one tick so high rates go out
                # in batches (the tick's worth of lag is part of the measured producer lag).
                wait = self.sent / rate - (time.monotonic() - start)
                await asyncio.sleep(max(wait, self.tick_s))
        finally:
            self.finished_mono = time.monotonic()

    def lag_ms(self, q: float) -> float:
        """The `q`-quantile (0..1) of per-task schedule lag, in ms (1.0 gives the maximum)."""
        if not self.lags.count:
            return 0.0
        if q >= 1.0:
            return self.lags.max_us / 1000
        return self.lags.percentile(q * 100) / 1000

    @property
    def achieved_rate(self) -> float:
        """Tasks per second the producer actually sent over its own run time."""
        if self.started_mono is None:
            return 0.0
        end = self.finished_mono or time.monotonic()
        # The first task is due at 0 and the last at (total-1)/rate, so n tasks span that.
        span = max(end - self.started_mono, (self.sent - 1) / self.rate if self.sent else 0.0)
        return self.sent / span if span > 0 else float(self.sent)
