"""Routing: a task runs only on a worker that has its handler; others hand it back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from support.polling import wait_for

from engine import Client, EngineConfig, TaskContext, TaskState, task
from engine import queues as queue_ops
from engine.task import TaskRegistry, TaskSpec
from engine.worker.pool import PoolSettings, WorkerPool
from engine.worker.registry import list_workers

ROOT = Path(__file__).resolve().parents[1]
Q = "default"


async def all_ended(client: Client, ids: list[str]) -> bool:
    stats = await queue_ops.queue_stats(client.broker, Q)
    return stats.pending + stats.active + stats.scheduled == 0 and bool(ids)


async def test_two_pools_each_run_only_their_tasks(redis: Redis, prefix: str) -> None:
    plain = TaskRegistry()  # like the console without --tasks: built-in tasks only
    capable = TaskRegistry()
    ran_by: dict[str, str] = {}

    @task(name="resize", registry=capable)
    async def resize(path: str, ctx: TaskContext) -> str:
        ran_by[ctx.id] = "capable"
        return path

    config = EngineConfig(prefix=prefix)
    async with Client(redis=redis, config=config, registry=TaskRegistry()) as client:
        settings = PoolSettings(queues=(Q,), concurrency=8, idle_block_s=0.05)
        a = WorkerPool(client.broker, settings, registry=plain, worker_id="plain")
        b = WorkerPool(client.broker, settings, registry=capable, worker_id="capable")
        await a.start()  # the plain pool starts first and sees every task before b exists
        ids = await client.enqueue_many(
            [{"name": "resize", "args": [f"{i}.png"]} for i in range(400)]
        )
        noops = await client.enqueue_many([{"name": "spool.noop"} for _ in range(50)])
        await asyncio.sleep(0.3)
        await b.start()
        try:
            await wait_for(lambda: all_ended(client, ids), 30, "every task ended")
            for tid in ids:
                info = await client.status(tid)
                assert info is not None and info.state is TaskState.SUCCEEDED, info
                assert info.attempts == 1  # hand-backs cost no attempt
            assert len(ran_by) == 400
            assert (await queue_ops.queue_stats(client.broker, Q)).dead == 0
            assert a.counts["handed_back"] > 0 and a.counts["dead"] == 0
            # The built-in tasks ran too (either pool has them).
            for tid in noops:
                info = await client.status(tid)
                assert info is not None and info.state is TaskState.SUCCEEDED
            records = {r.id: r for r in await list_workers(redis, prefix)}
            assert "resize" in records["capable"].tasks
            assert "resize" not in records["plain"].tasks
            assert "spool.noop" in records["plain"].tasks
        finally:
            await asyncio.gather(a.stop(grace_s=1), b.stop(grace_s=1))


def start_worker(redis_url: str, prefix: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = str(ROOT)
    env["WS_REDIS_URL"] = redis_url
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "spool_console.cli", "--no-ui", "--redis-url", redis_url,
             "--prefix", prefix, "--status-interval", "60", *extra],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


async def test_the_issue_scenario_with_real_processes(
    redis_url: str, redis: Redis, prefix: str, tmp_path: Path
) -> None:
    """A worker without --tasks (the console's pool) and one with them, 400 resize tasks:
    none dead, all run by the worker that has the handler."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_worker(redis_url, prefix, tmp_path / "plain.log"))
        procs.append(
            start_worker(
                redis_url, prefix, tmp_path / "tasks.log", "--tasks", "tests.workers_support.tasks"
            )
        )
        config = EngineConfig(prefix=prefix)
        async with Client(redis=redis, config=config, registry=TaskRegistry()) as client:

            async def two_workers() -> bool:
                return len(await list_workers(redis, prefix)) == 2

            await wait_for(two_workers, 30, "both workers announce themselves")
            ids = await client.broker.enqueue(
                [TaskSpec("ws.resize", args=[f"{i}.png"]) for i in range(400)]
            )
            await wait_for(lambda: all_ended(client, ids), 60, "every resize ended")
            states: dict[Any, int] = {}
            for tid in ids:
                info = await client.status(tid)
                key = None if info is None else info.state
                states[key] = states.get(key, 0) + 1
            assert states == {TaskState.SUCCEEDED: 400}
            assert (await queue_ops.queue_stats(client.broker, Q)).dead == 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await asyncio.to_thread(proc.wait, 30)
