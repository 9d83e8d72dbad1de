"""Periodic tasks: every= and cron= schedules, one run per tick fleet-wide, listed with their
last and next run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from support.polling import wait_for
from test_http_support import api_client

from engine import Client, EngineConfig, TaskContext, task
from engine.broker import Broker
from engine.schedule import Schedule, tick_id
from engine.task import TaskRegistry, TaskSpec
from engine.worker.pool import PoolSettings, WorkerPool

ROOT = Path(__file__).resolve().parents[1]
T = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def test_ticks_of_every_and_cron() -> None:
    every = Schedule("a", every_s=60)
    assert every.latest_at_or_before(T) == T - 20 and every.next_after(T) == T + 40
    assert every.latest_at_or_before(T - 20) == T - 20  # a tick is its own latest
    cron = Schedule("b", cron="*/5 * * * *")
    assert cron.latest_at_or_before(T) == T - 200 and cron.next_after(T) == T + 100
    assert cron.latest_at_or_before(T + 100) == T + 100
    paris = Schedule("c", cron="0 9 * * *", tz="Europe/Paris")
    assert time.gmtime(paris.next_after(T)).tm_hour == 8  # 09:00 in Paris is 08:00 UTC in Nov


def test_bad_declarations_are_refused() -> None:
    reg = TaskRegistry()
    with pytest.raises(ValueError, match="not both"):
        task(name="x", every=1, cron="* * * * *", registry=reg)
    with pytest.raises(ValueError, match="invalid cron"):
        task(name="x", cron="every day", registry=reg)
    with pytest.raises(ValueError, match="unknown time zone"):
        task(name="x", cron="* * * * *", tz="Mars/Olympus", registry=reg)
    with pytest.raises(ValueError, match="tz applies"):
        task(name="x", every=5, tz="UTC", registry=reg)
    with pytest.raises(ValueError, match="positive"):
        task(name="x", every=0, registry=reg)
    with pytest.raises(ValueError, match="without arguments"):

        @task(name="x", every=5, registry=reg)
        def needs(day: str) -> None: ...


async def test_one_enqueue_per_tick_and_only_the_latest_missed(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()

    @task(name="digest", every=10, queue="mail", registry=reg)
    async def digest() -> None: ...

    broker = Broker(redis, EngineConfig(prefix=prefix), registry=reg)
    now_ms = int(time.time() * 1000) // 10_000 * 10_000

    async def tick(ms: int) -> int:
        return await broker.schedule_tick(TaskSpec("digest", id=tick_id("digest", ms)), ms)

    assert await tick(now_ms - 30_000) == 0  # first sight: recorded, the schedule starts
    assert await tick(now_ms - 20_000) == 1
    assert await tick(now_ms - 20_000) == 0  # the same tick from another worker
    assert await tick(now_ms - 30_000) == 0  # an older one (a worker with a slow clock)
    # After an outage only the latest tick runs: the ones before it are past.
    assert await tick(now_ms) == 1
    assert await tick(now_ms - 10_000) == 0
    assert await tick(now_ms + 60_000) == -1  # not due by the server's clock
    pending = await redis.llen(broker.keys("mail").pending["default"])
    assert pending == 2


async def test_many_pools_enqueue_each_tick_once(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()
    runs: list[str] = []

    @task(name="beat", every=0.25, registry=reg)
    async def beat(ctx: TaskContext) -> None:
        runs.append(ctx.id)

    config = EngineConfig(prefix=prefix)
    async with Client(redis=redis, config=config, registry=reg) as client:
        pools = [
            WorkerPool(
                client.broker,
                PoolSettings(concurrency=2, idle_block_s=0.05),
                registry=reg,
                worker_id=f"w{i}",
            )
            for i in range(4)
        ]
        for pool in pools:
            await pool.start()
        try:
            await wait_for(lambda: len(runs) >= 1, 5, "the first tick ran")
            first = len(runs)
            await asyncio.sleep(2.0)
            ran = len(runs) - first
            assert 7 <= ran <= 9, runs  # 8 ticks in 2 s, give or take the edges
            assert len(set(runs)) == len(runs)  # never twice for one tick
            (info,) = await client.schedules()
            assert (info.name, info.queue, info.every_s) == ("beat", "default", 0.25)
            assert info.last_run_ms is not None and info.next_run_ms > info.last_run_ms
            async with api_client(client.broker) as api:
                body = await (await api.get("/v1/schedules")).json()
            assert [s["name"] for s in body["schedules"]] == ["beat"]
        finally:
            await asyncio.gather(*(p.stop(grace_s=1) for p in pools))


def start_worker(redis_url: str, prefix: str, key: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env.update(PYTHONPATH=str(ROOT), WS_REDIS_URL=redis_url, WS_TICKS_KEY=key)
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "spool_console.cli", "--no-ui", "--redis-url", redis_url,
             "--prefix", prefix, "--tasks", "tests.workers_support.periodic",
             "--status-interval", "60"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def test_two_worker_processes_run_an_every_second_task_once_per_tick(
    redis_url: str, redis: Redis, prefix: str, tmp_path: Path
) -> None:
    key = f"{prefix}:ticks"
    procs = [start_worker(redis_url, prefix, key, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        broker = Broker(redis, EngineConfig(prefix=prefix))
        sched_key = broker.keys("default").schedules

        async def started() -> bool:
            return await redis.hget(sched_key, "wp.tick") is not None

        await wait_for(started, 30, "the schedule is live")
        start_ms = int(await redis.hget(sched_key, "wp.tick"))
        await asyncio.sleep(5.5)
        end_ms = start_ms + 5500
        await asyncio.sleep(1.0)  # let the last tick's run finish
        counts = {k.decode(): int(v) for k, v in (await redis.hgetall(key)).items()}
        in_window = [tid for tid in counts if start_ms < int(tid.rsplit(":", 1)[1]) <= end_ms]
        assert 5 <= len(in_window) <= 6, counts
        assert all(v == 1 for v in counts.values()), counts  # never two runs for one tick
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await asyncio.to_thread(proc.wait, 30)
