"""Whether this pool can reach Redis: one place that notes failures and recoveries."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("spool.worker")

# Errors that mean "Redis cannot be reached right now": retried with backoff, shown, never fatal.
# RuntimeError is uvloop's answer to a write on a transport closed under the connection (an RST,
# or engine.liveness closing a silent connection): uncaught, it ended a slot for good.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, RuntimeError)


class RedisHealth:
    """The outcome of the pool's latest Redis round trip (`ok`, `error`), logged on change."""

    def __init__(self) -> None:
        self.ok = True
        self.error: str | None = None

    def mark_ok(self) -> None:
        """A round trip worked."""
        if not self.ok:
            log.info("Redis reachable again")
        self.ok, self.error = True, None

    def mark_down(self, error: BaseException) -> None:
        """A round trip failed because Redis could not be reached."""
        if self.ok:
            log.warning("Redis unreachable (%s); retrying with backoff", type(error).__name__)
        self.ok = False
        self.error = f"{type(error).__name__}: {error}"
