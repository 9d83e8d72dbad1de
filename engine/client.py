"""The producer API: `Client` enqueues tasks, reads results and states."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from engine import dead as dead_ops
from engine import declared
from engine import queues as queue_ops
from engine.broker import Broker
from engine.cancel import cancel_task
from engine.config import EngineConfig
from engine.durable import enqueue_durably
from engine.results import ENDED_STATES, EndWatcher
from engine.schedule import ScheduleInfo, list_schedules
from engine.task import (
    TaskCancelledError,
    TaskDeadError,
    TaskInfo,
    TaskRegistry,
    TaskSpec,
    TaskState,
)

log = logging.getLogger("spool.client")


class Client:
    """Connects to Redis and enqueues tasks, reads results, cancels.

    Use as `async with Client(url) as client:`. With no URL: `SPOOL_REDIS_URL`, else the
    embedded server already running in the user's state directory (the console's), else it
    starts that server and stops it on exit (see `engine.discovery`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        config: EngineConfig | None = None,
        redis: Redis | None = None,
        max_connections: int = 10,
        registry: TaskRegistry | None = None,
    ) -> None:
        self.url = url
        self.config = config or EngineConfig()
        self._redis = redis
        self._owns_redis = redis is None
        self._server: Any = None
        self._max_connections = max_connections
        self._broker: Broker | None = None
        self._registry = registry
        self._ends: EndWatcher | None = None

    async def connect(self) -> Client:
        """Open the connection (idempotent). `async with` calls this for you."""
        if self._broker is not None:
            return self
        if self._redis is None:
            from engine.connection import open_redis
            from engine.discovery import find_server
            from engine.server_check import check_server

            choice = await asyncio.to_thread(find_server, self.url)
            self._server = choice.started
            url = choice.url
            self._redis = await open_redis(url, max_connections=self._max_connections)
            await check_server(self._redis, url)  # warns once about eviction / no persistence
        self._broker = Broker(self._redis, self.config, registry=self._registry)
        self._ends = EndWatcher(self._broker)
        return self

    async def close(self) -> None:
        """Close the connection and stop the embedded server if this client started it."""
        if self._ends is not None:
            await self._ends.close()
            self._ends = None
        if self._redis is not None and self._owns_redis:
            await self._redis.aclose()
            self._redis = None
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None
        self._broker = None

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def broker(self) -> Broker:
        """The low-level broker (queue inspection, dead letters, worker operations)."""
        if self._broker is None:
            raise RuntimeError("Client is not connected: use `async with Client(...)`")
        return self._broker

    @property
    def redis(self) -> Redis:
        """The underlying Redis client."""
        return self.broker.redis

    async def enqueue(
        self,
        task: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        delay: float | None = None,
        eta: float | None = None,
        id: str | None = None,
        unique_for: float | None = None,
        unique_key: str | None = None,
        unique_until: str = "window",
        durable: bool = False,
    ) -> str:
        """Enqueue one task; returns its id. `delay` in seconds; `eta` as epoch seconds.

        `durable=True` returns only once a replica (or the primary's AOF on disk) has the task,
        else raises `engine.errors.DurabilityError` (see `engine.durable`).

        `task` is a `@task` handler or a task name. Options left out (None) take the task's
        declared defaults, then the engine's. With a handler (or a name registered in this
        process) the arguments are checked against its signature here: a `TypeError` now
        rather than a dead task later.

        With `unique_for` (seconds), an equal task (same name and arguments, or the same
        `unique_key`) enqueued within that window is not stored again: the first task's id is
        returned. `unique_until="done"` ends the window early when the first task ends.
        """
        spec = _to_spec(
            {
                "name": task,
                "args": args,
                "kwargs": kwargs or {},
                "queue": queue,
                "priority": priority,
                "max_retries": max_retries,
                "timeout_s": timeout,
                "delay_s": delay,
                "eta_s": eta,
                "id": id,
                "unique_for": unique_for,
                "unique_key": unique_key,
                "unique_until": unique_until,
            },
            self.broker,
        )
        if durable:
            return (await enqueue_durably(self.broker, [spec]))[0]
        return (await self.broker.enqueue([spec]))[0]

    async def enqueue_many(self, specs: Sequence[TaskSpec | Mapping[str, Any]]) -> list[str]:
        """Enqueue many tasks in one round trip per queue; returns their ids in order.

        Items are `TaskSpec`s or dicts with the keyword names of `enqueue` (`name` may be a
        `@task` handler).
        """
        return await self.broker.enqueue([_to_spec(s, self.broker) for s in specs])

    async def status(self, task_id: str, queue: str | None = None) -> TaskInfo | None:
        """A task's state and record, or None when unknown (or its result expired)."""
        return await queue_ops.task_status(self.broker, task_id, queue)

    async def result(
        self, task_id: str, timeout: float | None = None, queue: str | None = None
    ) -> Any:
        """Wait for a task's result, woken by the task's end (no polling; see
        `engine.results`). Raises `TaskDeadError` for a dead task, `TaskCancelledError` for a
        cancelled one, `TimeoutError` when `timeout` seconds pass first, and `KeyError` for an
        unknown id (or one whose result expired)."""
        info = await self.status(task_id, queue)
        if info is not None and info.state not in ENDED_STATES:
            assert self._ends is not None  # set by connect(), like the broker
            try:
                info = await self._ends.wait(task_id, info.queue, timeout)
            except TimeoutError:
                now = await self.status(task_id, info.queue)
                state = now.state if now is not None else "gone"
                raise TimeoutError(f"task {task_id} still {state} after {timeout} s") from None
        if info is None:
            raise KeyError(f"unknown task id {task_id!r} (never enqueued, or result expired)")
        if info.state is TaskState.DEAD:
            raise TaskDeadError(info)
        if info.state is TaskState.CANCELLED:
            raise TaskCancelledError(info)
        return info.result

    async def cancel(self, task_id: str, queue: str | None = None) -> bool:
        """Cancel a task; True when this call cancelled it.

        A pending, scheduled or retrying task is removed at once. A running one is stopped by
        its worker, told within a second (async handler: `CancelledError` at its next await;
        sync handler: `ctx.cancelled` turns true); its final state is `cancelled` whatever the
        handler does then. Either way the task is never retried nor dead-lettered, and its
        record is kept like a result. False for a task that already ended, an unknown id, or
        a cancel already requested.
        """
        return await cancel_task(self.broker, task_id, queue)

    async def schedules(self) -> list[ScheduleInfo]:
        """Every periodic task the workers run, with its last and next run."""
        return await list_schedules(self.broker)

    # Operator shortcuts used by the HTTP API and the console; thin wrappers over the broker.
    async def pause(self, queue: str) -> None:
        """Pause a queue."""
        await queue_ops.pause(self.broker, queue)

    async def resume(self, queue: str) -> None:
        """Resume a queue."""
        await queue_ops.resume(self.broker, queue)

    async def queues(self) -> list[queue_ops.QueueStats]:
        """Stats of every known queue."""
        return await queue_ops.all_queue_stats(self.broker)

    async def dead_letters(
        self, flt: dead_ops.DeadFilter | None = None, limit: int = 50, cursor: str | None = None
    ) -> dead_ops.DeadPage:
        """A page of dead letters."""
        return await dead_ops.list_dead(self.broker, flt, limit, cursor)


