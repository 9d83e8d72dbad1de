"""The Lua of every queue operation as one Redis function library, called with FCALL.

A library's top-level code runs once, when it loads: the shared helpers (common.lua, flow.lua)
are created then, not at the start of every call as a script's prelude would be. Measured with
callgrind on the embedded valkey-server: the prelude cost ~75,000 instructions per call, as
much as an empty fetch's own work (see docs/architecture.md, "Redis cost per task").
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.connection_pool import batch_pool, run_batch
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

# Functions over keys outside any queue (the fleet's records): no queue set-up, and called
# with their own KEYS (see `Scripts.run_global`).
GLOBAL_SCRIPT_NAMES = ("fleet_heartbeat",)

# Functions that enforce flow control (lua/flow.lua): they call its set-up, and get the queue's
# flow keys after every other key (see `Scripts.run`).
FLOW_SCRIPTS = frozenset(
    {"fetch", "settle", "reap", "release", "repair", "enqueue_unique", "cancel"}
)

# Functions that hold, restore or prune deleted dead letters (lua/held.lua): they call its
# set-up, and get the queue's holding keys as their first extra keys.
HELD_SCRIPTS = frozenset({"delete_dead", "restore_dead", "reap"})

# Functions that only finish held work or free memory: they run past `maxmemory` (noeviction),
# so workers settle, renew and give back what they hold while Redis refuses new tasks. The
# others carry no flag, so a full server refuses them (enqueue, fetch) before they run.
ALLOW_OOM = frozenset({"settle", "extend", "release", "reap", "delete_dead", "unwatch_end"})


# Every queue key a function can name as `k.<name>` in Lua (common.lua's `setup`), in the
# order they are passed; `tasks` comes first in every layout (it names the queue).
QUEUE_KEY_NAMES = (
    "tasks",
    "att",
    "crash",
    "lease",
    "ea",
    "lasterr",
    "active",
    "scheduled",
    "dead",
    "dead_info",
    "meta",
    "paused",
    "wake",
    "ready",
    "waiting",
    "ended",
    "cancel",
    "cancelled",
    "cancelled_at",
)

_SHARED_PARTS = ("common", "flow", "held")


@cache
def _lua(part: str) -> str:
    """The text of engine/lua/<part>.lua, read once (layouts and library both need it)."""
    return (resources.files("engine") / "lua" / f"{part}.lua").read_text()


def _helpers(shared: str) -> dict[str, str]:
    """Each `local function` of the shared Lua and its text (up to the next one)."""
    pieces = re.split(r"^local function (\w+)", shared, flags=re.M)
    return dict(zip(pieces[1::2], pieces[2::2], strict=True))


def _layout(body: str, helpers: dict[str, str]) -> tuple[str, ...]:
    """The queue keys a function uses: every `k.<name>` in its body and in the helpers it
    calls, directly or through other helpers, in `QUEUE_KEY_NAMES` order."""
    names: set[str] = set()
    called: set[str] = set()
    texts = [body]
    while texts:
        text = texts.pop()
        names.update(re.findall(r"(?<![\w.])k\.(\w+)", text))
        for helper, code in helpers.items():
            if helper not in called and re.search(rf"(?<![\w.]){helper}\(", text):
                called.add(helper)
                texts.append(code)
    unknown = names - set(QUEUE_KEY_NAMES)
    if unknown:
        raise ValueError(f"Lua names queue keys Spool does not have: {sorted(unknown)}")
    return ("tasks", *(n for n in QUEUE_KEY_NAMES[1:] if n in names))


def _layouts() -> dict[str, tuple[str, ...]]:
    shared = _helpers("\n".join(_lua(part) for part in _SHARED_PARTS))
    return {name: _layout(_lua(name), shared) for name in SCRIPT_NAMES}


#: The queue keys each queue function gets, first in its KEYS: only those its Lua names. Every
#: key passed costs the server parsing it and a Lua string (fewer keys cut an enqueue's server
#: instructions; see "Redis cost per task" in docs/architecture.md) and costs the client packing
#: it.
LAYOUTS = _layouts()


def _library() -> tuple[str, str]:
    """(library name, code). The name carries a digest of the code, so two Spool versions on
    one server each call their own functions."""
    parts = [_lua(part) for part in _SHARED_PARTS]
    for name in SCRIPT_NAMES + GLOBAL_SCRIPT_NAMES:
        start = ""
        if name not in GLOBAL_SCRIPT_NAMES:
            fields = ", ".join(f"'{key}'" for key in LAYOUTS[name])
            parts.append(f"local LAYOUT_{name} = {{{fields}}}")
            start = f"setup(KEYS, ARGV, LAYOUT_{name})"
        if name in FLOW_SCRIPTS:
            start += " flow_setup(KEYS)"
        if name in HELD_SCRIPTS:
            start += " held_setup(KEYS)"
        parts.append(f"local function run_{name}(KEYS, ARGV)\n{start}\n{_lua(name)}\nend")
    code = "\n".join(parts)
    library = "spool_" + hashlib.sha1(code.encode()).hexdigest()[:16]
    for name in SCRIPT_NAMES + GLOBAL_SCRIPT_NAMES:
        flags = ", flags={'allow-oom'}" if name in ALLOW_OOM else ""
        code += (
            f"\nredis.register_function{{function_name='{library}_{name}', "
            f"callback=run_{name}{flags}}}"
        )
    return library, f"#!lua name={library}\n{code}\n"


def is_missing_function(exc: BaseException) -> bool:
    """True for the error of an FCALL whose library is not loaded (a restarted, flushed or new
    server): load it and call again."""
    return isinstance(exc, ResponseError) and "function not found" in str(exc).lower()


def queue_keys_argv(name: str, keys: QueueKeys) -> tuple[list[str], str]:
    """The KEYS prefix function `name` expects (its layout's queue keys, then the pending
    lists), and ARGV[1] (the level names)."""
    fixed = [getattr(keys, key) for key in LAYOUTS[name]]
    return fixed + keys.pending_keys, ",".join(keys.levels)


class Scripts:
    """The library's functions on one Redis client: FCALL, loading the library on a miss.

    Nothing is sent before the first call (a `--read-only` console never loads it).
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        # Calls go out through `run_batch` where they may (no redis-py command machinery: ~5-10
        # µs of a ~100 µs call here), else through the client (Cluster, one connection).
        self._pool = batch_pool(redis)
        self.library, self._code = _library()

    def function(self, name: str) -> str:
        """The FCALL name of operation `name`."""
        return f"{self.library}_{name}"

    def command(self, name: str, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
        """FCALL of function `name` with exactly `keys` and `args`, as one command of a
        `run_batch` (which does not load the library: a caller sees the missing function)."""
        return ("FCALL", self.function(name), len(keys), *keys, *args)

    async def load(self) -> None:
        """Load the library (REPLACE: a concurrent load of the same code is harmless, and on a
        Cluster the load goes to every primary)."""
        await self._redis.function_load(self._code, replace=True)

    async def run(
        self, name: str, keys: QueueKeys, argv: list[Any], extra_keys: list[str] | None = None
    ) -> Any:
        """Run function `name` for one queue; `argv` follows ARGV[1] (the levels).

        KEYS: the queue keys it uses (`LAYOUTS`), the pending lists, the holding keys (held
        functions only), `extra_keys`, and last the flow keys (flow functions only), which
        `flow.lua` counts from the end.
        """
        all_keys, args = self.call_args(name, keys, argv, extra_keys)
        return await self.call(name, all_keys, args)

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """FCALL function `name` with exactly `keys` and `args`, loading the library if the
        server does not have it."""
        try:
            return await self._fcall(name, keys, args)
        except ResponseError as exc:
            if not is_missing_function(exc):
                raise
        await self.load()
        return await self._fcall(name, keys, args)

    async def _fcall(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self._pool is None:
            return await self._redis.fcall(self.function(name), len(keys), *keys, *args)
        (reply,) = await run_batch(self._pool, [self.command(name, keys, args)])
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def run_global(self, name: str, keys: list[str], argv: list[Any]) -> Any:
        """Run function `name` of `GLOBAL_SCRIPT_NAMES` over exactly `keys` and `argv`."""
        assert name in GLOBAL_SCRIPT_NAMES, name
        return await self.call(name, keys, argv)

    def call_args(
        self, name: str, keys: QueueKeys, argv: list[Any], extra_keys: list[str] | None = None
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one call of function `name` (see `run`)."""
        fixed, levels = queue_keys_argv(name, keys)
        if name in HELD_SCRIPTS:
            extra_keys = keys.held_keys + (extra_keys or [])
        all_keys = fixed + (extra_keys or [])
        if name in FLOW_SCRIPTS:
            all_keys += keys.flow_keys
        return all_keys, [levels, *argv]
