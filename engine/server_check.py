"""Server settings that can lose tasks (eviction, no persistence): found, warned about once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.connection import mask_url

logger = logging.getLogger(__name__)

# "Once per process per URL" is process state by definition, hence module level. The lock
# makes check-and-add atomic for callers on other threads (e.g. a benchmark runner).
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


async def check_server(redis: Redis, url: str | None = None) -> list[str]:
    """Return warnings about server settings that can lose tasks; log each once per URL.

    Warns when `maxmemory-policy` is not `noeviction` (Redis would evict queue keys under
    memory pressure) or when persistence is off (no AOF, no RDB save points). Managed servers
    often refuse CONFIG; then INFO is used, and persistence is only reported when INFO shows
    it for certain.
    """
    where = mask_url(url) if url else _describe(redis.connection_pool.connection_kwargs)
    warnings: list[str] = []
    policy, aof_on, save_points = await _read_settings(redis)
    if policy is not None and policy != "noeviction":
        warnings.append(
            f"maxmemory-policy is {policy!r} on {where}: under memory pressure the server "
            "evicts keys, which loses tasks; set it to 'noeviction'"
        )
    # save_points is None when unknown (CONFIG refused): no warning rather than a false alarm.
    if aof_on is False and save_points is not None and not save_points:
        warnings.append(
            f"persistence is off on {where} (appendonly no, no save points): a server "
            "restart loses every queued task; set appendonly yes"
        )
    for message in warnings:
        with _warned_lock:
            first = (where, message) not in _warned
            _warned.add((where, message))
        if first:
            logger.warning("%s", message)
    return warnings


async def _read_settings(redis: Redis) -> tuple[str | None, bool | None, str | None]:
    """(maxmemory-policy, AOF on, save points); None for what the server would not tell."""
    try:
        policy = _config_value(await redis.config_get("maxmemory-policy"), "maxmemory-policy")
        appendonly = _config_value(await redis.config_get("appendonly"), "appendonly")
        save = _config_value(await redis.config_get("save"), "save")
    except ResponseError as exc:
        logger.debug("CONFIG GET refused (%s); falling back to INFO", exc)
    else:
        aof = None if appendonly is None else appendonly.lower() == "yes"
        return policy, aof, None if save is None else save.strip()
    try:
        memory = await redis.info("memory")
        persistence = await redis.info("persistence")
    except ResponseError as exc:
        logger.debug("INFO refused too (%s); cannot check server settings", exc)
        return None, None, None
    raw_policy = memory.get("maxmemory_policy")
    raw_aof = persistence.get("aof_enabled")
    policy = _text(raw_policy) if raw_policy is not None else None
    aof = None if raw_aof is None else str(_text(raw_aof)) == "1"
    return policy, aof, None


def _config_value(reply: Mapping[Any, Any], name: str) -> str | None:
    for key, value in reply.items():
        if _text(key) == name:
            return _text(value)
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(kwargs: Mapping[str, Any]) -> str:
    """A password-free address for log lines when the caller did not pass the URL."""
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"
