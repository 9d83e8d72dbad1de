"""Batches beyond what one script call can unpack, and settles that cannot be written in time.

Lua's `unpack` fails beyond ~8,000 values, and a script error after a write leaves that write
in place. These tests use sizes past that limit (fetch 5,000, settle 9,000) and count where
every task ended up: lost must be 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from support.polling import wait_for

from engine.broker import BATCH_MAX, Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.metrics.recorder import MetricsRecorder
from engine.outcomes import succeeded
from engine.queues import queue_stats, task_status
from engine.task import TaskRegistry, TaskSpec, TaskState, task
from engine.worker.health import RedisHealth
from engine.worker.leases import Leases
from engine.worker.pool import PoolSettings, WorkerPool
from engine.worker.settler import Settler

Q = "default"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


async def enqueue_noops(broker: Broker, n: int) -> list[str]:
    return await broker.enqueue([TaskSpec(name="spool.noop", queue=Q) for _ in range(n)])


async def test_fetch_of_5000_leases_all_of_them(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    ids = await enqueue_noops(broker, 5000)  # more than one enqueue call's worth too
    assert len(set(ids)) == 5000 > BATCH_MAX
    res = await broker.fetch(Q, 5000, "w1")
    assert sorted(t.id for t in res.tasks) == sorted(ids)
    stats = await queue_stats(broker, Q)
    # Every task is in exactly one place: leased, none pending, none in no list at all.
    assert (stats.active, stats.pending) == (5000, 0)
    assert all(t.attempt == 1 for t in res.tasks)


async def test_settle_of_9000_outcomes_writes_them_all(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    ids = await enqueue_noops(broker, 9000)
    tasks = (await broker.fetch(Q, 9000, "w1")).tasks
    assert len(tasks) == 9000
    now = int(time.time() * 1000)
    flags = await broker.settle(Q, [succeeded(t, i, now, now) for i, t in enumerate(tasks)])
    assert flags == [True] * 9000
    stats = await queue_stats(broker, Q)
    assert (stats.active, stats.pending, stats.late_rejected) == (0, 0, 0)
    for tid in (ids[0], ids[4500], ids[-1]):
        info = await task_status(broker, tid, Q)
        assert info is not None and info.state is TaskState.SUCCEEDED


async def test_settler_writes_a_9000_outcome_backlog_in_capped_calls(
    redis: Redis, prefix: str
) -> None:
    """What piles up after an outage: the settler writes it in calls of BATCH_MAX."""
    broker = make_broker(redis, prefix)
    await enqueue_noops(broker, 9000)
    tasks = (await broker.fetch(Q, 9000, "w1")).tasks
    leases = Leases(broker)
    settler = Settler(broker, leases, RedisHealth(), MetricsRecorder("w1"))
    now = time.time()
    for t in tasks:
        leases.inflight[t.id] = t
        settler.add(succeeded(t, None, int(now * 1000), int(now * 1000)), now, now)
    assert await settler.drain(timeout_s=60)
    assert settler.counts["processed"] == 9000 and settler.counts["given_up"] == 0
    assert not leases.inflight
    assert (await queue_stats(broker, Q)).active == 0


async def test_a_malformed_settle_item_fails_before_any_write(redis: Redis, prefix: str) -> None:
    """Checks come before the first write: the good item in the same call is not applied."""
    broker = make_broker(redis, prefix)
    await enqueue_noops(broker, 1)
    t = (await broker.fetch(Q, 1, "w1")).tasks[0]
    keys = broker.keys(Q)
    good = b"s%s\n%s\n0\nnull" % (t.id.encode(), t.token.encode())
    try:
        await broker.scripts.run(
            "settle", keys, [60_000, 10, 60_000, good, b"garbage"], [keys.result(t.id)] * 2
        )
    except Exception as exc:  # the script's error reply
        assert "malformed item 2" in str(exc)
    else:
        raise AssertionError("a malformed item was accepted")
    stats = await queue_stats(broker, Q)
    assert stats.active == 1  # the good item was not half-applied
    assert (await broker.settle(Q, [succeeded(t, 1, 0, 0)])) == [True]


@pytest.mark.parametrize(
    "bad",
    [b"", b"garbage", b"-default\n0\nid-only", b"-nosuchlevel\n0\nx\n{}", b"-default\nsoon\nx\n{}"],
)
async def test_a_malformed_enqueue_item_stores_nothing(
    redis: Redis, prefix: str, bad: bytes
) -> None:
    """An item with a missing field, an unknown level or a non-numeric delay fails the call
    before any write: the good item beside it is not stored."""
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    good = b"-default\n0\ngood-id\n{}"
    with pytest.raises(ResponseError, match="malformed item 2"):
        await broker.scripts.run("enqueue", keys, [64, good, bad], [])
    assert await redis.hlen(keys.tasks) == 0
    assert (await queue_stats(broker, Q)).pending == 0


@pytest.mark.parametrize("bad", [b"", b"\n\n\n", b"sid\ntoken\n0", b"sid\ntoken\nlater\nnull"])
async def test_malformed_settle_items_are_refused(redis: Redis, prefix: str, bad: bytes) -> None:
    """Missing fields, an empty kind and id, or a non-numeric delay: a clear error, no write."""
    broker = make_broker(redis, prefix)
    keys = broker.keys(Q)
    with pytest.raises(ResponseError, match="malformed item 1"):
        await broker.scripts.run("settle", keys, [60_000, 10, 60_000, bad], [keys.result("id")])


def _gated_pool(broker: Broker) -> tuple[WorkerPool, asyncio.Event, list[int]]:
    """A pool (2 slots, 0.2 s ticks) whose `gated` handler notes its run, then awaits the gate."""
    gate, runs = asyncio.Event(), []
    reg = TaskRegistry()

    @task(name="gated", registry=reg)
    async def gated() -> int:
        runs.append(1)
        await gate.wait()
        return len(runs)

    settings = PoolSettings(
        concurrency=2, idle_block_s=0.2, heartbeat_s=0.2, metrics_interval_s=0.2
    )
    return WorkerPool(broker, settings, registry=reg), gate, runs


async def _pause_writes(redis: Redis, seconds: float) -> None:
    # CLIENT PAUSE WRITE stalls every script call (they may write) while reads go on: a
    # server that accepts connections but cannot take a write, from the worker's side.
    await redis.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")


@asynccontextmanager
async def private_server(factory: Callable[..., Any]) -> AsyncIterator[Redis]:
    """A server of the test's own: pausing writes must not stall other tests' server."""
    redis = await open_redis(factory().url)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_a_settle_not_written_within_its_lease_is_given_up_and_reaped(
    embedded_server_factory: Callable[..., Any], prefix: str
) -> None:
    async with private_server(embedded_server_factory) as redis:
        await _given_up_and_reaped(redis, prefix)


async def _given_up_and_reaped(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, lease_s=1.0)
    pool, gate, runs = _gated_pool(broker)
    await pool.start()
    try:
        tid = (await broker.enqueue([TaskSpec(name="gated", queue=Q)]))[0]
        await wait_for(lambda: runs, what="the handler started")
        await _pause_writes(redis, 30)
        try:
            gate.set()  # the handler returns; its outcome cannot be written
            await wait_for(lambda: pool.snapshot().given_up == 1, 10, "settle given up")
            assert pool.counts["processed"] == 0
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
        # No longer renewed, the lease expires; the reaper brings the task back to run again.
        info = await wait_for(
            lambda: _succeeded(broker, tid), 15, "the given-up task ran again and succeeded"
        )
        assert info.attempts == 2 and len(runs) == 2
        assert pool.snapshot().given_up == 1 and pool.counts["processed"] == 1
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await pool.stop(grace_s=1.0)


async def test_stop_is_bounded_while_outcomes_cannot_be_written(
    embedded_server_factory: Callable[..., Any], prefix: str
) -> None:
    async with private_server(embedded_server_factory) as redis:
        await _stop_bounded(redis, prefix)


async def _stop_bounded(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, lease_s=60.0)  # no give-up by lease before the stop
    pool, gate, runs = _gated_pool(broker)
    await pool.start()
    tid = (await broker.enqueue([TaskSpec(name="gated", queue=Q)]))[0]
    await wait_for(lambda: runs, what="the handler started")
    await _pause_writes(redis, 60)
    try:
        gate.set()
        await asyncio.sleep(0.1)  # let the flusher take the outcome (it then blocks)
        started = time.monotonic()
        await pool.stop(grace_s=0.5)
        took = time.monotonic() - started
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    print(f"\nstop() with writes paused took {took:.1f} s (grace 0.5 s)")
    # Bounded by grace + 5 s (pool.py _DRAIN_EXTRA_S) plus scheduling slack, not the 60 s pause.
    assert took < 0.5 + 5.0 + 1.5
    assert pool.counts["given_up"] == 1
    info = await task_status(broker, tid, Q)
    assert info is not None and info.state is TaskState.ACTIVE  # its lease brings it back


async def _succeeded(broker: Broker, tid: str) -> Any:
    info = await task_status(broker, tid, Q)
    return info if info is not None and info.state is TaskState.SUCCEEDED else None
