"""A fetch whose reply is lost (the server leased the tasks, the worker never heard): the next
fetch, or redis-py's own retry, gets those tasks back instead of leaving their leases to expire
as if a worker had died running them (three such expiries would dead-letter a healthy task as
`crash_loop`)."""

from __future__ import annotations

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded import EmbeddedServer
from engine.queues import queue_stats
from engine.task import TaskSpec
from faults.proxy import FaultProxy

Q = "default"


async def test_the_fetch_after_a_lost_reply_returns_its_tasks(
    aof_server: EmbeddedServer, proxy: FaultProxy
) -> None:
    direct = await open_redis(aof_server.url)
    via_proxy = await open_redis(proxy.url, retries=0, socket_timeout_s=0.5)
    config = EngineConfig(prefix="fault-lost-fetch")
    producer, worker = Broker(direct, config), Broker(via_proxy, config)
    try:
        ids = await producer.enqueue([TaskSpec("spool.noop") for _ in range(5)])
        assert (await worker.fetch("other", 1, "w1")).tasks == []  # the script is loaded
        proxy.lose_replies()
        try:
            await worker.fetch(Q, 3, "w1")
        except Exception:  # the reply never came: a timeout, as on a failed path
            pass
        else:
            raise AssertionError("a fetch whose reply is lost cannot succeed")
        proxy.pass_through()
        proxy.reset()  # the connection that lost its reply is gone
        assert (await queue_stats(producer, Q)).active == 3  # leased, though nobody knows it
        res = await worker.fetch(Q, 5, "w1")
        assert sorted(t.id for t in res.tasks) == sorted(ids)  # the 3 lost ones and 2 more
        assert all(t.attempt == 1 for t in res.tasks)  # no delivery ended: none counted
        stats = await queue_stats(producer, Q)
        assert (stats.active, stats.pending) == (5, 0)
    finally:
        proxy.pass_through()
        await via_proxy.aclose()
        await direct.aclose()


async def test_a_retried_fetch_script_returns_what_its_first_run_leased(
    aof_server: EmbeddedServer,
) -> None:
    redis = await open_redis(aof_server.url)
    broker = Broker(redis, EngineConfig(prefix="fault-lost-fetch"))
    try:
        ids = await broker.enqueue([TaskSpec("spool.noop") for _ in range(4)])
        keys = broker.keys(Q)
        token, argv = broker._fetch_argv(Q, 2, "w1", None)
        mark = [keys.fetch_mark(token)]
        # What redis-py does after a dropped connection: the same call again.
        await broker.scripts.run("fetch", keys, argv, mark)  # this reply is "lost"
        again = await broker.scripts.run("fetch", keys, argv, mark)
        got = [raw.decode() for raw in again[4 :: int(again[3])]]  # ids; see fetch.lua
        assert len(got) == 2 and set(got) <= set(ids)  # the first run's 2, nothing more
        assert (await queue_stats(broker, Q)).active == 2
    finally:
        await redis.aclose()
