"""Notice a Redis connection that went silent, and replace the connections that hang on it.

When a NAT, a firewall, a load balancer or a failover forgets a connection, no FIN or RST
arrives: a command in flight (a worker's BLPOP) waits for a reply that never comes. Kernel
keepalive notices after minutes at best, a socket timeout only after the longest legitimate
wait. `RedisLiveness` PINGs the server every second on a connection of its own with a short
timeout. When no PING has come back for `dead_after_s`, it marks Redis unreachable and closes
every connection of the watched client, in use or not, which wakes whatever waits on them;
redis-py reconnects on the next command. While the silence lasts it repeats that every
`dead_after_s`; when a PING comes back it closes them once more (connections made during the
outage may be dead ends too) and marks Redis reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from engine.connection import pool_settings, raise_if_cancelling

log = logging.getLogger("spool.liveness")

#: A change of health: (reachable, error text or None).
HealthListener = Callable[[bool, str | None], None]


class RedisLiveness:
    """Watches the server behind `redis` and resets its connections after `dead_after_s` of
    silence; see the module docstring. `healthy`, `error` and `drops` are for status displays.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        probe_every_s: float = 1.0,
        probe_timeout_s: float = 1.0,
        dead_after_s: float = 3.0,
        on_change: HealthListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self.dead_after_s = dead_after_s
        self.healthy = True
        self.error: str | None = None
        self.drops = 0
        self._on_change = on_change
        self._clock = clock
        self._probe = _probe_client(redis, probe_timeout_s)
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """False for clients without one connection pool to watch (Redis Cluster)."""
        return self._probe is not None

    def start(self) -> None:
        """Start probing in the background (no-op when not `enabled`)."""
        if self._probe is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="spool-liveness")

    async def stop(self) -> None:
        """Stop probing and close the probe's connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self.probe_timeout_s * 2)
            self._task = None
        if self._probe is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._probe.aclose()

    async def _run(self) -> None:
        last_ok = last_drop = self._clock()
        while True:
            started = self._clock()
            error = await self._ping()
            now = self._clock()
            if error is None:
                last_ok = now
                if not self.healthy:
                    # Connections opened during the outage may lead nowhere as well.
                    await self._drop_connections()
                    self._set(True, None)
                    log.info("Redis answers again; connections reopened")
            elif now - last_ok >= self.dead_after_s and now - last_drop >= self.dead_after_s:
                if self.healthy:
                    log.warning(
                        "Redis silent for %.1f s (%s); closing its connections to reopen them",
                        now - last_ok,
                        error,
                    )
                self._set(False, f"no reply for {now - last_ok:.0f} s ({error})")
                await self._drop_connections()
                last_drop = now
            elif not self.healthy:
                self._set(False, f"no reply for {now - last_ok:.0f} s ({error})")
            raise_if_cancelling()
            await asyncio.sleep(max(0.0, self.probe_every_s - (self._clock() - started)))

    async def _ping(self) -> str | None:
        """None when the PING came back in time, else what went wrong."""
        probe = self._probe
        assert probe is not None
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                await probe.ping()
        except Exception as exc:
            # Not only RedisError: uvloop raises RuntimeError writing to a transport closed
            # under it. The probe's connection is in an unknown state now: start afresh.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.probe_timeout_s):
                    await probe.connection_pool.disconnect(inuse_connections=True)
            return type(exc).__name__ if isinstance(exc, TimeoutError) else f"{exc}"
        return None

    async def _drop_connections(self) -> None:
        self.drops += 1
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.probe_timeout_s):
                await self.redis.connection_pool.disconnect(inuse_connections=True)

    def _set(self, healthy: bool, error: str | None) -> None:
        changed = healthy != self.healthy or error != self.error
        self.healthy, self.error = healthy, error
        if changed and self._on_change is not None:
            self._on_change(healthy, error)


def _probe_client(redis: Redis, timeout_s: float) -> Redis | None:
    """A one-connection client on `redis`'s server (same address, TLS, credentials), with no
    retries and `timeout_s` for connect and read; None when `redis` has no pool to copy."""
    settings = pool_settings(redis)
    if settings is None:
        return None
    connection_class, copied = settings
    copied.update(
        retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=0,
    )
    return Redis.from_pool(
        ConnectionPool(connection_class=connection_class, max_connections=1, **copied)
    )
