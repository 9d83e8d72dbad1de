"""Micro-benchmark of the broker's hot paths: enqueue_many and fetch + settle (complete).

Run on demand (pytest does not collect it):

    .venv/bin/python tests/bench/bench_broker.py                      # embedded server, unix socket
    .venv/bin/python tests/bench/bench_broker.py --redis-url redis://127.0.0.1:6379/15

Each run enqueues `--tasks` no-op tasks in batches of `--batch` (one script call per batch), then
drains them with fetch(`--fetch`) + one settle call per fetched batch. Prints every run and the
median of `--runs` runs. Keys live under a fresh prefix per run and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import mask_url, open_redis
from engine.embedded import EmbeddedServer
from engine.outcomes import succeeded
from engine.task import TaskSpec

QUEUE = "bench"


async def one_run(url: str, tasks: int, batch: int, fetch_n: int) -> tuple[float, float]:
    """(enqueues per second, fetch+complete per second) of one run."""
    redis = await open_redis(url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=60))
    try:
        specs = [TaskSpec(name="noop", queue=QUEUE, args=[i]) for i in range(tasks)]
        await broker.enqueue([TaskSpec(name="warm-up", queue=QUEUE)])  # script load, register
        await broker.fetch(QUEUE, 1, "bench")
        start = time.perf_counter()
        for i in range(0, tasks, batch):
            await broker.enqueue(specs[i : i + batch])
        enqueue_rate = tasks / (time.perf_counter() - start)

        done = 0
        start = time.perf_counter()
        while True:
            got = (await broker.fetch(QUEUE, fetch_n, "bench")).tasks
            if not got:
                break
            now = int(time.time() * 1000)
            flags = await broker.settle(QUEUE, [succeeded(t, None, now, now) for t in got])
            done += sum(flags)
        drain_rate = done / (time.perf_counter() - start)
        if done != tasks:
            raise RuntimeError(f"drained {done} of {tasks} tasks")
        return enqueue_rate, drain_rate
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.unlink(*keys[i : i + 500])
        await redis.aclose()


async def main_async(args: argparse.Namespace) -> None:
    server = None
    url = args.redis_url
    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="spool-bench-")
        server = EmbeddedServer(
            Path(tmp.name), unix_socket=Path(tmp.name) / "v.sock", persistence=False
        )
        await asyncio.to_thread(server.start)
        url = server.url
    try:
        print(f"server: {mask_url(url)}; {args.tasks:,} tasks, enqueue batches of {args.batch},"
              f" fetch {args.fetch}, {args.runs} runs")
        enq: list[float] = []
        drain: list[float] = []
        for run in range(args.runs):
            e, d = await one_run(url, args.tasks, args.batch, args.fetch)
            enq.append(e)
            drain.append(d)
            print(f"  run {run + 1}: enqueue_many {e:>10,.0f}/s   fetch+complete {d:>10,.0f}/s")
        print(f"median: enqueue_many {statistics.median(enq):,.0f}/s   "
              f"fetch+complete {statistics.median(drain):,.0f}/s")
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
        if tmp is not None:
            tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=None, help="default: an embedded server")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--fetch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
