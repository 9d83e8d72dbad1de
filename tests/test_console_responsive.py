"""A key press is handled within 100 ms while the local pool is offered 5,000 tasks/s.

What can fail here is keys waiting behind the pool. How fast the pool runs inside the UI
process is the machine's as much as ours (1,907–5,025 tasks/s across runs of one commit on this
2-core VM, quiet or not), so the rate is no target here (throughput targets live in
`spool-console bench`). What is asserted about the load is that the presses were measured under
the most the pool could do: it kept up with the 5,000/s offered, or it was saturated (a backlog
it could not drain).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from textual import events

from engine.broker import Broker
from engine.queues import queue_stats
from engine.task import TaskSpec
from spool_console.testing import make_app, make_settings, wait_until

RATE = 5_000
SATURATED = 1_000  # pending tasks left at the end: the pool could not keep up
BATCH = 100


async def produce(broker: Broker, queue: str) -> None:
    """Offer RATE no-op tasks a second, open loop, on the engine's own loop."""
    interval = BATCH / RATE
    next_at = time.monotonic()
    while True:
        await broker.enqueue([TaskSpec("spool.noop", queue=queue) for _ in range(BATCH)])
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def test_keys_answer_within_100ms_under_5000_tasks_per_s(redis_url, prefix) -> None:
    settings = make_settings(redis_url, prefix, workers=None, concurrency=32, queues=("hot",))
    app = make_app(settings, interval_s=1.0, warm_up=True)
    handled: list[float] = []
    original = app.action_show

    async def timed_show(mode: str) -> None:
        handled.append(time.perf_counter())
        await original(mode)

    app.action_show = timed_show  # type: ignore[method-assign]
    async with app.run_test(size=(160, 45)) as pilot:
        host = app.host
        await wait_until(
            pilot, lambda: host.pool is not None and host.snapshot.connected, what="pool up"
        )
        await wait_until(pilot, lambda: app.ready, what="start-up over (every screen built)")
        producer = host.run_soon(lambda: produce(host.broker, "hot"))
        try:
            pool = host.pool
            start_n = pool.counts["processed"]
            await wait_until(
                pilot, lambda: pool.counts["processed"] - start_n > RATE, what="pool busy"
            )
            n0, t0 = pool.counts["processed"], time.monotonic()
            latencies = []
            keyed: list[tuple[float, str, int]] = []
            for i in range(30):
                key = "12345"[i % 5]
                # What the terminal driver does with a key: post it to the app. (Pilot.press
                # would also wait for the screen to go idle, which a live dashboard never is.)
                before = time.perf_counter()
                app.post_message(events.Key(key, key))
                await wait_until(pilot, lambda: handled, timeout_s=5, what=f"key {key} handled")
                latencies.append((handled.pop() - before) * 1000)
                keyed.append((round(latencies[-1], 1), key, i))
                handled.clear()
                await pilot.pause(0.1)  # operators do not type 100 keys a second
            rate = (pool.counts["processed"] - n0) / (time.monotonic() - t0)
            backlog = (await host.call(lambda b: queue_stats(b, "hot"))).pending
        finally:
            producer.cancel()
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"\nresponsiveness: {len(latencies)} key presses while the pool ran"
            f" {rate:,.0f} tasks/s ({backlog:,} left pending):"
            f" p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms"
        )
        saturated = backlog >= SATURATED and rate >= 0.1 * RATE  # a backlog, and working on it
        assert rate >= 0.9 * RATE or saturated, (
            f"{rate:,.0f} tasks/s with {backlog:,} pending: the pool was neither keeping up with"
            f" {RATE:,}/s nor saturated, so this was not the UI under load"
        )
        # p95, not the maximum: on a 2-core machine one press in 30 can land behind a GC pass
        # or another process's time slice; a UI that blocks on the pool fails both bounds.
        assert p95 < 100, sorted(keyed, reverse=True)[:5]
        assert latencies[-1] < 500, sorted(keyed, reverse=True)[:5]
