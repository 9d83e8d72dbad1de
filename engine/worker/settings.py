"""How a worker pool runs: its settings and its identity."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace

from engine.task import TaskRegistry


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How a pool runs. `concurrency` set means pinned; otherwise the auto-scaler moves it
    between `min_concurrency` and `max_concurrency`."""

    queues: tuple[str, ...] = ("default",)
    # Shares between queues under load, one weight per queue (empty: all equal).
    queue_weights: tuple[int, ...] = ()
    # Set on start for the pool's queues: serve a lower-level task first once it waited this
    # long (0: off; None: leave the queues' setting as it is).
    max_wait_s: float | None = None
    concurrency: int | None = None
    min_concurrency: int = 5
    max_concurrency: int = 30
    prefetch_ratio: float = 1.0
    fetch_batch_max: int = 256
    idle_block_s: float = 1.0
    default_timeout_s: float | None = 300.0
    thread_pool_size: int = 16
    grace_s: float = 30.0
    heartbeat_s: float = 2.0
    maintenance_s: float | None = None
    repair_every_s: float = 600.0
    # A tick of 0.1 s sees a burst within ~200 ms (one LLEN per level per tick is the cost).
    scaler_tick_s: float = 0.1
    wait_p95_target_s: float = 1.0
    scale_down_after_idle_s: float = 10.0
    scale_up_cooldown_s: float = 0.2
    watchdog_tick_s: float = 0.05
    fast_task_s: float = 0.002
    fast_fetch_min: int = 64
    # While tasks arrive often enough that waiting this long gathers two or more, the next
    # fetch and the next settle wait this long for company: fewer round trips per task at
    # thousands of tasks/s; at a few hundred a second nothing waits. 0 turns it off.
    coalesce_s: float = 0.001
    metrics_interval_s: float = 1.0


def make_worker_id() -> str:
    """host:pid:random — unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def with_declared_queues(settings: PoolSettings, registry: TaskRegistry) -> PoolSettings:
    """`settings` also working on every queue a registered task declares (`@task(queue=...)`),
    for a worker started without `--queue`: its tasks' queues are served, not left waiting."""
    extra = sorted(
        {d.queue for d in registry if d.queue is not None and d.queue not in settings.queues}
    )
    if not extra:
        return settings
    weights = settings.queue_weights + (1,) * len(extra) if settings.queue_weights else ()
    return replace(settings, queues=(*settings.queues, *extra), queue_weights=weights)
