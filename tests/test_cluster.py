"""The engine on a real Redis Cluster: every script's keys in one slot, nothing cross-slot."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import RedisCluster
from support.polling import wait_for

from engine import dead, queues
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded_cluster import EmbeddedCluster
from engine.metrics.publisher import fetch_fleet_snapshot
from engine.outcomes import failed, succeeded
from engine.task import TaskRegistry, TaskSpec, TaskState
from engine.worker.pool import PoolSettings, WorkerPool
from engine.worker.registry import list_workers


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`SPOOL_TEST_CLUSTER_URL`, else a 3-node embedded Valkey cluster for this module."""
    url = os.environ.get("SPOOL_TEST_CLUSTER_URL")
    if url:
        yield url
        return
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest_asyncio.fixture
async def cluster(cluster_url: str) -> AsyncIterator[tuple[RedisCluster, str]]:
    """A cluster client and a unique prefix whose keys are deleted afterwards."""
    client = await open_redis(cluster_url)
    prefix = f"c-{uuid.uuid4().hex[:8]}"
    try:
        yield client, prefix  # type: ignore[misc]
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        for key in keys:
            await client.unlink(key)
        await client.aclose()


async def test_queue_keys_span_slots_and_scripts_work(cluster: tuple[RedisCluster, str]) -> None:
    redis, prefix = cluster
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=0.2))
    assert broker.cluster
    slots = {redis.keyslot(broker.keys(q).tasks) for q in ("a", "b", "c", "d", "e")}
    assert len(slots) > 1, "the test queues should land in different slots"
    ids = await broker.enqueue(
        [TaskSpec("x", args=[i], queue="a", priority=p) for i, p in enumerate(["low", "high"])]
    )
    got = await broker.fetch("a", 10, "w1")
    assert [t.args for t in got.tasks] == [[1], [0]]  # priority holds on a cluster too
    ok = await broker.settle(
        "a",
        [succeeded(got.tasks[0], 7, 0, 0), failed(got.tasks[1], ValueError("no"), broker.config)],
    )
    assert ok == [True, True]
    info = await queues.task_status(broker, ids[1])
    assert info is not None and info.state is TaskState.SUCCEEDED and info.result == 7
    # A lease that expires comes back through the reaper.
    await broker.enqueue([TaskSpec("y", queue="b")])
    leased = await broker.fetch("b", 1, "w1")
    assert len(leased.tasks) == 1

    async def reaped() -> bool:
        return (await broker.reap("b")).requeued == 1

    await wait_for(reaped)
    assert (await queues.queue_stats(broker, "b")).pending == 1


async def test_pool_drains_several_queues_and_dead_letters_requeue(
    cluster: tuple[RedisCluster, str],
) -> None:
    redis, prefix = cluster
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await broker.enqueue(
        [TaskSpec("spool.noop", queue=q) for q in ("a", "b", "c") for _ in range(300)]
    )
    await broker.enqueue([TaskSpec("spool.fail", queue="b", max_retries=0)])
    pool = WorkerPool(
        broker, PoolSettings(queues=("a", "b", "c"), concurrency=16), registry=TaskRegistry()
    )
    await pool.start()
    try:

        async def drained() -> bool:
            stats = [await queues.queue_stats(broker, q) for q in ("a", "b", "c")]
            return (
                all(s.pending == 0 and s.active == 0 for s in stats)
                and pool.counts["processed"] == 901
            )

        await wait_for(drained)
        assert pool.counts["succeeded"] == 900 and pool.counts["dead"] == 1
        await pool.publisher.publish_once()
        fleet = await fetch_fleet_snapshot(redis, prefix)
        assert fleet is not None and fleet.counter("succeeded") == 900
        assert [w.id for w in await list_workers(redis, prefix)] == [pool.worker_id]
        groups = await dead.dead_groups(broker)
        assert [(g.count, g.queues) for g in groups] == [(1, ("b",))]
        assert await dead.requeue_matching(broker, dead.DeadFilter()) == 1
    finally:
        await pool.stop(grace_s=1)


async def test_flow_control_scripts_stay_in_the_queue_slot(
    cluster: tuple[RedisCluster, str],
) -> None:
    from engine import flow
    from engine.task import task

    redis, prefix = cluster
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=0.2))
    assert len({redis.keyslot(k) for k in broker.keys("f").flow_keys}) == 1
    reg = TaskRegistry()

    @task(name="one", concurrency=1, rate_limit="1000/s", registry=reg)
    async def one() -> None:
        return None

    await flow.publish_limits(broker, ["f"], reg)
    await flow.set_max_wait(broker, "f", 30)
    first, again = await broker.enqueue(
        [TaskSpec("one", queue="f", unique_for=60), TaskSpec("one", queue="f", unique_for=60)]
    )
    await broker.enqueue([TaskSpec("one", queue="f")])
    assert first == again
    (running,) = (await broker.fetch("f", 10, "w")).tasks  # the other one is parked
    assert await broker.settle("f", [succeeded(running, None, 0, 0)]) == [True]
    await wait_for(lambda: _fetch_one(broker))
    await wait_for(lambda: _reaped(broker))  # the lease expires and frees the slot
    state = await flow.queue_flow(broker, "f")
    assert state.running_limited == {} and state.waiting_concurrency == 0


async def _reaped(broker: Broker) -> bool:
    return (await broker.reap("f")).requeued == 1


async def _fetch_one(broker: Broker) -> bool:
    return len((await broker.fetch("f", 10, "w")).tasks) == 1


async def test_an_idle_worker_on_several_queues_wakes_for_any_of_them(
    cluster: tuple[RedisCluster, str],
) -> None:
    # Each queue's wake key is in another slot. With a 6 s idle wait taken in turns (2 s per
    # key), a task on a queue whose key was not being watched waited seconds; one watcher per
    # queue sees every queue at once.
    import time

    redis, prefix = cluster
    broker = Broker(redis, EngineConfig(prefix=prefix))
    qs = ("wa", "wb", "wc")
    assert len({redis.keyslot(broker.keys(q).wake) for q in qs}) > 1
    pool = WorkerPool(
        broker,
        PoolSettings(queues=qs, concurrency=4, idle_block_s=6.0),
        registry=TaskRegistry(),
    )
    await pool.start()
    try:
        await wait_for(lambda: pool.fetcher.parked, what="the fetcher parked")
        for round_, q in enumerate(("wc", "wb", "wa", "wc", "wb")):
            started = time.monotonic()
            await broker.enqueue([TaskSpec("spool.noop", queue=q)])

            async def done(n: int = round_ + 1) -> bool:
                return pool.counts["succeeded"] >= n

            await wait_for(done, 10.0, f"the task on {q}")
            took = time.monotonic() - started
            assert took < 1.5, f"a task on {q} waited {took:.2f} s for an idle worker"
    finally:
        await pool.stop(grace_s=1)
