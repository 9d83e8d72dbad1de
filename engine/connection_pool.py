"""A cheaper way to borrow redis-py connections: the pool, and one batch of commands on one.

redis-py's `BlockingConnectionPool` takes every command's connection under an
`asyncio.Condition` and a timeout, and records observability counters on the way in and out:
33-50 µs per borrow and return here (a plain `ConnectionPool` 15 µs), on a ~100 µs round trip.
`QuickConnectionPool` lends an idle connection at once, without that machinery, whenever no
caller is waiting for one; when the pool is exhausted (or redis-py is migrating connections
for a maintenance event) it is redis-py's pool, waiters and timeout included.

`run_batch` sends commands in one write on one borrowed connection and reads their replies,
without redis-py's `Pipeline` object (~60 µs more per round trip here) or its per-command
machinery (retry wrapper, observability hooks, response callbacks: ~5-10 µs a call). A
worker's settle + wait + fetch round trip is the wait of every task that arrives while it is
parked, and every function call of the engine (`engine.scripts`) goes through it on one
server; see "Connection cost" in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError


class QuickConnectionPool(BlockingConnectionPool):
    """`BlockingConnectionPool` with a fast path for borrowing an idle connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Callers inside redis-py's slow path (waiting for a connection): while there are
        # any, returns go through redis-py too, so its condition wakes them.
        self._waiting = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """An idle (or new, below `max_connections`) connection at once when no one waits;
        else redis-py's blocking borrow."""
        if self._waiting or self._migrating() or not self.can_get_connection():
            self._waiting += 1
            try:
                return await super().get_connection()  # type: ignore[no-any-return]
            finally:
                self._waiting -= 1
        connection = self.get_available_connection()
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection  # type: ignore[no-any-return]

    async def release(self, connection: AbstractConnection) -> None:
        """Return `connection`; through redis-py's path while someone waits for one."""
        if self._waiting or self._migrating():
            await super().release(connection)
            return
        self._in_use_connections.remove(connection)
        if connection.should_reconnect():
            await connection.disconnect()
        try:
            # What redis-py's release event does: a token a streaming credential provider
            # renewed meanwhile is sent now (a no-op otherwise), before anyone borrows it.
            await connection.re_auth()
        finally:
            self._available_connections.append(connection)

    def _migrating(self) -> bool:
        """redis-py (8.1 on) is moving connections for a server maintenance event: its locked
        path then."""
        return bool(getattr(self, "_in_maintenance", False))


def batch_pool(redis: Redis | RedisCluster) -> ConnectionPool | None:
    """The pool `run_batch` may borrow from for `redis`'s commands, or None: a Cluster client
    routes each command to its node itself, and a single-connection client's commands must
    stay on its one connection (durable enqueue's WAIT counts that connection's writes)."""
    if isinstance(redis, RedisCluster) or redis.single_connection_client:
        return None
    return redis.connection_pool


async def run_batch(pool: ConnectionPool, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send `commands` in one write on one connection of `pool` and return their replies in
    order; an error reply is returned in its place (as a pipeline with `raise_on_error=False`).

    A dropped connection or a timeout is retried by the connection's retry policy, the whole
    batch again, so callers send only batches that are safe to replay. Replies are the
    server's, without redis-py's per-command response callbacks.
    """
    connection = await pool.get_connection()
    try:
        packed = connection.pack_commands(commands)

        async def send_and_read() -> list[Any]:
            await connection.send_packed_command(packed)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:  # read whole: the connection stays in step
                    replies.append(error)
            return replies

        async def drop(_error: BaseException) -> None:
            await connection.disconnect()

        return await connection.retry.call_with_retry(send_and_read, drop)  # type: ignore[no-any-return]
    finally:
        await pool.release(connection)
