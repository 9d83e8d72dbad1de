"""Fleet registry (heartbeats, stale records) and a pool riding out a Redis restart."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from support.polling import wait_for

from engine import __version__, codec
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded import EmbeddedServer
from engine.keys import GlobalKeys
from engine.queues import task_status
from engine.task import TaskRegistry, TaskSpec, TaskState
from engine.worker import registry
from engine.worker.pool import PoolSettings, WorkerPool


def settings(**kw: Any) -> PoolSettings:
    base: dict[str, Any] = {
        "queues": ("alpha", "beta"),
        "concurrency": 7,
        "idle_block_s": 0.2,
        "heartbeat_s": 0.1,
        "metrics_interval_s": 0.2,
    }
    base.update(kw)
    return PoolSettings(**base)


async def test_running_pool_is_listed_then_removed_on_stop(redis: Redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=1.0))
    pool = WorkerPool(broker, settings(), registry=TaskRegistry())
    await pool.start()
    try:
        workers = await wait_for(lambda: registry.list_workers(redis, prefix), what="listed")
        (rec,) = workers
        assert rec.id == pool.worker_id
        assert (rec.host, rec.pid) == (socket.gethostname(), os.getpid())
        assert rec.queues == ("alpha", "beta") and rec.concurrency == 7 and rec.pinned
        assert rec.version == __version__ and rec.in_flight == 0
        first_seen = rec.last_seen_s
        # Heartbeats keep it fresh and carry the counters.
        await broker.enqueue([TaskSpec("spool.noop", queue="beta") for _ in range(5)])
        await wait_for(
            lambda: _processed(redis, prefix, 5), what="processed count in the heartbeat"
        )
        (rec,) = await registry.list_workers(redis, prefix)
        assert rec.last_seen_s > first_seen and rec.uptime_s >= 0
    finally:
        await pool.stop(grace_s=1)
    assert await registry.list_workers(redis, prefix) == []
    assert not await redis.exists(GlobalKeys(prefix).workers)


async def _processed(redis: Redis, prefix: str, n: int) -> bool:
    workers = await registry.list_workers(redis, prefix)
    return bool(workers) and workers[0].processed == n


def _record(wid: str, last_seen: float) -> registry.WorkerRecord:
    return registry.WorkerRecord(
        id=wid, host="h", pid=1, queues=("default",), concurrency=5, in_flight=0, processed=0,
        failed=0, started_at_s=last_seen - 100, last_seen_s=last_seen, version="x",
    )  # fmt: skip


async def _seed_fleet(redis: Redis, keys: GlobalKeys, now: float) -> None:
    """A fresh record, one a SIGKILLed process left behind, and an unreadable one."""
    for wid, seen in (("fresh", now - 1), ("stale", now - 60)):
        await redis.hset(keys.workers, wid, codec.dumps(_record(wid, seen).to_dict()))
    await redis.hset(keys.workers, "corrupt", b"{not json")


async def test_reading_the_fleet_never_writes(redis: Redis, prefix: str) -> None:
    """`--read-only` consoles, diagnosis and GET /v1/workers list the fleet: no write."""
    keys = GlobalKeys(prefix)
    now = time.time()
    await _seed_fleet(redis, keys, now)
    before = await redis.hgetall(keys.workers)
    live = await registry.list_workers(redis, prefix, stale_after_s=15, now_s=now)
    assert [r.id for r in live] == ["fresh"]
    assert await redis.hgetall(keys.workers) == before
    assert await redis.pttl(keys.workers) == -1


async def test_heartbeats_drop_stale_and_corrupt_records(redis: Redis, prefix: str) -> None:
    keys = GlobalKeys(prefix)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    now = time.time()
    await _seed_fleet(redis, keys, now)
    assert await registry.heartbeat(broker, _record("me", now), stale_after_s=15) == 2
    assert sorted(await redis.hkeys(keys.workers)) == [b"fresh", b"me"]
    # The hash outlives the last heartbeat by the staleness window: with no worker left to
    # prune, it expires once every record in it is stale.
    assert 0 < await redis.pttl(keys.workers) <= 15_000
    # Later, "fresh" has gone stale as well; "me" heartbeats on.
    assert await registry.heartbeat(broker, _record("me", now + 30), stale_after_s=15) == 1
    assert await redis.hkeys(keys.workers) == [b"me"]
    assert [r.id for r in await registry.list_workers(redis, prefix, now_s=now + 30)] == ["me"]


async def test_heartbeats_find_stale_records_through_the_seen_index(
    redis: Redis, prefix: str
) -> None:
    """Every heartbeat files its worker in the seen index; a worker that stops heartbeating is
    dropped from both keys by the others' heartbeats, and both keys expire with the fleet."""
    keys = GlobalKeys(prefix)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    now = time.time()
    for worker in ("a", "b", "c"):
        assert await registry.heartbeat(broker, _record(worker, now), stale_after_s=15) == 0
    assert await redis.zrange(keys.workers_seen, 0, -1) == [b"a", b"b", b"c"]
    assert await registry.heartbeat(broker, _record("a", now + 20), stale_after_s=15) == 2
    assert await redis.hkeys(keys.workers) == [b"a"]
    assert await redis.zrange(keys.workers_seen, 0, -1, withscores=True) == [
        (b"a", float(int((now + 20) * 1000)))
    ]
    assert 0 < await redis.pttl(keys.workers_seen) <= 15_000
    # A record the index does not know (written by an older version) is still pruned.
    await redis.hset(keys.workers, "old", codec.dumps(_record("old", now).to_dict()))
    assert await registry.heartbeat(broker, _record("a", now + 21), stale_after_s=15) == 1
    assert await redis.hkeys(keys.workers) == [b"a"]


async def test_pool_survives_redis_restart(
    embedded_server_factory: Callable[..., EmbeddedServer], prefix: str
) -> None:
    server = embedded_server_factory()
    redis = await open_redis(server.url)
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=1.0, backoff_base_s=0.01))
    pool = WorkerPool(broker, settings(queues=("default",), concurrency=4), registry=TaskRegistry())
    await pool.start()
    try:
        before = (await broker.enqueue([TaskSpec("spool.noop")]))[0]
        await wait_for(lambda: pool.counts["succeeded"] == 1, what="first task")
        await asyncio.to_thread(server.stop)
        await wait_for(lambda: not pool.snapshot().redis_ok, what="redis_ok False")
        snap = pool.snapshot()
        assert snap.running and snap.redis_error
        await asyncio.sleep(0.3)  # a few failed rounds while down; nothing crashes
        await asyncio.to_thread(server.restart)
        await wait_for(lambda: pool.snapshot().redis_ok, 15, "redis_ok True again")
        # The server came back empty (no persistence): new work still flows.
        ids = await broker.enqueue([TaskSpec("spool.noop") for _ in range(20)])
        await wait_for(lambda: pool.counts["succeeded"] == 21, 15, "tasks after the restart")
        for tid in ids:
            info = await task_status(broker, tid, "default")
            assert info is not None and info.state is TaskState.SUCCEEDED
        assert pool.snapshot().running and before
    finally:
        await pool.stop(grace_s=1)
        await redis.aclose()
