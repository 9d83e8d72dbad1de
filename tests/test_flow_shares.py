"""Weighted queues and max_wait with real worker processes; the weighted split itself."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from support.polling import wait_for
from support.workers import Procs, stop_all

from engine.broker import Broker
from engine.config import EngineConfig
from engine.queues import queue_stats
from engine.task import TaskSpec
from engine.worker.weights import WeightedSplit, split_weights

TASKS = ("--tasks", "tests.workers_support.flow_tasks")


def test_split_follows_weights_one_slot_at_a_time_and_in_batches() -> None:
    one = WeightedSplit([3, 1])
    picks = [one.split(1) for _ in range(400)]
    assert sum(p[0] for p in picks) == 300 and sum(p[1] for p in picks) == 100
    assert picks[:4] == [[1, 0], [1, 0], [0, 1], [1, 0]]  # smooth, not 3 then 1 in bursts
    batch = WeightedSplit([3, 1, 1])
    totals = [0, 0, 0]
    for room in (7, 1, 64, 3, 9) * 20:
        for i, n in enumerate(batch.split(room)):
            totals[i] += n
    assert sum(totals) == 84 * 20
    assert abs(totals[0] / sum(totals) - 0.6) < 0.01


def test_queue_weights_parse() -> None:
    assert split_weights(["images:3", "mail", "a:b:2"]) == (("images", "mail", "a:b"), (3, 1, 2))
    for bad in (["a:0"], ["a", "a:2"]):
        with pytest.raises(ValueError):
            split_weights(bad)


async def test_three_processes_share_two_queues_three_to_one(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=2.0))
    log = f"{prefix}:t:shares"
    # At 3:1 both queues would run dry together; the share is read over the first half.
    await broker.enqueue(
        [TaskSpec("wf.weighted", args=[log, "images", 5], queue="images") for _ in range(3000)]
    )
    await broker.enqueue(
        [TaskSpec("wf.weighted", args=[log, "mail", 5], queue="mail") for _ in range(1000)]
    )
    for _ in range(3):
        procs.start(*TASKS, "--queue", "images:3", "--queue", "mail:1", "--concurrency", "4")
    await wait_for(lambda: _len_at_least(redis, log, 2000), 30, "2,000 tasks done")
    first = [x.decode() for x in await redis.lrange(log, 0, 1999)]
    share = first.count("images") / len(first)
    print(f"weights 3:1, 3 processes: images share {share:.3f} (ideal 0.750)")
    assert 0.675 <= share <= 0.825
    # mail's tasks are gone first or last; either way the other queue takes the whole worker.
    await wait_for(lambda: _len_at_least(redis, log, 4000), 30, "everything done")
    await stop_all(procs.started)


async def _len_at_least(redis: Redis, key: str, n: int) -> bool:
    return await redis.llen(key) >= n


async def test_max_wait_serves_an_old_low_task_before_newer_high_ones(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=2.0))
    log = f"{prefix}:t:order"

    def high(n: int) -> list[TaskSpec]:
        return [TaskSpec("wf.weighted", args=[log, "high", 10], priority="high") for _ in range(n)]

    # 1 slot, ~10 ms a task, and high tasks keep arriving faster than that: under strict
    # priority the low task would wait until the stream stops.
    procs.start(*TASKS, "--concurrency", "1", "--max-wait", "0.5")
    await broker.enqueue(high(30))
    await wait_for(lambda: _len_at_least(redis, log, 1), 20, "the worker to start")
    await broker.enqueue([TaskSpec("wf.weighted", args=[log, "low", 0], priority="low")])
    t0 = time.monotonic()
    waited = None
    while time.monotonic() - t0 < 5:
        await broker.enqueue(high(10))  # ~100 ms of work every 50 ms
        if b"low" in await redis.lrange(log, -20, -1):
            waited = time.monotonic() - t0
            break
        await asyncio.sleep(0.05)
    assert waited is not None, "the low task never ran while high ones kept coming"
    pending_high = (await queue_stats(broker, "default")).depth_by_level["high"]
    print(f"max_wait 0.5 s: the low task ran after {waited:.2f} s, {pending_high} high waiting")
    assert 0.45 <= waited <= 2.0 and pending_high > 0
    await stop_all(procs.started)
