"""A mixed synthetic load of the built-in tasks, so every panel of the console has data."""

from __future__ import annotations

import asyncio
import random
import time

from engine.broker import Broker
from engine.metrics.recorder import MetricsRecorder
from engine.task import TaskSpec


def demo_batch(queue: str, rng: random.Random, size: int = 50) -> list[TaskSpec]:
    """One batch of mixed work: mostly quick tasks, some slow, some flaky, a few failing."""
    specs = []
    for _ in range(size):
        roll = rng.random()
        priority = rng.choices(("high", "default", "low"), (1, 6, 3))[0]
        if roll < 0.55:
            spec = TaskSpec("spool.noop", queue=queue, priority=priority)
        elif roll < 0.80:
            spec = TaskSpec(
                "spool.sleep", args=[rng.choice((2, 5, 20, 50))], queue=queue, priority=priority
            )
        elif roll < 0.93:
            spec = TaskSpec(
                "spool.flaky", kwargs={"share": 0.3}, queue=queue, priority=priority, max_retries=2
            )
        elif roll < 0.97:
            spec = TaskSpec("spool.cpu", args=[20_000], queue=queue, priority=priority)
        else:
            spec = TaskSpec(
                "spool.fail",
                args=[
                    rng.choice(
                        (
                            "payment gateway returned 502 for order 1234",
                            "image 7f3a9c2e not found in bucket",
                            "timeout talking to inventory after 30 s",
                        )
                    )
                ],
                queue=queue,
                priority=priority,
                max_retries=1,
            )
        specs.append(spec)
    return specs


async def run_demo_load(
    broker: Broker,
    queue: str = "default",
    rate_per_s: float = 400.0,
    seed: int | None = None,
    recorder: MetricsRecorder | None = None,
) -> None:
    """Enqueue the demo mix at about `rate_per_s` until cancelled.

    With a `recorder`, each batch's write is recorded as the `enqueue` stage and counted as
    `enqueued`, as the HTTP ingress does for its requests.
    """
    rng = random.Random(seed)
    batch = 20
    while True:
        started = time.perf_counter()
        await broker.enqueue(demo_batch(queue, rng, batch))
        if recorder is not None:
            recorder.record_stage("enqueue", time.perf_counter() - started, queue=queue)
            recorder.count("enqueued", batch, queue=queue)
        await asyncio.sleep(batch / rate_per_s)
