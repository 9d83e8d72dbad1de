"""The broker: every queue state change, each one Lua round trip for a whole batch."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from engine import codec, declared, tracing
from engine.audit import AUDIT_MAX, AuditEntry
from engine.config import EngineConfig
from engine.errors import RedisFull, is_oom
from engine.keys import GlobalKeys, QueueKeys
from engine.limits import unique_digest
from engine.outcomes import Outcome
from engine.scripts import Scripts
from engine.task import FetchedTask, TaskRegistry, TaskSpec, default_registry

# Ids and names travel inside newline-separated script arguments and lease tokens ("rand|worker"),
# so whitespace, '|' and quotes are kept out of them.
# Used with fullmatch: `$` would also accept a trailing newline, which splits a packed argument.
_TASK_ID_RE = re.compile(r"[^\s|]{1,200}")
_TASK_NAME_RE = re.compile(r'[^\s"\\]{1,200}')


_KEYS_CACHE_MAX = 10_000

# Items per script call. A bounded call keeps the server responsive for everyone else, and
# keeps every list a script unpacks well inside Lua's limit (~8,000 values; see common.lua).
BATCH_MAX = 1000
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = BATCH_MAX) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ea_to_ms(raw: bytes | str | None) -> int | None:
    """The `ea` hash holds enqueue times in µs; public records speak whole ms."""
    return None if raw is None else int(raw) // 1000


# Random bytes map onto letters and digits through one table (C speed): 22 characters carry
# ~130 bits (the first eight symbols are drawn 5/256 of the time, the rest 4/256).
_ID_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_TABLE = bytes(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in range(256))


def new_task_id() -> str:
    """A random, unguessable task id: 22 letters and digits (~130 bits).

    Not hex: the id is stored three times per queued task (payload field, stamp field, pending
    list), and 22 characters instead of 32 save ~30 bytes of Redis memory per task. Letters and
    digits only, so an id is safe in URLs, keys and CLI arguments (never starts with '-').
    """
    return os.urandom(22).translate(_ID_TABLE).decode()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch returned. `next_due_ms` is the earliest scheduled task, or None."""

    now_ms: int
    next_due_ms: int | None
    tasks: list[FetchedTask]


