"""engine.connection_pool against a real server: the quick pool's borrowing and waiting, and
`run_batch`'s replies, error replies, retries and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.connection_pool import QuickConnectionPool, run_batch
from engine.task import TaskSpec


async def _client_ids(redis: Redis, name: str) -> set[int]:
    """Ids of the server's clients named `name`."""
    return {int(c["id"]) for c in await redis.client_list() if c.get("name") == name}


@contextlib.asynccontextmanager
async def _client(
    redis_url: str, max_connections: int, pool_timeout_s: float
) -> AsyncIterator[tuple[Redis, QuickConnectionPool]]:
    """A client of `open_redis` with a small pool, and that pool; closed after."""
    client = await open_redis(
        redis_url, max_connections=max_connections, pool_timeout_s=pool_timeout_s
    )
    try:
        assert isinstance(client.connection_pool, QuickConnectionPool)
        yield client, client.connection_pool
    finally:
        await client.aclose()


async def test_an_idle_connection_is_lent_again_and_the_pool_stays_bounded(
    redis_url: str, prefix: str
) -> None:
    async with _client(redis_url, 2, 0.3) as (client, pool):
        for _ in range(50):
            await client.incr(f"{prefix}:n")
        assert len(pool._available_connections) + len(pool._in_use_connections) == 1

        first = await pool.get_connection()
        second = await pool.get_connection()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await pool.get_connection()  # both lent: redis-py's wait, then its timeout
        await pool.release(first)
        await pool.release(second)
        assert await client.get(f"{prefix}:n") == b"50"


async def test_a_caller_waiting_for_a_connection_gets_one_when_it_is_returned(
    redis_url: str, prefix: str
) -> None:
    async with _client(redis_url, 1, 5.0) as (client, pool):
        held = await pool.get_connection()
        waiter = asyncio.create_task(client.incr(f"{prefix}:n"))
        async with asyncio.timeout(5):
            while not pool._waiting:  # the incr is parked in redis-py's blocking borrow
                await asyncio.sleep(0.001)
        assert not waiter.done()
        await pool.release(held)
        assert await asyncio.wait_for(waiter, 5) == 1
        # More callers than connections, all served in the end.
        results = await asyncio.gather(*(client.incr(f"{prefix}:n") for _ in range(20)))
        assert sorted(results) == list(range(2, 22))
        assert pool._waiting == 0


async def test_run_batch_returns_replies_in_order_with_error_replies_in_place(
    redis: Redis, prefix: str
) -> None:
    key = f"{prefix}:list"
    replies = await run_batch(
        redis.connection_pool,
        [("RPUSH", key, "a", "b"), ("INCR", key), ("LRANGE", key, 0, -1), ("PING",)],
    )
    assert replies[0] == 2
    assert isinstance(replies[1], ResponseError)  # WRONGTYPE: the list is not a number
    assert replies[2] == [b"a", b"b"]
    assert replies[3] in (b"PONG", True)
    # The error reply was read whole: the next batch on the same connection is in step.
    assert await run_batch(redis.connection_pool, [("LLEN", key), ("ECHO", "x")]) == [2, b"x"]


async def test_run_batch_retries_the_batch_on_a_connection_the_server_dropped(
    redis: Redis, prefix: str
) -> None:
    pool = redis.connection_pool
    await run_batch(pool, [("CLIENT", "SETNAME", f"{prefix}-batch")])
    victims = await _client_ids(redis, f"{prefix}-batch")
    assert len(victims) == 1
    await redis.client_kill_filter(_id=victims.pop())
    # The pool still holds the killed connection: the batch fails on it, reconnects, replays.
    batch = [("SET", f"{prefix}:k", "v"), ("GET", f"{prefix}:k")]
    assert await run_batch(pool, batch) == [b"OK", b"v"]


async def test_a_cancelled_blocking_batch_leaves_no_stale_reply_behind(
    redis: Redis, prefix: str
) -> None:
    pool = redis.connection_pool
    wake = f"{prefix}:wake"
    parked = asyncio.create_task(run_batch(pool, [("BLPOP", wake, 5), ("ECHO", "late")]))
    async with asyncio.timeout(5):
        while b"cmd=blpop" not in await redis.execute_command("CLIENT", "LIST"):
            await asyncio.sleep(0.01)
    parked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parked
    async with asyncio.timeout(5):  # the server saw the connection close
        while b"cmd=blpop" in await redis.execute_command("CLIENT", "LIST"):
            await asyncio.sleep(0.01)
    await redis.lpush(wake, "token")
    # Had the cancelled connection gone back to the pool still parked, this batch would read
    # the BLPOP's reply (and the ECHO's) in place of its own.
    for _ in range(5):
        assert await run_batch(pool, [("ECHO", "mine")]) == [b"mine"]
    assert await redis.lrange(wake, 0, -1) == [b"token"]  # no one popped it


async def test_a_single_connection_clients_function_calls_stay_on_its_connection(
    redis: Redis, prefix: str
) -> None:
    # Durable enqueue's WAIT counts the writes of its one connection: the enqueue must be one.
    one = Redis(connection_pool=redis.connection_pool, single_connection_client=True)
    try:
        own_id = int(await one.execute_command("CLIENT", "ID"))
        await Broker(one, EngineConfig(prefix=prefix)).enqueue([TaskSpec("spool.noop", [])])
        clients = {int(c["id"]): c for c in await redis.client_list()}
        assert clients[own_id]["cmd"] == "fcall"
    finally:
        await one.aclose()


async def test_the_pool_stays_consistent_under_contention_and_cancellation(
    redis_url: str, prefix: str
) -> None:
    async with _client(redis_url, 4, 5.0) as (client, pool):
        key = f"{prefix}:n"

        async def caller(k: int) -> None:
            await run_batch(pool, [("INCR", key), ("BLPOP", f"{prefix}:never", 0.01 * (k % 3 + 1))])

        rounds = 0
        while rounds < 6:
            rounds += 1
            tasks = [asyncio.create_task(caller(k)) for k in range(40)]
            await asyncio.sleep(0.005 * rounds)
            for t in tasks[::3]:
                t.cancel()  # some mid-borrow, some mid-read, some waiting for a connection
            await asyncio.gather(*tasks, return_exceptions=True)
            assert not pool._in_use_connections and pool._waiting == 0
            assert len(pool._available_connections) <= 4
        # Every connection left is usable and in step.
        replies = await asyncio.gather(*(run_batch(pool, [("ECHO", str(k))]) for k in range(8)))
        assert replies == [[str(k).encode()] for k in range(8)]
        assert int(await client.get(key) or 0) > 0
