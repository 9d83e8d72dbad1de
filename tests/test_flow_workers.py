"""Fleet-wide limits with three real worker processes sharing one server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from redis.asyncio import Redis
from support.polling import wait_for
from support.workers import Procs, stop_all, wait_exit

from engine import flow
from engine.broker import Broker
from engine.config import EngineConfig
from engine.queues import queue_stats, task_status
from engine.task import TaskSpec

Q = "default"
TASKS = ("--tasks", "tests.workers_support.flow_tasks")
# A slot is held for as long as its lease: a worker that misses renewing a 1 s lease on a busy
# machine loses the slot as it loses the task. The workers that must not exceed a limit use a
# lease no renewal misses; the one that is killed keeps the 1 s lease so its slots come back fast.
STEADY = ("--lease", "5")


def broker_for(redis: Redis, prefix: str) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, lease_s=1.0))


async def test_rate_limit_holds_across_three_processes_while_unlimited_tasks_flow(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = broker_for(redis, prefix)
    starts, free_done = f"{prefix}:t:starts", f"{prefix}:t:free"
    await broker.enqueue([TaskSpec("wf.rated", args=[starts]) for _ in range(2000)])
    # Unlimited work queued BEHIND the 2,000 limited tasks, on the same queue.
    await broker.enqueue([TaskSpec("wf.free", args=[free_done]) for _ in range(300)])
    for _ in range(3):
        procs.start(*TASKS, *STEADY, "--concurrency", "8")
    await wait_for(lambda: redis.llen(starts), 20, "the first limited task to start")
    await wait_for(
        lambda: _int_at_least(redis, free_done, 300), 10, "unlimited tasks behind them to finish"
    )
    t0 = float((await redis.lrange(starts, 0, 0))[0])
    cpu0, wall0 = [_cpu_s(p.pid) for p in procs.started], time.monotonic()
    await asyncio.sleep(max(0.0, t0 + 10.2 - time.time()))
    # Waiting on a limit is not busy: each process sleeps until the next reserved slot.
    busy = [
        (_cpu_s(p.pid) - c) / (time.monotonic() - wall0)
        for p, c in zip(procs.started, cpu0, strict=True)
    ]
    print(f"CPU share of each worker while throttled: {', '.join(f'{b:.0%}' for b in busy)}")
    assert max(busy) < 0.25
    times = [float(x) for x in await redis.lrange(starts, 0, -1)]
    in_window = sum(1 for t in times if t0 <= t < t0 + 10)
    print(f"rate limit 50/s, 3 processes: {in_window} started in 10 s ({in_window / 10:.1f}/s)")
    assert 475 <= in_window <= 525
    state = await flow.queue_flow(broker, Q)
    assert state.waiting_rate > 1000 and state.throttled_rate >= 1500
    stats = await queue_stats(broker, Q)
    assert stats.dead == 0
    await stop_all(procs.started)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _int_at_least(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.get(key) or 0) >= n


async def test_concurrency_limit_never_exceeded_and_a_killed_holder_gives_its_slot_back(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = broker_for(redis, prefix)
    running, seen = f"{prefix}:t:running", f"{prefix}:t:seen"
    # A first process takes the three slots with long first attempts, then dies holding them.
    hogs = await broker.enqueue(
        [TaskSpec("wf.conc", args=[running, seen, 60_000]) for _ in range(3)]
    )
    victim = procs.start(*TASKS, "--concurrency", "10")
    await wait_for(lambda: _in_state(broker, hogs, "active"), 20, "3 slots held by long tasks")
    victim.send_signal(signal.SIGKILL)
    await wait_exit(victim)
    ids = await broker.enqueue([TaskSpec("wf.conc", args=[running, seen, 30]) for _ in range(60)])
    for _ in range(3):
        procs.start(*TASKS, *STEADY, "--concurrency", "10")
    # The leases (1 s) expire, the reaper frees the slots, and everything finishes.
    await wait_for(lambda: _in_state(broker, ids + hogs, "succeeded"), 30, "all 63 tasks done")
    observed = [int(x) for x in await redis.lrange(seen, 0, -1)]
    print(f"concurrency=3 over 3 processes: max observed at once {max(observed)}")
    assert max(observed) <= 3 and len(observed) == 63
    state = await flow.queue_flow(broker, Q)
    assert state.throttled_concurrency > 0 and state.running_limited == {}
    await stop_all(procs.started[1:])


async def _in_state(broker: Broker, ids: list[str], state: str) -> bool:
    for task_id in ids:
        info = await task_status(broker, task_id, Q)
        if info is None or str(info.state) != state:
            return False
    return True


async def test_per_key_concurrency_one_at_a_time_per_account(
    redis: Redis, prefix: str, procs: Procs
) -> None:
    broker = broker_for(redis, prefix)
    seen = f"{prefix}:t:pk"
    accounts = ["a", "b", "c", "d"]
    ids = await broker.enqueue(
        [TaskSpec("wf.per_key", args=[acct, seen, 20]) for _ in range(10) for acct in accounts]
    )
    for _ in range(3):
        procs.start(*TASKS, *STEADY, "--concurrency", "10")
    await wait_for(lambda: _in_state(broker, ids, "succeeded"), 30, "all 40 per-key tasks done")
    peaks = {a: max(int(x) for x in await redis.lrange(f"{seen}:{a}", 0, -1)) for a in accounts}
    print(f"per-key concurrency=1: peak per account {peaks}")
    assert peaks == dict.fromkeys(accounts, 1)
    await stop_all(procs.started)
