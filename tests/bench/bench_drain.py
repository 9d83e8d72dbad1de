"""Drain throughput and wake-up latency of one `spool-console --no-ui` process.

Run: ``python tests/bench/bench_drain.py [--url URL] [--mode drain|latency|both]
[--tasks 100000] [--concurrency 64] [--rate 500] [--seconds 10] [--runs 3]``.

Without ``--url`` an embedded server is started on a private unix socket (persistence off).

drain:   enqueue N ``spool.noop`` into a fresh prefix, start ONE worker process, time from its
         start until pending + active == 0; prints tasks/s (and the rate from the first fetch,
         which leaves out the process start-up).
latency: start the worker, offer ``--rate`` tasks/s for ``--seconds`` (open loop: the schedule
         is kept whatever the replies do), each carrying its enqueue wall time; the handler
         returns ``now - enqueue time`` (the wait from enqueue to handler start); prints p50/p99.
Medians over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import codec  # noqa: E402
from engine.broker import Broker  # noqa: E402
from engine.config import EngineConfig  # noqa: E402
from engine.connection import open_redis  # noqa: E402
from engine.queues import queue_stats  # noqa: E402
from engine.task import TaskSpec  # noqa: E402
from engine.worker.registry import list_workers  # noqa: E402

Q = "default"


def start_worker(url: str, prefix: str, concurrency: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [
            sys.executable, "-m", "spool_console.cli", "--no-ui", "--redis-url", url,
            "--prefix", prefix, "--concurrency", str(concurrency), "--status-interval", "3600",
            "--tasks", "tests.workers_support.bench_tasks",
        ],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"worker exited with {proc.returncode}:\n{err[-3000:]}")


async def cleanup(redis, prefix: str) -> None:  # type: ignore[no-untyped-def]
    batch = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=2000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


async def drain_once(url: str, n: int, concurrency: int) -> tuple[float, float]:
    redis = await open_redis(url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    broker = Broker(redis, EngineConfig(prefix=prefix))
    try:
        for start in range(0, n, 5000):
            await broker.enqueue([TaskSpec("spool.noop") for _ in range(min(5000, n - start))])
        t0 = time.perf_counter()
        proc = start_worker(url, prefix, concurrency)
        t_first = None
        while True:
            st = await queue_stats(broker, Q)
            if t_first is None and st.pending < n:
                t_first = time.perf_counter()
            if st.pending + st.active == 0:
                break
            if proc.poll() is not None:
                raise SystemExit(f"worker died: {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            await asyncio.sleep(0.002)
        t1 = time.perf_counter()
        stop_worker(proc)
        return n / (t1 - t0), n / (t1 - (t_first or t0))
    finally:
        await cleanup(redis, prefix)
        await redis.aclose()


async def latency_once(url: str, rate: float, seconds: float, concurrency: int) -> list[float]:
    redis = await open_redis(url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    broker = Broker(redis, EngineConfig(prefix=prefix))
    proc = start_worker(url, prefix, concurrency)
    try:
        while not await list_workers(redis, prefix):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # let it settle into its idle BLPOP
        total = int(rate * seconds)
        ids: list[str] = []
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        pending: set[asyncio.Task[list[str]]] = set()
        for i in range(total):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # Open loop: fire on schedule without waiting for the previous enqueue's reply.
            spec = TaskSpec("bench.stamp", args=[time.time()])
            task = asyncio.create_task(broker.enqueue([spec]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(lambda t: ids.extend(t.result()))
        while pending:
            await asyncio.sleep(0.01)
        keys = broker.keys(Q)
        waits: list[float] = []
        deadline = time.monotonic() + 30
        while len(waits) < len(ids) and time.monotonic() < deadline:
            waits = []
            for j in range(0, len(ids), 1000):
                for raw in await redis.mget([keys.result(t) for t in ids[j : j + 1000]]):
                    if raw is not None:
                        waits.append(codec.loads(raw)["result"])
            if len(waits) < len(ids):
                await asyncio.sleep(0.1)
        return sorted(waits)
    finally:
        stop_worker(proc)
        await cleanup(redis, prefix)
        await redis.aclose()


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def main_async(args: argparse.Namespace, url: str) -> None:
    print(f"server: {url} · python {sys.version.split()[0]} · concurrency {args.concurrency}")
    if args.mode in ("drain", "both"):
        rates, warm = [], []
        for run in range(args.runs):
            r, w = await drain_once(url, args.tasks, args.concurrency)
            rates.append(r)
            warm.append(w)
            print(f"  drain run {run + 1}: {r:,.0f} tasks/s (from first fetch: {w:,.0f}/s)")
        print(
            f"drain {args.tasks:,} spool.noop, one process: median {statistics.median(rates):,.0f}"
            f" tasks/s from process start; {statistics.median(warm):,.0f} tasks/s from first fetch"
        )
    if args.mode in ("latency", "both"):
        p50s, p99s = [], []
        for run in range(args.runs):
            waits = await latency_once(url, args.rate, args.seconds, args.concurrency)
            p50, p99 = pct(waits, 0.50) * 1000, pct(waits, 0.99) * 1000
            p50s.append(p50)
            p99s.append(p99)
            print(
                f"  latency run {run + 1}: {len(waits):,} tasks, wait p50 {p50:.3f} ms"
                f" p99 {p99:.3f} ms max {waits[-1] * 1000:.3f} ms"
            )
        print(
            f"wait enqueue->handler start at {args.rate:g}/s offered: median p50"
            f" {statistics.median(p50s):.3f} ms, median p99 {statistics.median(p99s):.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="Redis URL (default: embedded server on a unix socket)")
    parser.add_argument("--mode", choices=("drain", "latency", "both"), default="both")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.url:
        asyncio.run(main_async(args, args.url))
        return
    from engine.embedded import EmbeddedServer

    with tempfile.TemporaryDirectory(prefix="spool-bench-") as tmp:
        server = EmbeddedServer(tmp, persistence=False)
        server.start()
        try:
            asyncio.run(main_async(args, server.url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
