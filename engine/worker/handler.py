"""Running one task's handler: look it up, call it, enforce its timeout, turn it into an Outcome."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from engine import codec, tracing
from engine.config import EngineConfig
from engine.outcomes import Outcome, cancelled, failed, handed_back, succeeded
from engine.task import FetchedTask, TaskContext, TaskDef, TaskRegistry

log = logging.getLogger("spool.task")


def _log_failure(outcome: Outcome) -> tuple[str, str]:
    """One WARNING per failed attempt, with its error and never its arguments.

    Returns (exception type, first line of the error) for the trace.
    """
    t = outcome.task
    record = codec.loads(outcome.data)
    exc_type = str(record.get("exc_type") or "Error")
    lines = str(record.get("error") or "").strip().splitlines()
    error = lines[0] if lines else ""
    log.warning(
        "task %s %s (%s) attempt %d failed, %s: %s: %s",
        t.name,
        t.id,
        t.queue,
        t.attempt,
        "retrying" if outcome.kind == "r" else "dead-lettered",
        exc_type,
        error,
        extra={"task_id": t.id, "queue": t.queue, "task": t.name, "attempt": t.attempt},
    )
    return exc_type, error


def _absorb_cancel(marked: set[int], index: int) -> bool:
    """If slot `index` is in `marked` (its task was cancelled on purpose), take the mark, undo
    the current task's pending cancel and say so."""
    if index not in marked:
        return False
    marked.discard(index)
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
    return True


class HandlerTimeout(Exception):
    """The pool's own per-task timeout fired (distinct from a handler's TimeoutError)."""


