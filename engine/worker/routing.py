"""Routing: a task runs only where its handler is.

Every worker announces the task names it has handlers for in its fleet record. A worker that
fetches a task it has no handler for hands it back (the delivery is not an attempt): to the
front of its level when another live worker announces the name, so that worker gets it next;
after a short delay when none does, so nobody spins on it. Only when no live worker has
announced the name for `grace_s` (default 5 min, `SPOOL_NO_HANDLER_GRACE_S`) does it go to
the dead-letter queue, with reason `no_handler`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from engine.config import EngineConfig
from engine.outcomes import Outcome, failed, handed_back
from engine.task import FetchedTask, TaskRegistry
from engine.worker.registry import WorkerRecord

DEFAULT_GRACE_S = 300.0


def grace_from_env() -> float:
    """`SPOOL_NO_HANDLER_GRACE_S`, else 5 minutes."""
    raw = os.environ.get("SPOOL_NO_HANDLER_GRACE_S")
    return float(raw) if raw else DEFAULT_GRACE_S


class Routing:
    """Decides what happens to a fetched task this process has no handler for."""

    def __init__(
        self,
        registry: TaskRegistry,
        config: EngineConfig,
        worker_id: str,
        *,
        grace_s: float | None = None,
        retry_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.config = config
        self.worker_id = worker_id
        self.grace_s = grace_from_env() if grace_s is None else grace_s
        self.retry_after_ms = int(retry_after_s * 1000)
        self._clock = clock
        self.elsewhere: frozenset[str] = frozenset()  # names other live workers announce
        self._unannounced_since: dict[str, float] = {}

    def runnable(self, t: FetchedTask) -> bool:
        """True when this process runs `t` itself (a corrupt payload too: it dead-letters it)."""
        return t.decode_error is not None or t.name in self.registry

    def update(self, records: Iterable[WorkerRecord]) -> None:
        """Take in the live fleet's announcements (every heartbeat)."""
        names: set[str] = set()
        for record in records:
            if record.id != self.worker_id:
                names.update(record.tasks)
        self.elsewhere = frozenset(names)
        for name in names:
            self._unannounced_since.pop(name, None)

    def outcome_for(self, t: FetchedTask) -> Outcome:
        """Hand `t` back, or dead-letter it once nobody has announced its name for the grace."""
        if t.name in self.elsewhere:
            return handed_back(t)
        now = self._clock()
        since = self._unannounced_since.setdefault(t.name, now)
        if now - since >= self.grace_s:
            return failed(
                t,
                None,
                self.config,
                exc_type="NoHandler",
                message=f"no live worker has a handler for task {t.name!r}"
                f" (none announced it for {self.grace_s:g} s)",
                reason="no_handler",
                retryable=False,
                worker=self.worker_id,
            )
        return handed_back(t, self.retry_after_ms)
