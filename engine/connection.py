"""Opening Redis connections: bounded pools, retries with backoff, masked URLs."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.connection_pool import QuickConnectionPool
from engine.resp import fast_packing
from engine.sentinel import is_sentinel_url, sentinel_client

__all__ = [
    "RedisUnavailable",
    "mask_url",
    "open_redis",
    "wait_for_redis",
]

logger = logging.getLogger(__name__)

_MASK = "***"


# Kernel keepalive: first probe after 10 s idle, then every 5 s, dead after 3 misses (~25 s)
# instead of the kernel's default of over two hours. Options missing on a platform are skipped.
_KEEPALIVE = {
    name: value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


# Keys a pool adds to its connection kwargs for its own bookkeeping; a new pool makes its own.
_POOL_OWNED = ("maint_notifications_pool_handler", "himport_registry")


def pool_settings(redis: Redis) -> tuple[Any, dict[str, Any]] | None:
    """The connection class and kwargs of `redis`'s pool (same address, TLS, credentials, db),
    minus the pool's own bookkeeping, for a new pool on the same server; None when `redis` has
    no standard connection pool to copy (a test double)."""
    pool = getattr(redis, "connection_pool", None)
    kwargs: dict[str, Any] | None = getattr(pool, "connection_kwargs", None)
    connection_class = getattr(pool, "connection_class", None)
    if not isinstance(kwargs, dict) or connection_class is None:
        return None
    copied = {k: v for k, v in kwargs.items() if k not in _POOL_OWNED and not k.startswith("orig_")}
    return connection_class, copied


def raise_if_cancelling() -> None:
    """Raise `CancelledError` when the current task has been asked to stop.

    redis-py 8 can complete a command through a cancel (it retries a read the cancel cut
    short), so the `CancelledError` never reaches the caller; a loop that sleeps after such a
    call would run on and leave its `stop()` waiting forever. Periodic loops call this before
    they sleep, to end as asked.
    """
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError


def keepalive_options() -> dict[int, int]:
    """`socket_keepalive_options` for redis-py: the tuned probes above."""
    return {getattr(socket, name): value for name, value in _KEEPALIVE.items()}


class RedisUnavailable(RuntimeError):
    """Redis did not answer within the allowed time; names the (masked) URL and last error."""

    def __init__(self, url: str, last_error: BaseException | None) -> None:
        # Masking is idempotent, so a caller that already masked loses nothing.
        self.url = mask_url(url)
        self.last_error = last_error
        if last_error is None:
            detail = "no attempt made"
        else:  # a TimeoutError has no text of its own: say what it means
            detail = f"{type(last_error).__name__}: {str(last_error) or 'no answer in time'}"
        super().__init__(f"Redis at {self.url} is unavailable ({detail})")


def mask_url(url: str) -> str:
    """Return `url` with any password replaced by `***`; safe to log.

    Handles `user:pass@` and `:pass@` userinfo (a bare `secret@` is masked too, since people
    put passwords there) and a `password=` query parameter, for redis://, rediss:// and
    unix:// URLs. Never raises: it is used while reporting errors.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        # Not a URL at all (e.g. a bare host): there is no userinfo to find, but a
        # password= parameter may still be in there.
        return _mask_query(url)
    # The authority ends at the query; a '/' in an unencoded password would otherwise cut
    # it short, so take the last '@' before the query rather than before the first '/'.
    head, qsep, query = rest.partition("?")
    if "@" in head:
        userinfo, _, location = head.rpartition("@")
        if ":" in userinfo:
            user = userinfo.partition(":")[0]
            userinfo = f"{user}:{_MASK}"
        else:
            userinfo = _MASK
        head = f"{userinfo}@{location}"
    return f"{scheme}://{head}{qsep}{_mask_query(query) if qsep else ''}"


def _mask_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        key, eq, _value = item.partition("=")
        if eq and key.strip().lower().endswith("password"):
            item = f"{key}={_MASK}"
        parts.append(item)
    return "&".join(parts)


def _build_client(
    url: str,
    *,
    max_connections: int,
    pool_timeout_s: float,
    retries: int,
    socket_timeout_s: float | None,
    connect_timeout_s: float,
    decode_responses: bool,
    health_check_interval_s: float,
    backoff: AbstractBackoff | None,
) -> Redis:
    """Create the client and its pool without touching the network."""
    retry = Retry(
        backoff if backoff is not None else ExponentialWithJitterBackoff(cap=1.0, base=0.05),
        retries,
        supported_errors=(RedisConnectionError, RedisTimeoutError),
    )
    # A blocking pool bounds the connections a process opens: under load callers wait up to
    # pool_timeout_s for a free connection instead of opening hundreds of them. For rediss://
    # the pool keeps redis-py's default of verifying the server certificate.
    tcp_only: dict[str, Any] = {}
    if not url.lower().startswith("unix:"):
        # Keepalive notices a peer that vanished without a FIN (a NAT or a failover dropping
        # the connection); unix socket connections do not take the option.
        tcp_only["socket_keepalive"] = True
        tcp_only["socket_keepalive_options"] = keepalive_options()
    if is_sentinel_url(url):
        client = sentinel_client(
            url,
            max_connections=max_connections,
            retry=retry,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            health_check_interval=health_check_interval_s,
            decode_responses=decode_responses,
            **tcp_only,
        )
    else:
        # from_pool hands the pool to the client, so aclose() closes both.
        client = Redis.from_pool(
            QuickConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=pool_timeout_s,
                retry=retry,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=connect_timeout_s,
                health_check_interval=health_check_interval_s,
                decode_responses=decode_responses,
                **tcp_only,
            )
        )
    pool = client.connection_pool
    pool.connection_class = fast_packing(pool.connection_class)
    return client


