"""A fail-fast Redis client for the HTTP path, derived from the engine's client.

The worker's client retries with backoff and waits seconds for a connection, which is right
for a worker but wrong for a request: a producer would rather get a 503 at once and retry
itself. This client reaches the same server (host or socket, TLS, credentials, db) with one
retry, no backoff and short timeouts, from a pool of its own so HTTP load cannot starve the
worker's connections either.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.connection import pool_settings
from engine.connection_pool import QuickConnectionPool


def fail_fast_client(
    redis: Redis,
    *,
    max_connections: int = 32,
    retries: int = 1,
    socket_timeout_s: float = 5.0,
    connect_timeout_s: float = 1.0,
    pool_timeout_s: float = 2.0,
) -> Redis | None:
    """A new client on `redis`'s server with fail-fast settings, or None when `redis` has no
    standard connection pool to copy (a test double): then callers keep using `redis`.

    One retry is safe for every HTTP operation: enqueue carries its ids (a replay is a no-op),
    and requeue, delete, pause and reads are idempotent.
    """
    settings = pool_settings(redis)
    if settings is None:
        return None
    connection_class, copied = settings
    copied.update(
        # Only a refused or broken connection is retried: after a timeout the server may be
        # hung, and the request's deadline (engine.http.deadline) is better spent answering.
        retry=Retry(NoBackoff(), retries, supported_errors=(RedisConnectionError,)),
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
    )
    new_pool = QuickConnectionPool(
        connection_class=connection_class,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        **copied,
    )
    return Redis.from_pool(new_pool)


def redis_password(redis: Redis) -> str | None:
    """The password `redis` connects with, so logs can scrub it; None when there is none."""
    kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", None)
    password = kwargs.get("password") if isinstance(kwargs, dict) else None
    return password if isinstance(password, str) and password else None