class HandlerRunner:
    """Runs handlers for the slots.

    Coroutines are timed by a watchdog (`expire`, called every tick) that cancels the slot's
    asyncio task: cheaper per task than a timer handle each. Plain functions run on a thread
    pool; a thread cannot be killed, so one past its timeout is counted in `stuck` until it
    returns on its own.
    """

    def __init__(
        self,
        config: EngineConfig,
        registry: TaskRegistry,
        worker_id: str,
        *,
        default_timeout_s: float | None,
        threads: int,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.registry = registry
        self.worker_id = worker_id
        self.default_timeout_s = default_timeout_s
        self._clock = clock
        # Stamps of when a handler started and finished: on the server's time base (see
        # engine/clock.py), as the enqueue and fetch stamps they are compared with.
        self._wall = wall
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spool-sync")
        self.stuck: set[Future[Any]] = set()
        self._deadlines: dict[int, float] = {}  # slot index -> monotonic deadline
        self._timed_out: set[int] = set()  # slots the watchdog cancelled
        # Cancels asked for (by id; the task may not have started yet), the slot each running
        # task is in, the slots cancelled for that reason, and the events sync handlers see.
        self.cancel_requested: set[str] = set()
        self._running: dict[str, tuple[int, bool]] = {}  # id -> (slot, handler is async)
        self._cancelled_slots: set[int] = set()
        self._cancel_events: dict[str, threading.Event] = {}

    async def run(self, t: FetchedTask, index: int) -> tuple[Outcome, float, float]:
        """Run `t` in slot `index`: its outcome, and when it started and finished (epoch s).

        A `CancelledError` that is not the watchdog's (a shutdown past the grace period)
        propagates: the task is then released, not failed.
        """
        started = self._wall()
        outcome: Outcome
        if t.decode_error is not None:
            outcome = failed(
                t,
                None,
                self.config,
                exc_type="UndecodablePayload",
                message=t.decode_error,
                reason="undecodable",
                retryable=False,
                worker=self.worker_id,
            )
            return outcome, started, self._wall()
        definition = self.registry.get(t.name)
        if definition is None:  # the fetcher routes these; a registry changed since then
            return handed_back(t), started, self._wall()
        if t.id in self.cancel_requested:  # cancelled before it started: do not run it
            self.cancel_requested.discard(t.id)
            return cancelled(t), started, self._wall()
        if tracing.tracer is None:
            outcome = await self._call(t, definition, index, started)
            if outcome.kind != "s":
                _log_failure(outcome)
        else:
            with tracing.consumer_span(t) as span:
                outcome = await self._call(t, definition, index, started)
                if outcome.kind != "s":
                    tracing.record_failure(span, *_log_failure(outcome))
        return outcome, started, self._wall()

    async def _call(
        self, t: FetchedTask, definition: TaskDef, index: int, started: float
    ) -> Outcome:
        """Call the handler with its arguments under its timeout; the attempt's outcome."""
        timeout = t.timeout_s or definition.timeout_s or self.default_timeout_s
        kwargs = t.kwargs
        if definition.wants_context:
            event = self._cancel_events[t.id] = threading.Event()
            ctx = TaskContext(t.id, t.queue, t.name, t.attempt, t.max_retries, event)
            kwargs = {**kwargs, "ctx": ctx}
        self._running[t.id] = (index, definition.is_async)
        try:
            if definition.is_async:
                value = await self._run_async(definition.fn, t.args, kwargs, timeout, index)
            else:
                value = await self._run_sync(definition.fn, t.args, kwargs, timeout)
            outcome = succeeded(t, value, int(started * 1000), int(self._wall() * 1000))
        except HandlerTimeout as exc:
            outcome = failed(
                t,
                None,
                self.config,
                exc_type="TimeoutError",
                message=str(exc),
                reason="timeout",
                worker=self.worker_id,
            )
        except asyncio.CancelledError:
            if not self._take_cancel(index):
                raise  # a shutdown past the grace period: the task is released, not failed
            outcome = cancelled(t)
        except Exception as exc:
            outcome = failed(t, exc, self.config, worker=self.worker_id)
        finally:
            self._running.pop(t.id, None)
            if definition.wants_context:
                self._cancel_events.pop(t.id, None)
            if self._cancelled_slots:
                self._take_cancel(index)  # a handler that swallowed the CancelledError
        if self.cancel_requested and t.id in self.cancel_requested:
            self.cancel_requested.discard(t.id)
            if outcome.kind != "c":
                outcome = cancelled(t)
        return outcome

    def cancel(self, task_id: str, slots: Mapping[int, asyncio.Task[None]]) -> None:
        """Stop task `task_id` if it runs here: an async handler gets `CancelledError` at its
        next await; a sync one sees `ctx.cancelled` turn true. A task not started yet is
        skipped when its turn comes. Either way it settles as cancelled."""
        self.cancel_requested.add(task_id)
        event = self._cancel_events.get(task_id)
        if event is not None:
            event.set()
        running = self._running.get(task_id)
        if running is None or running[0] in self._cancelled_slots:
            return
        index, is_async = running
        slot = slots.get(index)
        if slot is not None and is_async:
            self._cancelled_slots.add(index)
            slot.cancel()

    def _take_cancel(self, index: int) -> bool:
        """If slot `index` was cancelled to stop its task, absorb that cancel and say so."""
        return _absorb_cancel(self._cancelled_slots, index)

    async def _run_async(
        self,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        index: int,
    ) -> Any:
        if not timeout:
            return await fn(*args, **kwargs)
        self._deadlines[index] = self._clock() + timeout
        # However the handler reacts to the watchdog's cancel (lets it through, swallows it and
        # returns, turns it into another exception), the slot's timeout mark is taken and its
        # cancel undone here: left behind, the watchdog would skip this slot's next deadline.
        try:
            value = await fn(*args, **kwargs)
        except asyncio.CancelledError:
            if self.take_timeout(index):
                raise HandlerTimeout(f"timed out after {timeout:g} s") from None
            raise
        except Exception as exc:
            if self.take_timeout(index):
                raise HandlerTimeout(
                    f"timed out after {timeout:g} s (the handler turned the cancellation into"
                    f" {type(exc).__name__})"
                ) from None
            raise
        finally:
            self._deadlines.pop(index, None)
        if self.take_timeout(index):
            raise HandlerTimeout(f"timed out after {timeout:g} s (the handler ignored the cancel)")
        return value

    def take_timeout(self, index: int) -> bool:
        """If the watchdog cancelled slot `index`, absorb that cancel and say so."""
        return _absorb_cancel(self._timed_out, index)

    def expire(self, slots: Mapping[int, asyncio.Task[None]]) -> None:
        """The watchdog's tick: cancel every slot whose handler is past its deadline."""
        now = self._clock()
        for index, deadline in list(self._deadlines.items()):
            if now >= deadline and index not in self._timed_out:
                slot = slots.get(index)
                if slot is not None:
                    self._timed_out.add(index)
                    slot.cancel()

    async def _run_sync(
        self, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout: float | None
    ) -> Any:
        future = self._executor.submit(functools.partial(fn, *args, **kwargs))
        wrapped = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(asyncio.shield(wrapped), timeout)
        except TimeoutError:
            if future.done():
                return future.result()
            self.stuck.add(future)
            future.add_done_callback(self.stuck.discard)
            raise HandlerTimeout(
                f"timed out after {timeout:g} s (sync handler; its thread is still running)"
            ) from None

    def shutdown(self) -> None:
        """Stop the thread pool without waiting for stuck threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
