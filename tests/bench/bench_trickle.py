"""One task at a time: a worker's CPU per task and one task's wait, beside huey.

Run: ``python tests/bench/bench_trickle.py [--url URL] [--rates 500,5000] [--seconds 10]
[--runs 3] [--concurrency 16] [--huey-python PATH] [--py-spy PATH --profile-dir DIR]
[--timeline]``.

Without ``--url`` an embedded server is started on a loopback TCP port (persistence off).

For each rate and run: one ``spool-console --no-ui`` worker process (this checkout's code:
run the script from another checkout to measure that one), and an open-loop producer here
(``engine.bench.producer``, the one ``bench --type latency`` uses) offering ``spool.stamp``
tasks, each carrying ``time.time()`` read just before its enqueue call; the handler returns its
own start minus that stamp, so the wait is measured by the handler. Reported per run:
``wait`` p50/p99 (ms), the worker process's CPU per task (µs, user + sys over the offer and
drain, from /proc; and "marginal": less what the same worker used per second idle just before,
its periodic duties), the server's CPU per task (``INFO cpu``) and server commands per task
(``INFO commandstats``: round trips are visible there as BLPOP/EVALSHA counts).

With ``--huey-python`` (a Python that has huey installed, e.g. a scratch venv: huey is not a
dependency of Spool) the same is measured for huey by the same method: a ``huey_consumer``
with one worker thread (LPUSH/BRPOP, no leases, no acks), a producer calling the task with
``time.time()``, the task returning its start minus that. Medians over ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import codec  # noqa: E402
from engine.bench.fleet import delete_prefix  # noqa: E402
from engine.bench.producer import OpenLoopProducer  # noqa: E402
from engine.broker import Broker  # noqa: E402
from engine.config import EngineConfig  # noqa: E402
from engine.connection import open_redis  # noqa: E402
from engine.queues import queue_stats  # noqa: E402
from engine.task import TaskSpec  # noqa: E402

Q = "trickle"
#: How long the idle worker's CPU is measured before each run.
IDLE_S = 3.0

HUEY_APP = """
import os, time
from huey import RedisHuey
huey = RedisHuey(os.environ["TRICKLE_HUEY_NAME"], url=os.environ["TRICKLE_URL"], blocking=True)

@huey.task()
def stamp(sent_at):
    return (time.time() - sent_at) * 1000
"""

HUEY_PRODUCER = """
import json, os, sys, time
from app import huey, stamp
rate, total, batch = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
seconds = float(sys.argv[4])
waits = []
if batch:  # closed loop: send a batch, wait for all of it, repeat
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent_at = time.time()
        for r in [stamp(sent_at) for _ in range(batch)]:
            v = r.get()
            while v is None:
                time.sleep(0.0005)
                v = r.get()
            waits.append(v)
else:
    results = []
    start = time.monotonic()
    for i in range(total):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        results.append(stamp(time.time()))
    for r in results:
        v = r.get(blocking=True, timeout=30)
        if v is not None:
            waits.append(v)
print(json.dumps({"waits": waits}))
"""


@dataclass(frozen=True)
class Run:
    """One measured run of one system at one rate."""

    p50_ms: float
    p99_ms: float
    worker_us: float
    redis_us: float
    calls: float
    done: int
    detail: dict[str, float]
    #: The idle worker's CPU (ms per s: its periodic duties), and the worker CPU per task
    #: without it (what each task adds).
    idle_ms_s: float = 0.0
    marginal_us: float = 0.0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def measured(
    waits: list[float],
    worker_cpu_s: float,
    redis_cpu_s: float,
    calls0: dict[str, int],
    calls1: dict[str, int],
) -> Run:
    """A Run of the tasks' waits, the CPU both sides spent and the server's command counts
    before and after (per task; commands under 0.01 a task are left out of the detail)."""
    done = len(waits)
    delta = {k: calls1.get(k, 0) - calls0.get(k, 0) for k in calls1}
    detail = {k: round(v / done, 2) for k, v in sorted(delta.items()) if v and v / done >= 0.01}
    return Run(
        pct(waits, 50),
        pct(waits, 99),
        worker_cpu_s / done * 1e6,
        redis_cpu_s / done * 1e6,
        sum(delta.values()) / done,
        done,
        detail,
    )


async def server_counters(redis) -> tuple[float, dict[str, int]]:  # type: ignore[no-untyped-def]
    cpu = await redis.info("cpu")
    stats = await redis.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def closed_loop(broker: Broker, batch: int, seconds: float) -> list[str]:
    """Enqueue `batch` stamped tasks in one call, wait until all are done, repeat: every
    batch finds the worker idle, whatever the machine's load."""
    keys = broker.keys(Q)
    ids: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent_at = time.time()
        got = await broker.enqueue([TaskSpec("spool.stamp", [sent_at], queue=Q)] * batch)
        ids += got
        results = [keys.result(i) for i in got]
        while await broker.redis.exists(*results) < len(results):
            await asyncio.sleep(0.0005)
    return ids


