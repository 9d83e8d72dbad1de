"""What the console draws: the snapshot it renders and how one is read from Redis.

The engine host takes one every second on its own loop (`read_fleet`) and swaps it in whole;
screens only ever read a `ConsoleSnapshot`. No Textual import here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.broker import Broker
from engine.diagnosis import Diagnosis, Reason, diagnose, gather_facts
from engine.metrics.publisher import fetch_fleet_snapshot
from engine.metrics.snapshot import MetricsSnapshot
from engine.queues import QueueStats, all_queue_stats
from engine.schedule import ScheduleInfo, list_schedules
from engine.worker.registry import WorkerRecord, list_workers
from engine.worker.snapshot import PoolSnapshot
from spool_console.settings import Settings

#: Queues diagnosed per refresh (a few round trips each); the rest show no diagnosis.
MAX_DIAGNOSED = 50


@dataclass(frozen=True, slots=True)
class ConsoleSnapshot:
    """Everything the console draws, taken at one moment; replaced whole every second."""

    seq: int
    taken_at_s: float
    connected: bool
    url_masked: str
    error: str | None
    embedded: bool
    uptime_s: float
    workers: tuple[WorkerRecord, ...] = ()
    pool: PoolSnapshot | None = None
    metrics: MetricsSnapshot | None = None
    queues: tuple[QueueStats, ...] = ()
    dead_count: int = 0
    levels: tuple[str, ...] = ("high", "default", "low")
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Why `pool` is None, in words for the scaler panels ("" when there is a pool).
    no_pool_reason: str = ""
    schedules: tuple[ScheduleInfo, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()  # one per queue of `queues`, same order
    #: When the numbers were read from Redis (0: never); older than `taken_at_s` when Redis
    #: is down or the last refresh overran, and the screens then say the numbers are stale.
    data_at_s: float = 0.0
    #: Why the numbers are older than the snapshot, in a few words ("" when they are fresh).
    stale_reason: str = ""

    @property
    def stale(self) -> bool:
        """True when the numbers shown are not this moment's."""
        return bool(self.stale_reason)

    def diagnosis(self, queue: str) -> Diagnosis | None:
        """The diagnosis of `queue` in this snapshot, if it was made."""
        return next((d for d in self.diagnoses if d.queue == queue), None)

    @property
    def fleet_size(self) -> int:
        """Live worker processes sharing this Redis."""
        return len(self.workers)


class DrainRates:
    """Completions per second per queue between two calls, from the fleet's counters."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_totals: tuple[float, dict[str, int]] | None = None

    def __call__(self, metrics: MetricsSnapshot | None) -> dict[str, float]:
        """Rates since the previous call (empty on the first)."""
        now = self._clock()
        totals: dict[str, int] = {}
        if metrics is not None:
            for c in metrics.counters:
                if c.event in ("succeeded", "dead"):
                    for queue, n in c.per_queue:
                        totals[queue] = totals.get(queue, 0) + n
        last, self._last_totals = self._last_totals, (now, totals)
        if last is None or now <= last[0]:
            return {}
        prev_t, prev = last
        dt = now - prev_t
        return {q: (n - prev.get(q, 0)) / dt for q, n in totals.items() if n > prev.get(q, 0)}


async def read_fleet(
    broker: Broker, redis: Any, prefix: str, drain_rates: DrainRates
) -> dict[str, Any]:
    """One refresh's reads: queues, workers, metrics, schedules and diagnoses, by field name."""
    queues = tuple(await all_queue_stats(broker))
    workers = tuple(await list_workers(redis, prefix))
    metrics = await fetch_fleet_snapshot(redis, prefix)
    schedules = tuple(await list_schedules(broker))
    rates = drain_rates(metrics)
    diagnoses = tuple(
        [
            diagnose(
                await gather_facts(
                    broker,
                    q.queue,
                    stats=q,
                    workers=list(workers),
                    drain_per_s=rates.get(q.queue),
                )
            )
            for q in queues[:MAX_DIAGNOSED]
        ]
    )
    return {
        "workers": workers,
        "metrics": metrics,
        "queues": queues,
        "dead_count": sum(q.dead for q in queues),
        "schedules": schedules,
        "diagnoses": diagnoses,
    }


def down_diagnoses(queues: Sequence[QueueStats], error: str) -> tuple[Diagnosis, ...]:
    """Every queue's diagnosis while Redis does not answer."""
    return tuple(
        Diagnosis(q.queue, False, (Reason("redis_down", f"Redis unreachable: {error}"),))
        for q in queues
    )


def no_pool_reason(settings: Settings, has_pool: bool) -> str:
    """Why there is no local pool, in words for the scaler panels ("" when there is one)."""
    if has_pool:
        return ""
    if settings.read_only:
        return "read-only: no local worker pool, observing only"
    if settings.workers == 0:
        return "no local worker pool (--workers 0): observing only"
    return "the local worker pool starts once Redis answers"