_SPEC_FIELDS = {
    "name": "name",
    "args": "args",
    "kwargs": "kwargs",
    "queue": "queue",
    "priority": "priority",
    "max_retries": "max_retries",
    "timeout": "timeout_s",
    "timeout_s": "timeout_s",
    "delay": "delay_s",
    "delay_s": "delay_s",
    "eta": "eta_s",
    "eta_s": "eta_s",
    "id": "id",
    "received_at_ms": "received_at_ms",
    "unique_for": "unique_for",
    "unique_key": "unique_key",
    "unique_until": "unique_until",
}


def _to_spec(item: TaskSpec | Mapping[str, Any], broker: Broker) -> TaskSpec:
    """A spec from a TaskSpec or a dict; a handler object given as the name brings its own
    declaration (it may be registered in another registry than the broker's)."""
    if isinstance(item, TaskSpec):
        return item
    unknown = set(item) - set(_SPEC_FIELDS)
    if unknown:
        raise ValueError(f"unknown task fields: {', '.join(sorted(unknown))}")
    if "name" not in item:
        raise ValueError("a task needs a name")
    fields = {_SPEC_FIELDS[k]: v for k, v in item.items()}
    target = fields["name"]
    definition = None
    if not isinstance(target, str):
        definition = declared.definition_of(target)
        if definition is None:
            raise TypeError(
                f"a task is a name or a @task handler, not {type(target).__name__}"
                + (" (decorate it with @task)" if callable(target) else "")
            )
        fields["name"] = definition.name
    return declared.resolve(TaskSpec(**fields), broker.registry, definition)
