"""Redis Sentinel URLs: `redis+sentinel://[[user]:password@]host:port[,host:port…]/master[/db]`.

`rediss+sentinel://` speaks TLS to the primary. The password (and user) authenticate to the
primary; sentinels that need one of their own take `?sentinel_password=`. The client asks the
sentinels for the current primary on every (re)connect, so after a failover the pool's next
connection goes to the promoted replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

_SCHEMES = ("redis+sentinel", "rediss+sentinel")


def is_sentinel_url(url: str) -> bool:
    """True for `redis+sentinel://` and `rediss+sentinel://` URLs."""
    return url.lower().split("://", 1)[0] in _SCHEMES


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a sentinel URL names."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None
    tls: bool


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Split a sentinel URL; `ValueError` names what is wrong (without the password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError("a sentinel URL starts with redis+sentinel:// or rediss+sentinel://")
    rest, _, query = rest.partition("?")
    userinfo, at, location = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else unquote(user) or None
        if not colon:
            username = None
    hosts, _, path = location.partition("/")
    sentinels = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"sentinel address {item.strip()!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError("a sentinel URL names the master after the addresses: …/mymaster")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError("a sentinel URL path is /master_name[/db]")
    params = parse_qs(query)
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=username,
        password=password,
        sentinel_password=(params.get("sentinel_password") or [None])[0],
        tls=scheme.lower().startswith("rediss"),
    )


def sentinel_client(url: str, *, max_connections: int, **connection_kwargs: Any) -> Redis:
    """A client on the current primary of the URL's master, found through its sentinels.

    `connection_kwargs` (timeouts, retry, keepalive, decode_responses) apply to the primary's
    connections; sentinels are asked with short timeouts of their own.
    """
    target = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    if target.tls:
        connection_kwargs["ssl"] = True
    return sentinel.master_for(
        target.master,
        redis_class=Redis,
        db=target.db,
        username=target.username,
        password=target.password,
        max_connections=max_connections,
        **connection_kwargs,
    )