@dataclass(frozen=True, slots=True)
class ReapResult:
    """What one reaper pass did on one queue."""

    requeued: int
    dead: int
    promoted: int
    orphans: int
    evicted: int
    crash_looped: int


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Broker:
    """Queue operations over one Redis client. Cheap to create; holds no connection itself."""

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

    # -- keys and queues -------------------------------------------------------------------
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

    # -- audit trail -------------------------------------------------------------------------
    async def record_audit(self, entry: AuditEntry) -> None:
        """Append an operator action to the capped audit stream.

        Its own command, not part of the action's script: the stream is one key for every
        queue, so in a Redis Cluster it lives in another slot than the queue's keys.
        """
        await self.redis.xadd(
            self.globals.audit, entry.fields(), maxlen=AUDIT_MAX, approximate=True
        )

    async def audit_log(self, count: int = 200) -> list[AuditEntry]:
        """The newest `count` operator actions, newest first."""
        rows = await self.redis.xrevrange(self.globals.audit, count=count)
        return [AuditEntry.from_fields(_s(entry_id), fields) for entry_id, fields in rows]

    # -- enqueue -----------------------------------------------------------------------------
    def resolve(self, spec: TaskSpec) -> TaskSpec:
        """`spec` with the task's declared options filled in and its arguments checked against
        the registered handler (`TaskArgumentsError`, a `TypeError`, when they do not fit)."""
        return declared.resolve(spec, self.registry)

    def _encode_spec(
        self, spec: TaskSpec, trace_parent: str | None = None
    ) -> tuple[str, str, int, bytes]:
        assert spec.queue is not None  # resolved by the caller
        level = self.level_of(spec.queue, spec.priority)  # validates the queue name too
        name = spec.name
        if not isinstance(name, str) or not _TASK_NAME_RE.fullmatch(name):
            raise ValueError(f"invalid task name {name!r}: 1-200 printable characters, no quotes")
        task_id = spec.id
        if task_id is None:
            task_id = new_task_id()
        elif not isinstance(task_id, str) or not _TASK_ID_RE.fullmatch(task_id):
            raise ValueError(f"invalid task id {task_id!r}: 1-200 characters, no whitespace or '|'")
        max_retries = self.config.max_retries if spec.max_retries is None else spec.max_retries
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if spec.delay_s is not None and spec.eta_s is not None:
            raise ValueError("give delay or eta, not both")
        delay_s = spec.delay_s or 0.0
        if spec.eta_s is not None:
            delay_s = spec.eta_s - time.time()
        payload = codec.encode_payload(
            level=level,
            name=spec.name,
            args=spec.args,
            kwargs=spec.kwargs,
            max_retries=max_retries,
            timeout_s=spec.timeout_s,
            received_at_ms=spec.received_at_ms,
            trace_parent=trace_parent,
        )
        return task_id, level, max(0, int(delay_s * 1000)), payload

    async def enqueue(self, specs: Sequence[TaskSpec]) -> list[str]:
        """Store tasks; one script call per queue. An id already known is left as it is.

        A unique task (`unique_for`) whose twin is still within its window is not stored: the
        twin's id is returned in its place.

        Options a spec leaves out come from the task's `@task` declaration when this process
        has it registered (see `resolve`); everything is validated before any write.
        """
        if not specs:
            return []
        specs = [declared.resolve(spec, self.registry) for spec in specs]
        try:
            if tracing.tracer is None:
                return await self._enqueue(specs, [None] * len(specs))
            with tracing.producer_spans(specs) as trace_parents:
                return await self._enqueue(specs, trace_parents)
        except ResponseError as exc:
            if is_oom(exc):
                raise RedisFull(
                    "Redis is full (maxmemory reached with noeviction): the task was not "
                    "stored; retry once memory is freed"
                ) from exc
            raise

    async def _enqueue(
        self, specs: Sequence[TaskSpec], trace_parents: Sequence[str | None]
    ) -> list[str]:
        # Refuses bad input before any I/O.
        encoded = [self._encode_spec(s, tp) for s, tp in zip(specs, trace_parents, strict=True)]
        for spec in specs:
            if spec.unique_key is not None and spec.unique_for is None:
                raise ValueError("unique_key needs unique_for (the window in seconds)")
        uniques = {
            i: _unique_item(spec) for i, spec in enumerate(specs) if spec.unique_for is not None
        }
        ids = [e[0] for e in encoded]
        by_queue: dict[str, list[int]] = {}
        for i, spec in enumerate(specs):
            by_queue.setdefault(spec.queue or "default", []).append(i)
        await self.register_queues(by_queue)
        for queue, indexes in by_queue.items():
            keys = self.keys(queue)
            plain = [i for i in indexes if i not in uniques]
            unique = [i for i in indexes if i in uniques]
            lost_registration = False
            for part in chunks(plain):
                argv: list[object] = [self.config.wake_tokens_max]
                extra: list[str] = []
                for i in part:
                    task_id, level, delay_ms, payload = encoded[i]
                    # Only an id the caller chose can already exist: a generated one skips the
                    # check (and its result key), which halves the script's work per task.
                    check = specs[i].id is not None
                    flag = b"?" if check else b"-"
                    argv.append(
                        b"%s%s\n%d\n%s\n%s"
                        % (flag, level.encode(), delay_ms, task_id.encode(), payload)
                    )
                    if check:
                        extra.append(keys.result(task_id))
                flags = await self.scripts.run("enqueue", keys, argv, extra)
                lost_registration = lost_registration or bool(flags and flags[-1])
            for part in chunks(unique):
                argv = [self.config.wake_tokens_max]
                extra = []
                for i in part:
                    task_id, level, delay_ms, payload = encoded[i]
                    argv.append(
                        b"%s\n%d\n%s\n%s\n%s"
                        % (level.encode(), delay_ms, task_id.encode(), uniques[i], payload)
                    )
                    extra.append(keys.result(task_id))
                holders = await self.scripts.run("enqueue_unique", keys, argv, extra)
                for i, holder in zip(part, holders, strict=False):
                    ids[i] = _s(holder)
                lost_registration = lost_registration or bool(holders and holders[-1] == 1)
            if lost_registration:
                # The server forgot this queue (restart without AOF, FLUSHDB): register again,
                # or status lookups, queue lists and dead-letter views would miss it.
                self._registered.discard(queue)
                await self.register_queues([queue])
        return ids

    # -- fetch -------------------------------------------------------------------------------
    async def fetch(
        self, queue: str, n: int, worker_id: str, lease_s: float | None = None
    ) -> FetchResult:
        """Lease up to `n` tasks of `queue`, highest level first, FIFO within a level.

        More than `BATCH_MAX` takes several script calls, each complete on its own.
        """
        res = await self._fetch_once(queue, min(n, BATCH_MAX), worker_id, lease_s)
        last = len(res.tasks)
        while last == BATCH_MAX and len(res.tasks) < n:
            more = await self._fetch_once(
                queue, min(n - len(res.tasks), BATCH_MAX), worker_id, lease_s
            )
            last = len(more.tasks)
            res = FetchResult(more.now_ms, more.next_due_ms, res.tasks + more.tasks)
        return res

    async def _fetch_once(
        self, queue: str, n: int, worker_id: str, lease_s: float | None
    ) -> FetchResult:
        keys = self.keys(queue)
        token, argv = self._fetch_argv(queue, n, worker_id, lease_s)
        try:
            raw = await self.scripts.run("fetch", keys, argv, [keys.fetch_mark(token)])
        except BaseException:
            self._lost_fetches[(queue, worker_id)] = token
            raise
        return _fetch_result(queue, raw, token)

    def _fetch_argv(
        self, queue: str, n: int, worker_id: str, lease_s: float | None
    ) -> tuple[str, list[object]]:
        token = self._lost_fetches.pop((queue, worker_id), None)
        if token is None:
            token = f"{os.urandom(8).hex()}|{worker_id}"
        lease_ms = int((lease_s or self.config.lease_s) * 1000)
        return token, [n, lease_ms, token, self.config.promote_batch, self.config.wake_tokens_max]

    async def wait_and_fetch(
        self,
        queues: Sequence[str],
        queue: str,
        n: int,
        worker_id: str,
        timeout_s: float,
        lease_s: float | None = None,
    ) -> FetchResult:
        """Block on the wake keys of `queues` (and the worker's nudge key), then fetch up to `n`
        of `queue`, in one round trip. One server only: use `wait_for_work` on a Cluster.

        Redis runs a command pipelined behind a BLPOP as soon as the BLPOP returns, so a woken
        worker has its tasks without a second round trip. The fetch runs after a timeout too
        (it then finds what came due, or nothing); a token of another queue leaves it empty
        and the caller's next round fetches every queue.
        """
        keys = self.keys(queue)
        token, argv = self._fetch_argv(queue, min(n, BATCH_MAX), worker_id, lease_s)
        mark = [keys.fetch_mark(token)]
        all_keys, args = self.scripts.call_args("fetch", keys, argv, mark)
        # The nudge key of the first queue: `nudge` pushes the same one.
        wake_keys = [self.keys(q).wake for q in queues] + [self.keys(queues[0]).nudge(worker_id)]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.blpop(wake_keys, timeout=max(timeout_s, 0.001))
                pipe.evalsha(self.scripts.sha("fetch"), len(all_keys), *all_keys, *args)
                woke, raw = await pipe.execute(raise_on_error=False)
            if isinstance(woke, Exception):
                raise woke
            if isinstance(raw, NoScriptError):  # a restarted or flushed server: load and run it
                raw = await self.scripts.run("fetch", keys, argv, mark)
            elif isinstance(raw, Exception):
                raise raw
        except BaseException:
            self._lost_fetches[(queue, worker_id)] = token
            raise
        return _fetch_result(queue, raw, token)

    async def nudge(self, queue: str, worker_id: str) -> None:
        """End `worker_id`'s wait in `wait_and_fetch` on queues starting with `queue` (the token
        expires if nobody takes it)."""
        key = self.keys(queue).nudge(worker_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(key, b"1")
            pipe.pexpire(key, 60_000)
            await pipe.execute()

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until a wake token arrives on any of `queues` (True) or the timeout (False)."""
        wake_keys = [self.keys(q).wake for q in queues]
        if self.cluster and len(wake_keys) > 1:
            # One BLPOP may not span Cluster slots: take turns, each with a slice of the wait.
            share = max(timeout_s / len(wake_keys), 0.01)
            for key in wake_keys:
                if await self.redis.blpop([key], timeout=share) is not None:
                    return True
            return False
        got = await self.redis.blpop(wake_keys, timeout=max(timeout_s, 0.001))
        return got is not None

    # -- settle, extend, reap ------------------------------------------------------------------
    async def settle(self, queue: str, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply finished attempts; False marks a stale lease (rejected and counted).

        More than `BATCH_MAX` outcomes take several script calls: if one fails, those before
        it stay applied (a caller that retries should pass at most `BATCH_MAX`).
        """
        flags: list[bool] = []
        for part in chunks(outcomes):
            flags += await self._settle_once(queue, part)
        return flags

    async def _settle_once(self, queue: str, outcomes: Sequence[Outcome]) -> list[bool]:
        keys = self.keys(queue)
        cfg = self.config
        argv: list[object] = [
            int(cfg.result_ttl_s * 1000),
            cfg.dead_max,
            int(cfg.dead_max_age_s * 1000),
        ]
        extra: list[str] = []
        for o in outcomes:
            t = o.task
            argv.append(
                b"%s%s\n%s\n%d\n%s"
                % (o.kind.encode(), t.id.encode(), t.token.encode(), o.delay_ms, o.data)
            )
            extra.append(keys.result(t.id))
        flags = await self.scripts.run("settle", keys, argv, extra)
        return [bool(f) for f in flags]

    async def extend(
        self, queue: str, leases: Sequence[tuple[str, str]], lease_s: float | None = None
    ) -> list[int]:
        """Renew live leases held with these (id, token) pairs: 1 renewed, 2 renewed but a
        cancel was requested (stop the task), 0 the lease is lost."""
        flags: list[int] = []
        for part in chunks(leases):
            argv: list[object] = [int((lease_s or self.config.lease_s) * 1000)]
            for task_id, token in part:
                argv += [task_id, token]
            flags += [int(f) for f in await self.scripts.run("extend", self.keys(queue), argv)]
        return flags

    async def release(self, queue: str, leases: Sequence[tuple[str, str]]) -> int:
        """Give back unfinished tasks (shutdown): next out of their level, attempt not counted."""
        released = 0
        for part in chunks(leases):
            argv: list[object] = [self.config.wake_tokens_max]
            for task_id, token in part:
                argv += [task_id, token]
            released += int(await self.scripts.run("release", self.keys(queue), argv))
        return released

    # -- operator writes: pause, dead letters ------------------------------------------------
    async def set_paused(self, queue: str, paused: bool) -> bool:
        """Pause (stop handing out tasks; running ones finish, enqueues still land) or resume
        `queue` (idle workers are woken). True if that changed its state."""
        if paused:
            await self.register_queues([queue])
        argv: list[object] = [b"1" if paused else b"0", self.config.wake_tokens_max]
        return bool(await self.scripts.run("set_paused", self.keys(queue), argv))

    async def requeue_dead(self, queue: str, ids: Sequence[str]) -> int:
        """Move these dead letters back to pending, attempts reset. Returns how many moved."""
        moved = 0
        for part in chunks(ids):
            argv: list[object] = [self.config.wake_tokens_max, *part]
            moved += int(await self.scripts.run("requeue", self.keys(queue), argv))
        return moved

    async def delete_dead(self, queue: str, ids: Sequence[str]) -> int:
        """Delete these dead letters for good. Returns how many were deleted."""
        deleted = 0
        for part in chunks(ids):
            deleted += int(await self.scripts.run("delete_dead", self.keys(queue), [*part]))
        return deleted

    async def reap(self, queue: str, limit: int = 1000) -> ReapResult:
        """Return expired leases, promote due tasks, drop orphans, enforce DLQ caps."""
        cfg = self.config
        raw = await self.scripts.run(
            "reap",
            self.keys(queue),
            [
                limit,
                cfg.crash_limit,
                cfg.dead_max,
                int(cfg.dead_max_age_s * 1000),
                cfg.promote_batch,
                cfg.wake_tokens_max,
                int(cfg.result_ttl_s * 1000),
            ],
        )
        return ReapResult(*(int(x) for x in raw))

    async def schedule_tick(self, spec: TaskSpec, tick_ms: int) -> int:
        """Enqueue the task of one tick of a periodic task, once fleet-wide: 1 enqueued, 0
        already done by some worker (or the schedule's first tick, only recorded), -1 not due
        yet by the server's clock. `spec` carries the tick's id (`schedule.tick_id`)."""
        spec = declared.resolve(spec, self.registry)
        assert spec.queue is not None and spec.id is not None
        await self.register_queues([spec.queue])
        task_id, level, _delay, payload = self._encode_spec(spec)
        keys = self.keys(spec.queue)
        packed = b"%s\n0\n%s\n%s" % (level.encode(), task_id.encode(), payload)
        return int(
            await self.scripts.run(
                "schedule_tick",
                keys,
                [spec.name, tick_ms, self.config.wake_tokens_max, packed],
                [keys.schedules, keys.result(task_id)],
            )
        )

    async def cancel(self, queue: str, task_id: str) -> tuple[int, str]:
        """Cancel a task: (1, "") when it was removed before running (pending, scheduled,
        retrying, parked), (2, lease token) when it runs and its worker must stop it, (0, "")
        when there was nothing to do (unknown, already ended, or already requested)."""
        code, token = await self.scripts.run("cancel", self.keys(queue), [task_id])
        return int(code), _s(token)

    async def watch_end(self, queue: str, task_id: str) -> str:
        """Register interest in the end of `task_id`; returns the `ended` stream position to
        read from (see `engine.results`)."""
        return _s(await self.scripts.run("watch_end", self.keys(queue), [task_id]))

    async def unwatch_end(self, queue: str, task_id: str) -> None:
        """Withdraw one registration of `watch_end` (the task's end withdraws them all)."""
        await self.scripts.run("unwatch_end", self.keys(queue), [task_id])

    async def repair(self, queue: str, scan_batch: int = 1000) -> int:
        """Put back tasks whose payload exists but that sit in no list or set. Rare and slow."""
        keys = self.keys(queue)
        placed: set[str] = set()
        for level_key in keys.pending_keys:
            placed.update(_s(x) for x in await self.redis.lrange(level_key, 0, -1))
        for zkey in (keys.active, keys.scheduled, keys.dead):
            placed.update(_s(x) for x in await self.redis.zrange(zkey, 0, -1))
        candidates = [
            _s(task_id)
            # Not NOVALUES: HSCAN only has it from Redis 7.4 / Valkey 8, and 7.0 must work.
            async for task_id, _payload in self.redis.hscan_iter(keys.tasks, count=scan_batch)
            if _s(task_id) not in placed
        ]
        fixed = 0
        for start in range(0, len(candidates), 500):
            fixed += int(
                await self.scripts.run(
                    "repair", keys, [self.config.wake_tokens_max, *candidates[start : start + 500]]
                )
            )
        return fixed


def _unique_item(spec: TaskSpec) -> bytes:
    """The uniqueness fields of a packed `enqueue_unique` item: digest, window ms, mode."""
    window = spec.unique_for
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window < 1e9:
        raise ValueError(f"unique_for must be a positive number of seconds, not {window!r}")
    if spec.unique_until not in ("window", "done"):
        raise ValueError(f"unique_until must be 'window' or 'done', not {spec.unique_until!r}")
    digest = unique_digest(spec.name, spec.args, spec.kwargs, spec.unique_key)
    mode = b"d" if spec.unique_until == "done" else b"w"
    return b"%s\n%d\n%s" % (digest.encode(), max(1, int(window * 1000)), mode)


def _fetch_result(queue: str, raw: list[Any], token: str) -> FetchResult:
    """Decode the fetch script's reply (see fetch.lua)."""
    now_ms = int(raw[0])
    next_due = int(raw[1])
    fetched_at_ms = int(raw[2]) / 1000  # µs resolution: sub-millisecond waits are real
    tasks: list[FetchedTask] = []
    for i in range(3, len(raw), 5):
        task = _decode_fetched(
            queue, raw[i], raw[i + 1], int(raw[i + 2]), int(raw[i + 3]) / 1000, fetched_at_ms, token
        )
        if raw[i + 4]:
            task.ready_at_ms = int(raw[i + 4]) / 1000
        tasks.append(task)
    return FetchResult(now_ms, None if next_due < 0 else next_due, tasks)


def _decode_fetched(
    queue: str,
    task_id: bytes,
    payload: bytes,
    attempt: int,
    enqueued_at_ms: float,
    now_ms: float,
    token: str,
) -> FetchedTask:
    p = codec.read_payload(payload)
    return FetchedTask(
        id=_s(task_id),
        queue=queue,
        name=p.name,
        level=p.level,
        args=p.args,
        kwargs=p.kwargs,
        attempt=attempt,
        max_retries=p.max_retries,
        timeout_s=p.timeout_s,
        enqueued_at_ms=enqueued_at_ms,
        fetched_at_ms=now_ms,
        token=token,
        decode_error=p.error,
        received_at_ms=p.received_at_ms,
        trace_parent=p.trace_parent,
    )
