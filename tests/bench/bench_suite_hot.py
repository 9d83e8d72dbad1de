"""Micro-benchmarks of the hot path: payload codec and the enqueue/fetch/settle Lua round trips.

Run on demand (not collected by pytest): ``python tests/bench/bench_suite_hot.py [--batch N]``.
Starts a private embedded server (persistence off) and prints medians in µs per task.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the repo

from engine import codec
from engine.bench.fleet import delete_prefix
from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded import EmbeddedServer
from engine.outcomes import succeeded
from engine.task import TaskSpec


def bench_codec(n: int = 50_000) -> float:
    """µs per encode_payload of a no-op task."""
    started = time.perf_counter()
    for _ in range(n):
        codec.encode_payload(
            level="default", name="spool.noop", args=[], kwargs={}, max_retries=3, timeout_s=None
        )
    return (time.perf_counter() - started) / n * 1e6


async def bench_round_trips(url: str, batch: int, runs: int) -> dict[str, float]:
    """Median µs per task of enqueue, fetch and settle at `batch` tasks per call."""
    redis = await open_redis(url)
    broker = Broker(redis, EngineConfig(prefix="spoolbench-hot"))
    out: dict[str, list[float]] = {"enqueue": [], "fetch": [], "settle": []}
    try:
        for _ in range(runs):
            specs = [TaskSpec("spool.noop") for _ in range(batch)]
            t = time.perf_counter()
            await broker.enqueue(specs)
            out["enqueue"].append(time.perf_counter() - t)
            t = time.perf_counter()
            got = await broker.fetch("default", batch, "bench-worker")
            out["fetch"].append(time.perf_counter() - t)
            now_ms = int(time.time() * 1000)
            outcomes = [succeeded(task, None, now_ms, now_ms) for task in got.tasks]
            t = time.perf_counter()
            await broker.settle("default", outcomes)
            out["settle"].append(time.perf_counter() - t)
    finally:
        await delete_prefix(redis, "spoolbench-hot")
        await redis.aclose()
    return {k: statistics.median(v) / batch * 1e6 for k, v in out.items()}


def main() -> None:
    """Print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"codec.encode_payload: {bench_codec():.2f} µs/task")
    with tempfile.TemporaryDirectory(prefix="spoolhot-", dir="/tmp") as tmp:
        server = EmbeddedServer(tmp, persistence=False).start()
        try:
            res = asyncio.run(bench_round_trips(server.url, args.batch, args.runs))
        finally:
            server.stop()
    for name, us in res.items():
        print(f"{name} (batch {args.batch}): {us:.2f} µs/task")


if __name__ == "__main__":
    main()
