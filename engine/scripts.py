"""Loads the Lua scripts once and calls them with the shared KEYS/ARGV layout."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis

from engine.keys import QueueKeys

SCRIPT_NAMES = (
    "enqueue",
    "fetch",
    "settle",
    "extend",
    "reap",
    "requeue",
    "delete_dead",
    "repair",
    "release",
)


def _source(name: str) -> str:
    folder = resources.files("engine") / "lua"
    common = (folder / "common.lua").read_text()
    return common + "\n" + (folder / f"{name}.lua").read_text()


def queue_keys_argv(keys: QueueKeys) -> tuple[list[str], str]:
    """The fixed KEYS prefix every script expects, and ARGV[1] (the level names)."""
    fixed = [
        keys.tasks,
        keys.att,
        keys.crash,
        keys.lease,
        keys.ea,
        keys.lasterr,
        keys.active,
        keys.scheduled,
        keys.dead,
        keys.dead_info,
        keys.meta,
        keys.paused,
        keys.wake,
        keys.ready,
    ]
    return fixed + keys.pending_keys, ",".join(keys.levels)


class Scripts:
    """The registered scripts of one Redis client (EVALSHA, loading on NOSCRIPT)."""

    def __init__(self, redis: Redis) -> None:
        self._scripts = {name: redis.register_script(_source(name)) for name in SCRIPT_NAMES}

    async def run(
        self, name: str, keys: QueueKeys, argv: list[Any], extra_keys: list[str] | None = None
    ) -> Any:
        """Run script `name` for one queue; `argv` follows ARGV[1] (the levels)."""
        fixed, levels = queue_keys_argv(keys)
        return await self._scripts[name](keys=fixed + (extra_keys or []), args=[levels, *argv])