def is_cluster_url(url: str) -> bool:
    """True for `redis+cluster://` and `rediss+cluster://` URLs."""
    return url.lower().split("://", 1)[0] in ("redis+cluster", "rediss+cluster")


def _build_cluster_client(
    url: str,
    *,
    max_connections: int,
    retries: int,
    socket_timeout_s: float | None,
    connect_timeout_s: float,
    decode_responses: bool,
    backoff: AbstractBackoff | None,
) -> RedisCluster:
    """A Redis Cluster client; the seed node's URL with `+cluster` dropped from the scheme."""
    plain = url.replace("+cluster", "", 1)
    retry = Retry(
        backoff if backoff is not None else ExponentialWithJitterBackoff(cap=1.0, base=0.05),
        retries,
        supported_errors=(RedisConnectionError, RedisTimeoutError),
    )
    return RedisCluster.from_url(
        plain,
        socket_keepalive=True,
        socket_keepalive_options=keepalive_options(),
        max_connections=max_connections,
        retry=retry,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        decode_responses=decode_responses,
    )


async def open_redis(
    url: str,
    *,
    max_connections: int = 10,
    pool_timeout_s: float = 4.0,
    retries: int = 3,
    socket_timeout_s: float | None = None,
    connect_timeout_s: float = 5.0,
    decode_responses: bool = False,
    health_check_interval_s: float = 15.0,
    backoff: AbstractBackoff | None = None,
) -> Redis:
    """Open a pooled async client for `url` (redis://, rediss://, unix://, redis+cluster://,
    redis+sentinel://host:port[,host:port…]/master[/db]) and PING it.

    Commands and (re)connects are retried `retries` times on connection errors and timeouts,
    with exponential backoff and jitter (`backoff` overrides it, e.g. for tests). `socket_timeout_s`
    None means no read timeout: with redis-py 8 a read timeout makes task cancellation
    unreliable (see "Silent connections" in docs/architecture.md), so silent connections are
    caught by `engine.liveness` and tuned TCP keepalive instead. Connects always time out.
    Raises redis' `ConnectionError`/`TimeoutError` if the server does not answer.
    """
    if is_cluster_url(url):
        cluster = _build_cluster_client(
            url,
            max_connections=max_connections,
            retries=retries,
            socket_timeout_s=socket_timeout_s,
            connect_timeout_s=connect_timeout_s,
            decode_responses=decode_responses,
            backoff=backoff,
        )
        try:
            await cluster.initialize()
            await cluster.ping()
        except BaseException:
            await cluster.aclose()
            raise
        return cluster  # type: ignore[return-value]  # same command surface Spool uses
    client = _build_client(
        url,
        max_connections=max_connections,
        pool_timeout_s=pool_timeout_s,
        retries=retries,
        socket_timeout_s=socket_timeout_s,
        connect_timeout_s=connect_timeout_s,
        decode_responses=decode_responses,
        health_check_interval_s=health_check_interval_s,
        backoff=backoff,
    )
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client


async def wait_for_redis(
    url: str,
    deadline_s: float = 30.0,
    log: logging.Logger = logger,
    **open_kwargs: Any,
) -> Redis:
    """Open `url` with `open_redis`, retrying with exponential backoff (capped at 2 s).

    Gives up after `deadline_s` with `RedisUnavailable`. Wrong credentials are not retried:
    waiting does not fix them. Extra keyword arguments go to `open_redis`.
    """
    masked = mask_url(url)
    started = time.monotonic()
    deadline = started + deadline_s
    last_error: BaseException | None = None
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RedisUnavailable(masked, last_error)
        try:
            async with asyncio.timeout(remaining):
                client = await open_redis(url, **open_kwargs)
        except (AuthenticationError, AuthorizationError, ResponseError) as exc:
            # NOAUTH / WRONGPASS / NOPERM: the server is up and said no.
            raise RedisUnavailable(masked, exc) from exc
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            last_error = exc
        else:
            if attempt:
                log.info("Redis at %s is up after %.1fs", masked, time.monotonic() - started)
            return client
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RedisUnavailable(masked, last_error) from last_error
        # Full jitter keeps many processes restarted together from hammering the server in step.
        delay_s = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random() / 2)
        delay_s = min(delay_s, remaining)
        log.warning(
            "Redis at %s not reachable (%s); retrying in %.2fs",
            masked,
            _scrub(str(last_error), url),
            delay_s,
        )
        await asyncio.sleep(delay_s)


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password from an error message, in case a library echoed it."""
    masked = mask_url(url)
    if masked == url:
        return text
    text = text.replace(url, masked)
    for secret in _secrets_in(url):
        if len(secret) >= 3:
            text = text.replace(secret, _MASK)
    return text


def _secrets_in(url: str) -> list[str]:
    secrets: list[str] = []
    _, sep, rest = url.partition("://")
    head, _, query = rest.partition("?")
    if sep and "@" in head:
        userinfo = head.rpartition("@")[0]
        secrets.append(userinfo.partition(":")[2] if ":" in userinfo else userinfo)
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if eq and key.strip().lower().endswith("password"):
            secrets.append(value)
    return [s for s in secrets if s]
