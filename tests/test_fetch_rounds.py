"""Round trips of a worker at moderate rates: no empty fetch after a short one, and frequent
arrivals coalesced into fewer fetches and settles (docs/architecture.md, "One task at a time")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from support.polling import wait_for

from engine.broker import Broker, FetchResult
from engine.config import EngineConfig
from engine.outcomes import Outcome
from engine.queues import queue_stats
from engine.task import TaskRegistry, TaskSpec
from engine.worker.pool import PoolSettings, WorkerPool

Q = "default"


class CountingBroker(Broker):
    """The real broker, counting its fetch, wait-and-fetch and settle calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()

    async def fetch(self, *args: Any, **kwargs: Any) -> FetchResult:
        self.calls["fetch"] += 1
        return await super().fetch(*args, **kwargs)

    async def wait_and_fetch(self, *args: Any, **kwargs: Any) -> FetchResult:
        self.calls["wait_and_fetch"] += 1
        return await super().wait_and_fetch(*args, **kwargs)

    async def settle(self, queue: str, outcomes: Sequence[Outcome]) -> list[bool]:
        self.calls["settle"] += 1
        return await super().settle(queue, outcomes)


def settings(**overrides: Any) -> PoolSettings:
    base: dict[str, Any] = {
        "concurrency": 8,
        "idle_block_s": 5.0,  # no idle timeouts inside the test: each wait is woken by a task
        "grace_s": 1.0,
        "heartbeat_s": 0.5,
        "metrics_interval_s": 0.5,
    }
    base.update(overrides)
    return PoolSettings(**base)


async def drained(broker: Broker) -> bool:
    st = await queue_stats(broker, Q)
    return st.pending + st.active + st.scheduled == 0


async def test_a_trickle_costs_one_fetch_round_trip_per_task(redis: Redis, prefix: str) -> None:
    # One task at a time into an idle worker: the wait wakes with the task already fetched
    # behind it. The worker used to fetch once more right after (always empty) before parking.
    broker = CountingBroker(redis, EngineConfig(prefix=prefix, lease_s=5.0))
    pool = WorkerPool(broker, settings(), registry=TaskRegistry())
    await pool.start()
    try:
        await wait_for(lambda: pool.fetcher.parked, what="the fetcher parked")
        before = Counter(broker.calls)
        for i in range(20):
            await broker.enqueue([TaskSpec("spool.noop", queue=Q)])
            await wait_for(lambda i=i: pool.counts["processed"] == i + 1, what=f"task {i} done")
        calls = broker.calls - before
    finally:
        await pool.stop()
    assert calls["wait_and_fetch"] <= 21, calls
    assert calls["fetch"] <= 1, calls  # was 20: one empty fetch after each task


async def test_frequent_arrivals_share_fetches_and_settles(redis: Redis, prefix: str) -> None:
    # Tasks arriving back to back (one enqueue call each, as fast as one connection goes):
    # with a linger of 200 ms each fetch and each settle carries many of them (long enough
    # that a slow, loaded machine still gathers several: 300 tasks within 12 s).
    broker = CountingBroker(redis, EngineConfig(prefix=prefix, lease_s=5.0))
    pool = WorkerPool(broker, settings(coalesce_s=0.2), registry=TaskRegistry())
    await pool.start()
    try:
        await wait_for(lambda: pool.fetcher.parked, what="the fetcher parked")
        before = Counter(broker.calls)
        for _ in range(300):
            await broker.enqueue([TaskSpec("spool.noop", queue=Q)])
        await wait_for(lambda: pool.counts["processed"] == 300, what="300 tasks done")
        await wait_for(lambda: drained(broker), what="queue drained")
        calls = broker.calls - before
    finally:
        await pool.stop()
    assert calls["fetch"] + calls["wait_and_fetch"] <= 60, calls
    assert calls["settle"] <= 60, calls
