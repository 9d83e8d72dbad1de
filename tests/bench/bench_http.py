"""Load generator for the HTTP ingress, run against a server in another process.

Measures, each as the median of ``--runs`` runs:
  * tasks/s through ``POST /v1/tasks/batch`` (batches of 100, a few connections),
  * requests/s through single ``POST /v1/tasks`` with 50 concurrent connections,
  * ingress latency (p50/p99) at a fixed 1,000 requests/s, open loop: each request is
    timed from its scheduled send time, so a slow server cannot hide its queueing delay.

Run: ``python tests/bench/bench_http.py [--redis-url URL] [--server bare|cli] [--runs 3]``.
Without ``--redis-url`` it starts an embedded valkey (no persistence) and stops it after.
``--server bare`` serves only the ingress (``start_http``); ``--server cli`` runs
``python -m spool_console.cli --no-ui --http ... --concurrency 32``, whose workers drain the
``spool.noop`` tasks while they arrive. Everything binds 127.0.0.1; every count is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from anywhere in the repo

import aiohttp  # noqa: E402
import orjson  # noqa: E402

BATCH = 100
# spool.noop takes no arguments: with --server cli the workers run these, and a TypeError per
# task would make the benchmark measure retries and traceback formatting instead.
SINGLE_BODY = orjson.dumps({"name": "spool.noop", "args": [], "kwargs": {}})
BATCH_BODY = orjson.dumps({"tasks": [{"name": "spool.noop"} for _ in range(BATCH)]})
HEADERS = {"Content-Type": "application/json"}


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the server process --------------------------------------------------------------------------
async def _serve(port: int, redis_url: str, prefix: str) -> None:
    from engine.broker import Broker
    from engine.config import EngineConfig
    from engine.connection import open_redis
    from engine.http.server import start_http

    redis = await open_redis(redis_url)
    runner = await start_http(Broker(redis, EngineConfig(prefix=prefix)), "127.0.0.1", port)
    try:
        await asyncio.Event().wait()  # until the parent terminates us
    finally:
        await runner.cleanup()
        await redis.aclose()


def serve_main(argv: list[str]) -> int:
    """`bench_http.py serve --port P --redis-url U --prefix X`: the bare ingress process."""
    p = argparse.ArgumentParser(prog="bench_http.py serve")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--prefix", required=True)
    a = p.parse_args(argv)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(a.port, a.redis_url, a.prefix))
    return 0


def start_server(kind: str, port: int, redis_url: str, prefix: str) -> subprocess.Popen[bytes]:
    """Start the server process (its output goes to a log file in the temp directory)."""
    if kind == "cli":
        cmd = [
            sys.executable,
            "-m",
            "spool_console.cli",
            "--no-ui",
            "--http",
            f"127.0.0.1:{port}",
            "--concurrency",
            "32",
            "--redis-url",
            redis_url,
            "--prefix",
            prefix,
            "--status-interval",
            "60",
        ]
    else:
        cmd = [
            sys.executable,
            __file__,
            "serve",
            "--port",
            str(port),
            "--redis-url",
            redis_url,
            "--prefix",
            prefix,
        ]
    log = open(Path(tempfile.gettempdir()) / f"bench_http_{kind}_{port}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, deadline_s: float = 30.0) -> None:
    """Poll /readyz until the server answers (a benchmark may poll; tests may not)."""
    end = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(base + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > end:
                raise SystemExit("bench_http: the server did not become ready")
            await asyncio.sleep(0.1)


# -- the three measurements ----------------------------------------------------------------------
def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False))


async def _closed_loop(url: str, body: bytes, requests: int, connections: int) -> float:
    """Send `requests` POSTs over `connections` workers; return the elapsed seconds."""
    left = requests
    errors = 0

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            async with s.post(url, data=body, headers=HEADERS) as r:
                await r.read()
                errors += r.status != 201

    async with _session(connections) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"bench_http: {errors} requests failed")
    return elapsed


async def batched(base: str, requests: int, connections: int) -> float:
    """Tasks/s through /v1/tasks/batch."""
    elapsed = await _closed_loop(base + "/v1/tasks/batch", BATCH_BODY, requests, connections)
    return requests * BATCH / elapsed


async def single(base: str, requests: int, connections: int) -> float:
    """Requests/s through /v1/tasks."""
    return requests / await _closed_loop(base + "/v1/tasks", SINGLE_BODY, requests, connections)


async def open_loop(base: str, rate: int, seconds: float) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, achieved requests/s) at a fixed arrival rate."""
    n = int(rate * seconds)
    latencies: list[float] = []
    url = base + "/v1/tasks"
    async with _session(1000) as s:
        # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
        clock = time.perf_counter
        t0 = clock() + 0.05

        async def one(at: float) -> None:
            async with s.post(url, data=SINGLE_BODY, headers=HEADERS) as r:
                await r.read()
                if r.status != 201:
                    raise SystemExit(f"bench_http: status {r.status}")
            latencies.append(clock() - at)  # from the scheduled time: no coordinated omission

        tasks = []
        for i in range(n):
            at = t0 + i / rate
            delay = at - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at)))
        await asyncio.gather(*tasks)
        achieved = n / (clock() - t0)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000, achieved


