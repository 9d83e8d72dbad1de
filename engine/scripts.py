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
    "restore_dead",
    "repair",
    "release",
    "enqueue_unique",
    "watch_end",
    "unwatch_end",
    "cancel",
    "schedule_tick",
    "set_paused",
)

# Scripts over keys outside any queue (the fleet's records): not prepended with common.lua, whose
# layout is a queue's, and called with their own KEYS (see `Scripts.run_global`).
GLOBAL_SCRIPT_NAMES = ("fleet_heartbeat",)

# Scripts that enforce flow control (lua/flow.lua): they get its helpers, and the queue's flow
# keys after every other key (see `Scripts.run`).
FLOW_SCRIPTS = frozenset(
    {"fetch", "settle", "reap", "release", "repair", "enqueue_unique", "cancel"}
)

# Scripts that hold, restore or prune deleted dead letters (lua/held.lua): they get its helpers,
# and the queue's holding keys as their first extra keys.
HELD_SCRIPTS = frozenset({"delete_dead", "restore_dead", "reap"})

# Scripts that only finish held work or free memory: they run past `maxmemory` (noeviction), so
# workers settle, renew and give back what they hold while Redis refuses new tasks. (Redis 7+
# and Valkey read the shebang; enqueue and fetch have none, so they are refused when full.)
ALLOW_OOM = frozenset({"settle", "extend", "release", "reap", "delete_dead", "unwatch_end"})


def _source(name: str) -> str:
    folder = resources.files("engine") / "lua"
    if name in GLOBAL_SCRIPT_NAMES:
        return (folder / f"{name}.lua").read_text()
    parts = ["#!lua flags=allow-oom"] if name in ALLOW_OOM else []
    parts.append((folder / "common.lua").read_text())
    if name in FLOW_SCRIPTS:
        parts.append((folder / "flow.lua").read_text())
    if name in HELD_SCRIPTS:
        parts.append((folder / "held.lua").read_text())
    parts.append((folder / f"{name}.lua").read_text())
    return "\n".join(parts)


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
        keys.waiting,
        keys.ended,
        keys.cancel,
        keys.cancelled,
        keys.cancelled_at,
    ]
    return fixed + keys.pending_keys, ",".join(keys.levels)


class Scripts:
    """The registered scripts of one Redis client (EVALSHA, loading on NOSCRIPT)."""

    def __init__(self, redis: Redis) -> None:
        self._scripts = {
            name: redis.register_script(_source(name))
            for name in SCRIPT_NAMES + GLOBAL_SCRIPT_NAMES
        }

    async def run(
        self, name: str, keys: QueueKeys, argv: list[Any], extra_keys: list[str] | None = None
    ) -> Any:
        """Run script `name` for one queue; `argv` follows ARGV[1] (the levels).

        KEYS: the fixed queue keys, the pending lists, the holding keys (held scripts only),
        `extra_keys`, and last the flow keys (flow scripts only), which `flow.lua` counts from
        the end.
        """
        all_keys, args = self.call_args(name, keys, argv, extra_keys)
        return await self._scripts[name](keys=all_keys, args=args)

    async def run_global(self, name: str, keys: list[str], argv: list[Any]) -> Any:
        """Run script `name` of `GLOBAL_SCRIPT_NAMES` over exactly `keys` and `argv`."""
        assert name in GLOBAL_SCRIPT_NAMES, name
        return await self._scripts[name](keys=keys, args=argv)

    def call_args(
        self, name: str, keys: QueueKeys, argv: list[Any], extra_keys: list[str] | None = None
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one call of script `name` (see `run`)."""
        fixed, levels = queue_keys_argv(keys)
        if name in HELD_SCRIPTS:
            extra_keys = keys.held_keys + (extra_keys or [])
        all_keys = fixed + (extra_keys or [])
        if name in FLOW_SCRIPTS:
            all_keys += keys.flow_keys
        return all_keys, [levels, *argv]

    def sha(self, name: str) -> str:
        """The SHA1 of script `name` (for EVALSHA inside a pipeline)."""
        return str(self._scripts[name].sha)
