"""What a finished attempt turns into: a result, a retry after backoff, or a dead letter."""

from __future__ import annotations

import random
import time
import traceback as tb_module
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from engine import codec
from engine.config import EngineConfig
from engine.fingerprint import fingerprint
from engine.task import FetchedTask


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item of a settle batch. `kind`: "s" succeeded, "r" retry, "d" dead, "c" cancelled,
    "h" handed back (no handler in this process)."""

    kind: str
    task: FetchedTask
    data: bytes
    delay_ms: int = 0

    @property
    def token(self) -> str:
        """The lease token this outcome is guarded by."""
        return self.task.token


def cancelled(task: FetchedTask) -> Outcome:
    """The task stopped because it was cancelled (settle records it as `cancelled`)."""
    return Outcome("c", task, b"{}")


def handed_back(task: FetchedTask, delay_ms: int = 0) -> Outcome:
    """This worker cannot run the task: back to the front of its level (or after `delay_ms`),
    the delivery not counted as an attempt."""
    return Outcome("h", task, b"{}", delay_ms=delay_ms)


def backoff_delay_s(
    attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: between half and all of `base * 2**(attempt-1)`."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return ceiling * (0.5 + rand() / 2)


def succeeded(task: FetchedTask, value: Any, started_at_ms: int, finished_at_ms: int) -> Outcome:
    """A success. Raises `TypeError` (naming the type) if JSON cannot carry `value`."""
    try:
        record = orjson.dumps(
            {
                "state": "succeeded",
                "name": task.name,
                "attempts": task.attempt,
                "enqueued_at_ms": int(task.enqueued_at_ms),
                "fetched_at_ms": int(task.fetched_at_ms),
                "started_at_ms": started_at_ms,
                "finished_at_ms": finished_at_ms,
                "result": value,
            },
            option=codec.STRICT_OPTIONS,
        )
        # orjson writes NaN and inf as null; only a result that is not None can hide one.
        if value is not None and b"null" in record and codec.has_nonfinite(value):
            raise TypeError("NaN and infinite floats cannot be encoded as JSON")
    except TypeError as exc:
        raise TypeError(
            f"the handler returned a {type(value).__name__}, which JSON cannot carry: {exc}"
        ) from None
    return Outcome("s", task, record)


def error_record(
    task: FetchedTask,
    *,
    exc_type: str,
    message: str,
    traceback: str = "",
    reason: str = "error",
    worker: str = "",
) -> dict[str, object]:
    """The dict stored for a failed attempt (retrying) or a dead letter."""
    return {
        "error": message,
        "exc_type": exc_type,
        "traceback": traceback,
        "reason": reason,
        "worker": worker,
        "attempts": task.attempt,
        "name": task.name,
        "fingerprint": fingerprint(exc_type, message),
        "died_at_ms": int(time.time() * 1000),
    }


def failed(
    task: FetchedTask,
    exc: BaseException | None,
    config: EngineConfig,
    *,
    message: str | None = None,
    exc_type: str | None = None,
    reason: str = "error",
    retryable: bool = True,
    worker: str = "",
    rand: Callable[[], float] = random.random,
) -> Outcome:
    """Retry after backoff while attempts remain (and the error is retryable), else dead."""
    if exc is not None:
        exc_type = exc_type or type(exc).__name__
        message = message or str(exc) or exc_type
        trace = "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
    else:
        trace = ""
    record = error_record(
        task,
        exc_type=exc_type or "Error",
        message=message or "failed",
        traceback=trace,
        reason=reason,
        worker=worker,
    )
    if retryable and task.attempt <= task.max_retries:
        delay = backoff_delay_s(task.attempt, config.backoff_base_s, config.backoff_cap_s, rand)
        return Outcome("r", task, codec.dumps(record), delay_ms=max(0, int(delay * 1000)))
    return Outcome("d", task, codec.dumps(record))