async def drained(base: str, deadline_s: float = 120.0) -> None:
    """Wait until no task is pending or active (with --server cli the workers drain them), so
    one phase's backlog does not eat the next phase's CPU."""
    end = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < end:
            async with s.get(base + "/v1/queues") as r:
                queues = (await r.json())["queues"]
            if all(q["pending"] + q["active"] == 0 for q in queues):
                return
            await asyncio.sleep(0.2)
    raise SystemExit("bench_http: the workers did not drain the queue in time")


async def run(args: argparse.Namespace, base: str) -> dict[str, list[float]]:
    """Every measurement, `args.runs` times each (after a short warm-up)."""
    await single(base, 500, 10)  # warm-up: connections, script cache, queue registration
    await batched(base, 20, 4)
    out: dict[str, list[float]] = {
        "batch_tasks_s": [],
        "single_req_s": [],
        "p50_ms": [],
        "p99_ms": [],
        "rate_achieved": [],
    }
    settle = drained if args.server == "cli" else _nothing
    for i in range(args.runs):
        await settle(base)
        out["batch_tasks_s"].append(await batched(base, args.batch_requests, args.batch_conns))
        await settle(base)
        out["single_req_s"].append(await single(base, args.single_requests, args.connections))
        await settle(base)
        p50, p99, achieved = await open_loop(base, args.rate, args.rate_seconds)
        out["p50_ms"].append(p50)
        out["p99_ms"].append(p99)
        out["rate_achieved"].append(achieved)
        print(
            f"run {i + 1}: batch {out['batch_tasks_s'][-1]:,.0f} tasks/s · single "
            f"{out['single_req_s'][-1]:,.0f} req/s · at {args.rate}/s p50 {p50:.2f} ms "
            f"p99 {p99:.2f} ms",
            flush=True,
        )
    return out


async def _nothing(base: str) -> None:
    """With the bare server nothing drains: tasks just accumulate (cleaned up at the end)."""


def _cleanup(redis_url: str, prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.unlink(*keys[i : i + 1000])
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Parse options, start Redis (if needed) and the server, measure, print medians."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--redis-url", help="default: an embedded server without persistence")
    p.add_argument("--server", choices=("bare", "cli"), default="bare")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-requests", type=int, default=400, help="batches of 100 per run")
    p.add_argument("--batch-conns", type=int, default=8)
    p.add_argument("--single-requests", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--rate-seconds", type=float, default=5.0)
    args = p.parse_args(argv)

    embedded = None
    url = args.redis_url
    if url is None:
        from engine.embedded import EmbeddedServer

        embedded = EmbeddedServer(
            Path(tempfile.mkdtemp(prefix="bench-http-")), port=0, persistence=False
        )
        embedded.start()
        url = embedded.url
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    proc = start_server(args.server, port, url, prefix)
    base = f"http://127.0.0.1:{port}"
    try:
        import uvloop

        uvloop.run(wait_ready(base))
        res = uvloop.run(run(args, base))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        _cleanup(url, prefix)
        if embedded is not None:
            embedded.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"median of {args.runs} (server={args.server}, cpus={os.cpu_count()}): "
        f"batched {med['batch_tasks_s']:,.0f} tasks/s · single {med['single_req_s']:,.0f} "
        f"req/s ({args.connections} connections) · at {args.rate} req/s: p50 "
        f"{med['p50_ms']:.2f} ms, p99 {med['p99_ms']:.2f} ms "
        f"(achieved {med['rate_achieved']:,.0f}/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
