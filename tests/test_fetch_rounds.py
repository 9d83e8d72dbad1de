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

    async def settle_and_wait(
        self, *args: Any, **kwargs: Any
    ) -> tuple[list[bool] | Exception, FetchResult]:
        self.calls["settle_and_wait"] += 1
        return await super().settle_and_wait(*args, **kwargs)


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


async def test_a_trickle_costs_one_round_trip_per_task(redis: Redis, prefix: str) -> None:
    # One task at a time into an idle worker: the wait wakes with the task already fetched
    # behind it, and the task's outcome rides ahead of the next wait. The worker used to fetch
    # once more right after (always empty) before parking, and settled on its own.
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
    # Each task: a wait that fetches it, then a wait its outcome rides ahead of (ending after
    # a short block: the count above needs its reply).
    assert calls["wait_and_fetch"] + calls["settle_and_wait"] <= 42, calls
    assert calls["settle_and_wait"] >= 18, calls
    assert calls["fetch"] <= 1, calls  # was 20: one empty fetch after each task
    assert calls["settle"] <= 2, calls  # was 20
    assert pool.counts["succeeded"] == 20 and pool.counts["late"] == 0


async def test_an_outcome_that_rode_and_failed_is_settled_again(redis: Redis, prefix: str) -> None:
    # The server lost its scripts (FUNCTION FLUSH, as after a restart): the settle riding ahead
    # of the wait fails (no such function), and the settler writes the outcome the ordinary way.
    broker = CountingBroker(redis, EngineConfig(prefix=prefix, lease_s=5.0))
    pool = WorkerPool(broker, settings(), registry=TaskRegistry())
    await pool.start()
    try:
        await broker.enqueue([TaskSpec("spool.noop", queue=Q)])
        await wait_for(lambda: pool.counts["processed"] == 1, what="first task done")
        await wait_for(lambda: pool.fetcher.parked, what="the fetcher parked")
        await redis.function_flush()
        for i in range(2, 6):
            await broker.enqueue([TaskSpec("spool.noop", queue=Q)])
            await wait_for(lambda i=i: pool.counts["processed"] == i, what=f"task {i} done")
            if i == 2:
                await redis.function_flush()
        await wait_for(lambda: drained(broker), what="queue drained")
    finally:
        await pool.stop()
    assert pool.counts["succeeded"] == 5
    assert pool.counts["late"] == 0 and pool.counts["given_up"] == 0
    assert broker.calls["settle"] >= 1, broker.calls  # a rider came back and was written


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