async def spool_run(
    url: str,
    rate: float,
    seconds: float,
    concurrency: int,
    profile: Path | None,
    spy: str | None,
    closed: int = 0,
    timeline: Path | None = None,
) -> Run:
    prefix = f"trickle-{uuid.uuid4().hex[:8]}"
    redis = await open_redis(url)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    worker = ["-m", "spool_console.cli"]
    if timeline is not None:
        worker = [str(ROOT / "tests" / "bench" / "fetch_timeline.py")]
        env["SPOOL_TIMELINE_OUT"] = str(timeline)
    cmd = [
        sys.executable, *worker, "--no-ui", "--redis-url", url,
        "--prefix", prefix, "--queue", Q, "--concurrency", str(concurrency),
        "--status-interval", "3600", "--grace", "5",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    spy_proc = None
    try:
        deadline = time.monotonic() + 60
        while await redis.hlen(broker.globals.workers) < 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start (exit {proc.returncode})")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # past start-up: the idle wait is the state measured
        total = int(rate * seconds)
        producer = OpenLoopProducer(
            broker, Q, "spool.stamp", [], rate=rate, total=total, stamp=True
        )
        keys = broker.keys(Q)
        if profile is not None and spy is not None:
            spy_proc = subprocess.Popen(
                [spy, "record", "--nonblocking", "-r", "250", "-d", str(int(seconds)), "-f",
                 "raw", "-o", str(profile), "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        idle0 = cpu_s(proc.pid)
        await asyncio.sleep(IDLE_S)
        idle_per_s = (cpu_s(proc.pid) - idle0) / IDLE_S
        redis_cpu0, calls0 = await server_counters(redis)
        worker0 = cpu_s(proc.pid)
        t0 = time.monotonic()
        if closed:
            ids = await closed_loop(broker, closed, seconds)
        else:
            await producer.run()
            ids = producer.ids
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = await queue_stats(broker, Q)
            if st.pending + st.active + st.scheduled == 0:
                break
            await asyncio.sleep(0.01)
        worker_cpu = cpu_s(proc.pid) - worker0
        elapsed = time.monotonic() - t0
        redis_cpu1, calls1 = await server_counters(redis)
        waits: list[float] = []
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            for raw in await redis.mget([keys.result(t) for t in chunk]):
                if raw is not None:
                    waits.append(float(codec.loads(raw)["result"]))
    finally:
        if spy_proc is not None:
            spy_proc.wait(timeout=seconds + 30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        await delete_prefix(redis, prefix)
        await redis.aclose()
    return replace(
        measured(waits, worker_cpu, redis_cpu1 - redis_cpu0, calls0, calls1),
        idle_ms_s=idle_per_s * 1000,
        marginal_us=(worker_cpu - idle_per_s * elapsed) / len(waits) * 1e6,
    )


async def huey_run(url: str, rate: float, seconds: float, python: str, closed: int = 0) -> Run:
    redis = await open_redis(url)
    with tempfile.TemporaryDirectory(prefix="trickle-huey-") as tmp:
        Path(tmp, "app.py").write_text(HUEY_APP)
        Path(tmp, "produce.py").write_text(HUEY_PRODUCER)
        name = f"trickle-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "PYTHONPATH": tmp, "TRICKLE_URL": url, "TRICKLE_HUEY_NAME": name}
        consumer = subprocess.Popen(
            [python, "-m", "huey.bin.huey_consumer", "app.huey", "-w", "1", "-k", "thread"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.sleep(2.0)  # the consumer's import and its first BRPOP
            redis_cpu0, calls0 = await server_counters(redis)
            worker0 = cpu_s(consumer.pid)
            out = subprocess.run(
                [python, "produce.py", str(rate), str(int(rate * seconds)), str(closed),
                 str(seconds)],
                cwd=tmp, env=env, capture_output=True, check=True,
            )  # fmt: skip
            worker_cpu = cpu_s(consumer.pid) - worker0
            redis_cpu1, calls1 = await server_counters(redis)
        finally:
            consumer.send_signal(signal.SIGINT)
            try:
                consumer.wait(15)
            except subprocess.TimeoutExpired:
                consumer.kill()
                consumer.wait()
        waits = json.loads(out.stdout)["waits"]
        async for key in redis.scan_iter(match=f"huey.*{name}*", count=1000):
            await redis.unlink(key)
    await redis.aclose()
    return measured(waits, worker_cpu, redis_cpu1 - redis_cpu0, calls0, calls1)


def line(system: str, rate: float, r: Run, closed: int = 0) -> str:
    how = f"closed {closed:>3}" if closed else f"{rate:>6,.0f}/s"
    return (
        f"{system:6s} {how}  wait p50 {r.p50_ms:6.3f} ms  p99 {r.p99_ms:7.3f} ms  "
        f"worker {r.worker_us:6.1f} us/task  redis {r.redis_us:5.1f} us/task  "
        f"{r.calls:4.2f} cmds/task  ({r.done} tasks)  idle {r.idle_ms_s:4.1f} ms/s  "
        f"marginal {r.marginal_us:6.1f} us/task  {r.detail}"
    )


async def main_async(args: argparse.Namespace, url: str) -> None:
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[tuple[str, float], list[Run]] = {}
    print(f"load at start: {os.getloadavg()[0]:.2f}", flush=True)
    for run in range(args.runs):
        for rate in rates:
            systems = ["spool"] + (["huey"] if args.huey_python else [])
            if run % 2:
                systems.reverse()  # alternate which goes first: the machine drifts
            for system in systems:
                if system == "spool":
                    profile = None
                    if args.profile_dir is not None and run == 0:
                        profile = Path(args.profile_dir) / f"spool-{int(rate)}.txt"
                    timeline = None
                    if args.timeline:
                        timeline = Path(tempfile.mkdtemp(prefix="trickle-")) / "timeline.json"
                    r = await spool_run(
                        url,
                        rate,
                        args.seconds,
                        args.concurrency,
                        profile,
                        args.py_spy,
                        args.closed,
                        timeline,
                    )
                    if timeline is not None:
                        print(f"run {run + 1} timeline (ms) {timeline.read_text()}", flush=True)
                else:
                    r = await huey_run(url, rate, args.seconds, args.huey_python, args.closed)
                results.setdefault((system, rate), []).append(r)
                print(f"run {run + 1} " + line(system, rate, r, args.closed), flush=True)
    print(f"load at end: {os.getloadavg()[0]:.2f}")
    print(f"medians of {args.runs}:")
    for (system, rate), runs in results.items():
        med = Run(
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
            statistics.median(r.worker_us for r in runs),
            statistics.median(r.redis_us for r in runs),
            statistics.median(r.calls for r in runs),
            runs[0].done,
            {},
            statistics.median(r.idle_ms_s for r in runs),
            statistics.median(r.marginal_us for r in runs),
        )
        print(line(system, rate, med, args.closed))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url")
    p.add_argument("--rates", default="500,5000")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--closed",
        type=int,
        default=0,
        metavar="B",
        help="closed loop instead of a rate: enqueue B tasks in one call, wait for them, repeat",
    )
    p.add_argument(
        "--timeline",
        action="store_true",
        help="run the worker under tests/bench/fetch_timeline.py: per-segment waits of each run",
    )
    p.add_argument("--huey-python", help="a Python with huey installed (compares huey too)")
    p.add_argument("--py-spy", help="py-spy binary: profile the worker in the first run")
    p.add_argument("--profile-dir", help="where py-spy writes spool-<rate>.txt (raw format)")
    args = p.parse_args()
    try:
        from uvloop import run  # the worker runs on uvloop too
    except ImportError:
        run = asyncio.run
    if args.url:
        run(main_async(args, args.url))
        return
    from engine.embedded import EmbeddedServer

    with tempfile.TemporaryDirectory(prefix="trickle-", dir="/tmp") as tmp:
        server = EmbeddedServer(tmp, port=0, persistence=False).start()
        try:
            run(main_async(args, server.url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
