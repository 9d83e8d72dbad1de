"""The auto-scaler's tick: sample backlog, queue wait and busy slots; resize on a decision."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from engine.broker import Broker
from engine.metrics.recorder import MetricsRecorder
from engine.worker.fetcher import Fetcher
from engine.worker.scaler import AutoScaler, ScalerInputs, ScalerSettings
from engine.worker.settings import PoolSettings
from engine.worker.slots import Slots

log = logging.getLogger("spool.worker")


def make_scaler(settings: PoolSettings, clock: Callable[[], float]) -> AutoScaler:
    """The auto-scaler a pool with these settings starts with (pinned if `concurrency` is set)."""
    s = settings
    scaler = AutoScaler(
        ScalerSettings(
            min_concurrency=min(s.min_concurrency, s.max_concurrency),
            max_concurrency=s.max_concurrency,
            wait_p95_target_s=s.wait_p95_target_s,
            down_after_idle_s=s.scale_down_after_idle_s,
            up_cooldown_s=s.scale_up_cooldown_s,
        ),
        initial=s.concurrency or s.min_concurrency,
        clock=clock,
    )
    if s.concurrency is not None:
        scaler.pin(s.concurrency)
    return scaler


class ScalingDuty:
    """Feeds the auto-scaler once per tick; `backlog` is the pending count it last saw."""

    def __init__(
        self,
        broker: Broker,
        queues: tuple[str, ...],
        scaler: AutoScaler,
        recorder: MetricsRecorder,
        slots: Slots,
        fetcher: Fetcher,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.queues = queues
        self.scaler = scaler
        self.recorder = recorder
        self.slots = slots
        self.fetcher = fetcher
        self.backlog = 0
        self._clock = clock
        self._last: tuple[float, int, int] | None = None  # (when, fetched so far, backlog)
        self._wakes_seen = -1  # the fetcher's `wakes` when the depths were last read
        #: Tasks arriving per second, smoothed over ticks (None before two samples).
        self.arrival_per_s: float | None = None

    async def tick(self) -> None:
        """Sample the queues' depths, ask the scaler, resize the slots if it decided."""
        if self._depths_unchanged():
            backlog = 0
        else:
            self._wakes_seen = self.fetcher.wakes
            backlog = await self._read_depths()
        self._measure_arrivals(backlog)
        self.backlog = backlog
        busy = self.slots.running / max(1, self.scaler.concurrency)
        settler = self.fetcher.settler
        decision = self.scaler.tick(
            ScalerInputs(
                backlog,
                self.fetcher.wait_p95_s(),
                busy,
                arrival_per_s=self.arrival_per_s,
                service_s=settler.exec_ewma_s if settler.exec_measured else None,
            )
        )
        self.fetcher.waits.clear()  # the next tick judges the next interval's waits
        if decision is not None:
            log.info("auto-scaler %d -> %d: %s", decision.old, decision.new, decision.reason)
            self.slots.resize()

    async def _read_depths(self) -> int:
        """Read every level's pending count (published as depth gauges); their sum."""
        backlog = 0
        for queue in self.queues:
            keys = self.broker.keys(queue)
            async with self.broker.redis.pipeline(transaction=False) as pipe:
                for key in keys.pending_keys:
                    pipe.llen(key)
                depths = await pipe.execute()
            for level, depth in zip(keys.levels, depths, strict=True):
                self.recorder.set_depth(queue, level, int(depth))
                backlog += int(depth)
        return backlog

    def _depths_unchanged(self) -> bool:
        """True when the queues were empty at the last read and the fetcher has waited on
        their wake-up keys since, without a wake: nothing became pending (it would have pushed
        a token). An idle worker then reads the depths once per wait (`idle_block_s`) instead
        of every tick: ten round trips a second less per idle worker, against a shared Redis."""
        return (
            self.backlog == 0
            and self.fetcher.waiting_for_work
            and self.fetcher.wakes == self._wakes_seen
        )

    def _measure_arrivals(self, backlog: int) -> None:
        """Arrivals since the last tick: what this process fetched plus what the backlog grew
        by (what nobody fetched yet), per second; halved towards each new sample."""
        now, fetched = self._clock(), self.fetcher.fetched_total
        if self._last is not None:
            then, fetched_then, backlog_then = self._last
            if now > then:
                rate = (fetched - fetched_then + max(0, backlog - backlog_then)) / (now - then)
                prev = self.arrival_per_s
                self.arrival_per_s = rate if prev is None else (prev + rate) / 2
        self._last = (now, fetched, backlog)
