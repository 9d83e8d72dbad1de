"""Running one task's handler: look it up, call it, enforce its timeout, turn it into an Outcome."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from engine import codec, tracing
from engine.config import EngineConfig
from engine.outcomes import Outcome, failed, succeeded
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
    ) -> None:
        self.config = config
        self.registry = registry
        self.worker_id = worker_id
        self.default_timeout_s = default_timeout_s
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spool-sync")
        self.stuck: set[Future[Any]] = set()
        self._deadlines: dict[int, float] = {}  # slot index -> monotonic deadline
        self._timed_out: set[int] = set()  # slots the watchdog cancelled

    async def run(self, t: FetchedTask, index: int) -> tuple[Outcome, float, float]:
        """Run `t` in slot `index`: its outcome, and when it started and finished (epoch s).

        A `CancelledError` that is not the watchdog's (a shutdown past the grace period)
        propagates: the task is then released, not failed.
        """
        started = time.time()
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
            return outcome, started, time.time()
        definition = self.registry.get(t.name)
        if definition is None:
            outcome = failed(
                t,
                None,
                self.config,
                exc_type="UnknownTask",
                message=f"no handler registered for task {t.name!r}",
                reason="unknown_task",
                retryable=False,
                worker=self.worker_id,
            )
            return outcome, started, time.time()
        if tracing.tracer is None:
            outcome = await self._call(t, definition, index, started)
            if outcome.kind != "s":
                _log_failure(outcome)
        else:
            with tracing.consumer_span(t) as span:
                outcome = await self._call(t, definition, index, started)
                if outcome.kind != "s":
                    tracing.record_failure(span, *_log_failure(outcome))
        return outcome, started, time.time()

    async def _call(
        self, t: FetchedTask, definition: TaskDef, index: int, started: float
    ) -> Outcome:
        """Call the handler with its arguments under its timeout; the attempt's outcome."""
        timeout = t.timeout_s or definition.timeout_s or self.default_timeout_s
        kwargs = t.kwargs
        if definition.wants_context:
            kwargs = {**kwargs, "ctx": TaskContext(t.id, t.queue, t.name, t.attempt, t.max_retries)}
        try:
            if definition.is_async:
                value = await self._run_async(definition.fn, t.args, kwargs, timeout, index)
            else:
                value = await self._run_sync(definition.fn, t.args, kwargs, timeout)
            outcome = succeeded(t, value, int(started * 1000), int(time.time() * 1000))
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
            raise
        except Exception as exc:
            outcome = failed(t, exc, self.config, worker=self.worker_id)
        return outcome

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
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError:
            if self.take_timeout(index):
                raise HandlerTimeout(f"timed out after {timeout:g} s") from None
            raise
        finally:
            self._deadlines.pop(index, None)

    def take_timeout(self, index: int) -> bool:
        """If the watchdog cancelled slot `index`, absorb that cancel and say so."""
        if index not in self._timed_out:
            return False
        self._timed_out.discard(index)
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return True

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
