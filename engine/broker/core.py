"""The broker's ground: its state (client, config, key cache) and queue registration."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from redis.asyncio import Redis, RedisCluster

from engine.codec import Payload
from engine.config import EngineConfig
from engine.keys import GlobalKeys, QueueKeys
from engine.scripts import Scripts
from engine.task import TaskRegistry, default_registry

_KEYS_CACHE_MAX = 10_000

# Items per script call. A bounded call keeps the server responsive for everyone else, and
# keeps every list a script unpacks well inside Lua's limit (~8,000 values; see common.lua).
BATCH_MAX = 1000
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = BATCH_MAX) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def enqueued_at_us(payload: Payload, ea: bytes | str | None) -> int | None:
    """When a task was stored (server µs): the stamp in its payload, or for a task stored
    before the stamp moved there, its `ea` entry; None if neither."""
    if payload.enqueued_at_us is not None:
        return int(payload.enqueued_at_us)
    return int(ea) if ea else None


def enqueued_at_ms(payload: Payload, ea: bytes | str | None) -> int | None:
    """`enqueued_at_us` in whole ms: public records speak ms."""
    us = enqueued_at_us(payload, ea)
    return None if us is None else us // 1000


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class BrokerCore:
    """What every group of broker calls shares: the client, config, scripts and key names."""

    def __init__(
        self,
        redis: Redis,
        config: EngineConfig | None = None,
        *,
        registry: TaskRegistry | None = None,
    ) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.config = config or EngineConfig()
        # Declared task options (`@task(queue=...)`) are the defaults of every enqueue here.
        self.registry = default_registry if registry is None else registry
        self.globals = GlobalKeys(self.config.prefix)
        self.scripts = Scripts(redis)
        self._keys: dict[str, QueueKeys] = {}
        self._registered: set[str] = set()
        # (queue, worker id) -> token of a fetch that raised: its reply, and the tasks it
        # leased, may be lost. The next fetch reuses the token and fetch.lua returns them.
        self._lost_fetches: dict[tuple[str, str], str] = {}

    def keys(self, queue: str) -> QueueKeys:
        """The key names of `queue` (validated once, then cached)."""
        keys = self._keys.get(queue)
        if keys is None:
            keys = QueueKeys(self.config.prefix, queue, self.config.levels_for(queue))
            if len(self._keys) >= _KEYS_CACHE_MAX:
                # Names come from callers (HTTP paths, filters): keep the cache bounded.
                self._keys.clear()
            self._keys[queue] = keys
        return keys

    def level_of(self, queue: str, priority: str | None) -> str:
        """Validate a priority name against the queue's levels; None is the middle level."""
        keys = self.keys(queue)
        if priority is None:
            return "default" if "default" in keys.pending else keys.levels[len(keys.levels) // 2]
        if priority not in keys.pending:
            raise ValueError(
                f"unknown priority {priority!r} for queue {queue!r}; "
                f"levels: {', '.join(keys.levels)}"
            )
        return priority

    async def register_queues(self, queues: Iterable[str]) -> None:
        """Record queues in the global set (separate from the scripts: another Cluster slot)."""
        new = [q for q in queues if q not in self._registered]
        if not new:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.globals.queues, *new)
            for q in new:
                # A mark, not a description: each process takes a queue's levels from its own
                # config (a stored copy nobody read could silently disagree with it).
                pipe.hset(self.keys(q).meta, "registered", b"1")
            await pipe.execute()
        self._registered.update(new)

    async def known_queues(self) -> list[str]:
        """Every queue ever used under this prefix, sorted."""
        members = await self.redis.smembers(self.globals.queues)
        return sorted(_s(m) for m in members)
