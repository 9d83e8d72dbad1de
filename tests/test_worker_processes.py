"""Real `spool-console --no-ui` processes: SIGKILL, SIGTERM drain, crash loops, three workers."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from support.polling import wait_for as _wait_for
from support.workers import Procs, log_of, wait_exit

from engine.broker import Broker
from engine.config import EngineConfig
from engine.dead import get_dead
from engine.queues import queue_stats, task_status
from engine.task import TaskSpec, TaskState
from engine.worker.registry import list_workers

Q = "default"


async def wait_for(fn: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    """Processes start slowly: a longer default deadline than the shared helper's."""
    return await _wait_for(fn, timeout_s, what)


def broker_for(redis: Redis, prefix: str) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, lease_s=1.0))


async def states(broker: Broker, ids: list[str]) -> dict[str, Any]:
    return {tid: await task_status(broker, tid, Q) for tid in ids}


async def all_succeeded(broker: Broker, ids: list[str]) -> bool:
    infos = await states(broker, ids)
    return all(i is not None and i.state is TaskState.SUCCEEDED for i in infos.values())


async def test_sigkill_in_flight_tasks_are_completed_by_another_process(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = broker_for(redis, prefix)
    ids = await broker.enqueue([TaskSpec("ws.slow_first", args=[30_000]) for _ in range(6)])
    first = procs.start("--concurrency", "8")
    await wait_for(lambda: _active_is(broker, 6), what="all 6 in flight in the first process")
    first.send_signal(signal.SIGKILL)
    assert await wait_exit(first) == -signal.SIGKILL
    second = procs.start("--concurrency", "8")
    await wait_for(lambda: all_succeeded(broker, ids), 15, "every task completed by process 2")
    for info in (await states(broker, ids)).values():
        assert info.attempts == 2 and info.result == 2  # the second delivery, after the lease
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.active, stats.scheduled, stats.dead) == (0, 0, 0, 0)
    second.send_signal(signal.SIGTERM)
    assert await wait_exit(second) == 0, log_of(second)


async def _active_is(broker: Broker, n: int) -> bool:
    return (await queue_stats(broker, Q)).active == n


async def test_sigterm_drains_gracefully(redis: Redis, prefix: str, procs: Procs) -> None:
    broker = broker_for(redis, prefix)
    # 2 slots + 2 prefetched; each task outlives the 1 s lease, so renewal must keep going.
    ids = await broker.enqueue([TaskSpec("ws.sleep", args=[1500]) for _ in range(4)])
    proc = procs.start("--concurrency", "2", "--grace", "10")
    await wait_for(lambda: _active_is(broker, 4), what="2 running + 2 prefetched")
    workers = await list_workers(redis, prefix)
    assert [w.pid for w in workers] == [proc.pid]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert await wait_exit(proc, 10) == 0, log_of(proc)
    assert time.monotonic() - t0 < 5
    infos = list((await states(broker, ids)).values())
    done = [i for i in infos if i.state is TaskState.SUCCEEDED]
    back = [i for i in infos if i.state is TaskState.PENDING]
    assert len(done) == 2 and all(i.attempts == 1 for i in done), infos
    assert len(back) == 2 and all(i.attempts == 0 for i in back), infos  # not counted
    stats = await queue_stats(broker, Q)
    assert stats.active == 0 and stats.pending == 2 and stats.late_rejected == 0
    assert await list_workers(redis, prefix) == []  # deregistered
    assert not await redis.hlen(f"{prefix}:workers")
    assert "draining" in log_of(proc)


async def test_crash_loop_ends_in_dlq_after_crash_limit_deliveries(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = broker_for(redis, prefix)
    others = await broker.enqueue([TaskSpec("spool.noop") for _ in range(10)])
    (bad,) = await broker.enqueue([TaskSpec("ws.crash", max_retries=10)])
    more = await broker.enqueue([TaskSpec("spool.noop") for _ in range(10)])
    crashed = 0
    survivor = None
    for _ in range(6):
        proc = procs.start("--concurrency", "4")
        while proc.poll() is None and await get_dead(broker, Q, bad) is None:
            await asyncio.sleep(0.02)
        if proc.poll() is None:
            survivor = proc
            break
        assert proc.returncode == 1  # os._exit(1) in the handler
        crashed += 1
    assert survivor is not None, f"still crashing after {crashed} processes"
    assert crashed == 3  # crash_limit: three deliveries, three dead processes
    item = await get_dead(broker, Q, bad)
    assert item is not None and item.reason == "crash_loop"
    assert item.attempts == 3 and item.exc_type == "LeaseExpired"
    assert "crash_loop" in item.error and "last worker" in item.error and item.worker
    try:
        await wait_for(lambda: all_succeeded(broker, others + more), 10, "the other tasks finished")
    except AssertionError:
        raise AssertionError(await _debug_states(broker, others + more)) from None
    assert survivor.poll() is None  # the last process lives on
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.active, stats.dead) == (0, 0, 1)
    survivor.send_signal(signal.SIGTERM)
    assert await wait_exit(survivor) == 0, log_of(survivor)


async def test_three_processes_complete_10000_tasks_each_once(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = broker_for(redis, prefix)
    counter = f"{prefix}:test:runs"
    n = 10_000
    ids: list[str] = []
    for start in range(0, n, 2000):
        ids += await broker.enqueue(
            [TaskSpec("ws.count", args=[counter]) for _ in range(start, min(n, start + 2000))]
        )
    workers = [procs.start("--concurrency", "32") for _ in range(3)]
    await wait_for(lambda: _drained(broker, redis, counter, n), 40, "10,000 tasks completed")
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    codes = [await wait_exit(p) for p in workers]
    assert codes == [0, 0, 0], [log_of(p)[-2000:] for p in workers]
    runs = await redis.hgetall(counter)
    assert len(runs) == n and {int(v) for v in runs.values()} == {1}
    assert {k.decode() for k in runs} == set(ids)
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.active, stats.scheduled, stats.dead) == (0, 0, 0, 0)
    assert stats.late_rejected == 0
    async with redis.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.exists(broker.keys(Q).result(tid))
        assert all(await pipe.execute())
    # Every process took a share (all three were really working).
    logs = [log_of(p) for p in workers]
    assert all("stopped:" in text for text in logs)
    shares = [int(text.split("stopped: ")[1].split(" processed")[0]) for text in logs]
    assert sum(shares) == n and min(shares) > 0, shares


async def _drained(broker: Broker, redis: Redis, counter: str, n: int) -> bool:
    if await redis.hlen(counter) < n:
        return False
    stats = await queue_stats(broker, Q)
    return stats.pending == 0 and stats.active == 0


async def _debug_states(broker: Broker, ids: list[str]) -> list[tuple[str, int, str | None]]:
    return [(str(i.state), i.attempts, i.reason) for i in (await states(broker, ids)).values()]
