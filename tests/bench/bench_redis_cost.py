"""Redis cost per task: server CPU and the commands the scripts run, in two regimes.

Run on demand (pytest does not collect it):

    .venv/bin/python tests/bench/bench_redis_cost.py [--tasks 100000]
    .venv/bin/python tests/bench/bench_redis_cost.py --rate 5000 [--duration 20]

A private embedded server each time. Drain (the default): `--tasks` no-ops are enqueued in
batches of 1,000 into a paused queue, then one pool (64 slots) drains them: big batches, the
regime of a backlog. Trickle (`--rate`): an open-loop producer offers `--rate` no-ops a second
(a batch every 2 ms tick, ~10 at 5,000/s) to one `spool-console --no-ui` worker process at
concurrency 16, as the soak does: small batches, where per-call costs (script set-up, wake-ups,
empty fetches, heartbeats, metrics) dominate. Prints, per task, the server's CPU (`INFO cpu`,
user + sys), commands per task (`INFO commandstats` calls: inside scripts and from clients),
and for the drain the memory the queued tasks held (`used_memory` delta), as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from engine.bench.fleet import Fleet
from engine.bench.producer import OpenLoopProducer, preload
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded import EmbeddedServer
from engine.queues import pause, resume
from engine.worker.pool import PoolSettings, WorkerPool

Q = "cost"


async def _sample(redis: Redis) -> tuple[float, dict[str, int]]:
    cpu = await redis.info("cpu")
    stats = await redis.info("commandstats")
    used = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    return used, {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _per_task(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    out = {k: round((v - before.get(k, 0)) / n, 2) for k, v in after.items()}
    return {k: v for k, v in out.items() if v >= 0.01 and k != "info"}


async def measure(url: str, n: int) -> dict[str, Any]:
    """One enqueue + drain of `n` no-ops against `url`; figures per task."""
    redis = await open_redis(url, max_connections=64)
    broker = Broker(redis, EngineConfig(prefix="costbench"))
    await broker.register_queues([Q])
    await pause(broker, Q)
    mem0 = int((await redis.info("memory"))["used_memory"])
    cpu0, calls0 = await _sample(redis)
    await preload(broker, Q, "spool.noop", [], n, batch=1000)
    cpu1, calls1 = await _sample(redis)
    mem1 = int((await redis.info("memory"))["used_memory"])
    pool = WorkerPool(broker, PoolSettings(queues=(Q,), concurrency=64, grace_s=5))
    await pool.start()
    await resume(broker, Q)
    while pool.counts["succeeded"] < n:
        await asyncio.sleep(0.005)
    cpu2, calls2 = await _sample(redis)
    await pool.stop()
    await redis.aclose()
    return {
        "tasks": n,
        "bytes_per_queued_task": round((mem1 - mem0) / n, 1),
        "enqueue_cpu_us": round((cpu1 - cpu0) / n * 1e6, 2),
        "drain_cpu_us": round((cpu2 - cpu1) / n * 1e6, 2),
        "total_cpu_us": round((cpu2 - cpu0) / n * 1e6, 2),
        "enqueue_calls": _per_task(calls0, calls1, n),
        "drain_calls": _per_task(calls1, calls2, n),
    }


async def _drained(broker: Broker) -> bool:
    keys = broker.keys(Q)
    async with broker.redis.pipeline(transaction=False) as pipe:
        for key in keys.pending_keys:
            pipe.llen(key)
        pipe.zcard(keys.active)
        return not any(await pipe.execute())


async def measure_trickle(url: str, rate: float, duration_s: float) -> dict[str, Any]:
    """`rate` no-ops a second for `duration_s` into one worker process; figures per task."""
    redis = await open_redis(url, max_connections=8)
    broker = Broker(redis, EngineConfig(prefix="costbench"))
    await broker.register_queues([Q])
    with tempfile.TemporaryDirectory() as logs:
        fleet = Fleet(url, "costbench", Q, Path(logs))
        fleet.spawn(1, 16, 16, 16)
        try:
            await fleet.wait_registered(redis, broker.globals.workers, 1, 60.0)
            total = round(rate * duration_s)
            producer = OpenLoopProducer(broker, Q, "spool.noop", [], rate=rate, total=total)
            cpu0, calls0 = await _sample(redis)
            started = time.monotonic()
            await producer.run()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not await _drained(broker):
                await asyncio.sleep(0.05)
            cpu1, calls1 = await _sample(redis)
            elapsed = time.monotonic() - started
        finally:
            await fleet.stop()
    await redis.aclose()
    return {
        "rate": rate,
        "tasks": total,
        "seconds": round(elapsed, 2),
        "redis_core_share": round((cpu1 - cpu0) / elapsed, 3),
        "cpu_us": round((cpu1 - cpu0) / total * 1e6, 2),
        "calls": _per_task(calls0, calls1, total),
    }


def main() -> None:
    """Parse flags, run once on a private embedded server, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rate", type=float, help="trickle: offer this many tasks a second")
    parser.add_argument("--duration", type=float, default=20.0, help="trickle: seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, EmbeddedServer(data, port=0) as server:
        if args.rate:
            figures = measure_trickle(server.url, args.rate, args.duration)
        else:
            figures = measure(server.url, args.tasks)
        print(json.dumps(asyncio.run(figures)))


if __name__ == "__main__":
    main()
