"""One time base for stage timings: a worker whose clock is off does not skew its metrics."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from support.polling import wait_for

from engine.broker import Broker
from engine.clock import ServerClock
from engine.config import EngineConfig
from engine.task import TaskSpec
from engine.worker.pool import PoolSettings, WorkerPool

SKEW_S = 120.0


def skewed_wall() -> float:
    """A host clock 120 s ahead of the server's."""
    return time.time() + SKEW_S


async def test_server_clock_measures_the_offset(redis: Redis) -> None:
    clock = ServerClock(redis, wall=skewed_wall)
    offset = await clock.sync()
    assert abs(offset + SKEW_S) < 0.5, offset
    assert clock.rtt_s is not None and clock.rtt_s >= 0
    assert abs(clock.now() - time.time()) < 0.5  # the server runs on this machine's clock


async def test_a_worker_clock_120_s_off_does_not_skew_stage_timings(
    redis: Redis, prefix: str
) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    pool = WorkerPool(
        broker,
        PoolSettings(concurrency=4, idle_block_s=0.2, heartbeat_s=0.2, metrics_interval_s=0.2),
        wall_clock=skewed_wall,
    )
    await pool.start()
    try:
        await broker.enqueue([TaskSpec(name="spool.noop", queue="default") for _ in range(200)])
        await wait_for(lambda: pool.counts["processed"] == 200, 30, "200 tasks processed")
    finally:
        await pool.stop(grace_s=1.0)
    snap = pool.recorder.snapshot()
    p50 = {s: snap.stage(s, 0).p50_ms for s in ("fetch", "end_to_end", "execution")}
    print(f"\nworker clock +{SKEW_S:g} s: p50 ms {p50}")
    # Skewed, these were ~120,000 ms (end to end) and ~120,000 ms (fetch): local stamps minus
    # server stamps. On one time base they are the few ms a no-op takes.
    assert snap.stage("end_to_end", 0).count == 200
    assert 0 <= p50["end_to_end"] < 5_000
    assert 0 <= p50["fetch"] < 5_000
    assert abs(pool.server_clock.offset_s + SKEW_S) < 0.5


class BusyLoopWall:
    """A host clock read by a process whose loop is sometimes busy.

    While `busy_s` is set, every second reading (the one after a `TIME` reply) comes that
    much late, as when the reply waits behind other work; `step_s` moves the clock.
    """

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.step_s = 0.0
        self._reads = 0

    def __call__(self) -> float:
        self._reads += 1
        late = self.busy_s if self._reads % 2 == 0 else 0.0
        return time.time() + self.step_s + late


async def test_a_slow_round_trip_does_not_replace_a_good_offset(redis: Redis) -> None:
    wall = BusyLoopWall()
    clock = ServerClock(redis, wall=wall)
    await clock.sync()
    assert abs(clock.offset_s) < 0.005 and clock.error_bound_s() < 0.005
    wall.busy_s = 0.080  # every reply read 80 ms late: a midpoint 40 ms off
    await clock.sync()
    # The 80 ms round trip (bound 40 ms) loses to the held estimate (bound < 5 ms); taking it
    # stamped tasks finished 40 ms before they were enqueued.
    assert abs(clock.offset_s) < 0.005, clock.offset_s
    wall.busy_s, wall.step_s = 0.0, SKEW_S  # NTP stepped the host clock
    await clock.sync()
    assert abs(clock.offset_s + SKEW_S) < 0.005, clock.offset_s


async def test_a_busy_first_sync_is_bounded_loosely_then_replaced(redis: Redis) -> None:
    wall = BusyLoopWall()
    wall.busy_s = 0.030
    clock = ServerClock(redis, wall=wall)
    await clock.sync()
    assert clock.rtt_s is not None and clock.rtt_s >= 0.030
    assert clock.error_bound_s() >= 0.015  # the bound admits the midpoint's error
    wall.busy_s = 0.0
    await clock.sync()  # the next quiet sync replaces it
    assert clock.error_bound_s() < 0.005 and abs(clock.offset_s) < 0.005
