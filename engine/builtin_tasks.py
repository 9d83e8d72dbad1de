"""Built-in demo and benchmark tasks under `spool.`; registered in every registry on demand."""

from __future__ import annotations

import asyncio
import random
import time

from engine.task import TaskDef, TaskRegistry


async def noop() -> None:
    """Does nothing: measures the queue itself."""


async def sleep(ms: float = 10.0) -> float:
    """Sleeps `ms` milliseconds (an I/O-bound task)."""
    await asyncio.sleep(ms / 1000)
    return ms


async def fail(message: str = "spool.fail: failing on purpose") -> None:
    """Always raises (fills the dead-letter queue in demos)."""
    raise RuntimeError(message)


async def flaky(share: float = 0.3, ms: float = 0.0) -> str:
    """Fails a given share of attempts, at random."""
    if ms:
        await asyncio.sleep(ms / 1000)
    if random.random() < share:
        raise ConnectionError(f"spool.flaky: simulated transient failure (share {share})")
    return "ok"


async def stamp(sent_at_s: float) -> float:
    """Returns ms from `sent_at_s` (the producer's time.time()) to this handler's start."""
    return (time.time() - sent_at_s) * 1000


def cpu(n: int = 10_000) -> int:
    """Burns `n` iterations of arithmetic (a CPU-bound task, run in the thread pool)."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


BUILTINS = {
    "spool.noop": noop,
    "spool.sleep": sleep,
    "spool.fail": fail,
    "spool.flaky": flaky,
    "spool.cpu": cpu,
    "spool.stamp": stamp,
}


def register_builtins(registry: TaskRegistry) -> None:
    """Add the `spool.*` tasks to `registry` (idempotent)."""
    for name, fn in BUILTINS.items():
        if name not in registry:
            registry.register(
                TaskDef(
                    name=name,
                    fn=fn,
                    is_async=asyncio.iscoroutinefunction(fn),
                    timeout_s=None,
                    max_retries=None,
                    queue=None,
                    priority=None,
                    wants_context=False,
                )
            )
