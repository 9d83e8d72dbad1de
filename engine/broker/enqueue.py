"""Broker calls that store tasks: validation, id generation, enqueue and periodic ticks."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence

from redis.exceptions import ResponseError

from engine import codec, declared, tracing
from engine.broker.core import BrokerCore, _s, chunks
from engine.errors import RedisFull, is_oom
from engine.limits import unique_digest
from engine.task import TaskSpec

# Ids and names travel inside newline-separated script arguments and lease tokens ("rand|worker"),
# so whitespace, '|' and quotes are kept out of them.
# Used with fullmatch: `$` would also accept a trailing newline, which splits a packed argument.
_TASK_ID_RE = re.compile(r"[^\s|]{1,200}")
_TASK_NAME_RE = re.compile(r'[^\s"\\]{1,200}')

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


class EnqueueCalls(BrokerCore):
    """Enqueue: every task stored goes through here."""

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
                unregistered = await self.scripts.run("enqueue", keys, argv, extra)
                lost_registration = lost_registration or bool(unregistered)
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
