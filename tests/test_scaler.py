"""The auto-scaler: unit tests with an injected clock, and one pool-level run on a real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import queues
from engine.broker import Broker
from engine.config import EngineConfig
from engine.task import TaskRegistry, TaskSpec, task
from engine.worker.pool import PoolSettings, WorkerPool
from engine.worker.scaler import AutoScaler, ScalerInputs, ScalerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


def scaler(initial: int | None = None, **kw: Any) -> tuple[AutoScaler, Clock]:
    clock = Clock()
    settings = ScalerSettings(**{"min_concurrency": 2, "max_concurrency": 30, **kw})
    return AutoScaler(settings, initial=initial, clock=clock), clock


def busy(backlog: int, wait: float | None, ratio: float) -> ScalerInputs:
    return ScalerInputs(backlog=backlog, wait_p95_s=wait, busy_ratio=ratio)


IDLE = ScalerInputs(backlog=0, wait_p95_s=None, busy_ratio=0.0)


def test_up_on_backlog_with_slow_waits_says_why() -> None:
    sc, _ = scaler(initial=4)
    d = sc.tick(busy(812, 4.1, 0.5))
    assert d is not None
    assert d.reason == "+4: backlog 812, wait p95 4.1 s > 1 s target"
    assert (d.old, d.new, d.delta) == (4, 8, 4)
    assert (d.backlog, d.wait_p95_s, d.busy_ratio) == (812, 4.1, 0.5)
    assert sc.concurrency == 8 and list(sc.decisions) == [d]


def test_up_on_backlog_with_saturated_slots() -> None:
    sc, _ = scaler(initial=5)
    d = sc.tick(busy(300, 0.01, 1.0))
    assert d is not None and d.new == 8  # +ceil(300/100), not more than the backlog needs
    assert d.reason == "+3: backlog 300, 100% of slots busy"


def test_no_change_when_waits_are_fine_and_slots_free() -> None:
    sc, _ = scaler(initial=5)
    assert sc.tick(busy(5000, 0.2, 0.6)) is None
    assert sc.tick(busy(0, 5.0, 1.0)) is None  # slow waits but nothing waiting now
    assert sc.concurrency == 5 and not sc.decisions


def test_up_respects_max_and_cooldown() -> None:
    sc, clock = scaler(initial=20, max_concurrency=30, up_cooldown_s=1.0)
    assert sc.tick(busy(10_000, 9.0, 1.0)).new == 30  # type: ignore[union-attr]  # +min(cur, want, room)
    clock.advance(5)
    assert sc.tick(busy(10_000, 9.0, 1.0)) is None  # at max
    sc2, clock2 = scaler(initial=2, up_cooldown_s=1.0)
    assert sc2.tick(busy(10_000, 9.0, 1.0)).new == 4  # type: ignore[union-attr]
    clock2.advance(0.5)
    assert sc2.tick(busy(10_000, 9.0, 1.0)) is None  # cooling down
    clock2.advance(0.5)
    assert sc2.tick(busy(10_000, 9.0, 1.0)).new == 8  # type: ignore[union-attr]  # doubles at most


def test_down_only_after_idle_period() -> None:
    sc, clock = scaler(initial=16, down_after_idle_s=10.0)
    assert sc.tick(IDLE) is None  # idle starts now
    clock.advance(9.9)
    assert sc.tick(IDLE) is None
    clock.advance(0.1)
    d = sc.tick(IDLE)
    assert d is not None and d.new == 12  # a quarter at a time
    assert d.reason == "-4: idle 10 s (no backlog, 0% of slots busy)"
    assert sc.tick(IDLE) is None  # the next step waits another idle period
    for _ in range(20):
        clock.advance(10)
        sc.tick(IDLE)
    assert sc.concurrency == 2  # down to min, never below
    assert all(d.new >= 2 for d in sc.decisions)


def test_backlog_or_busy_slots_restart_the_idle_period() -> None:
    sc, clock = scaler(initial=10, down_after_idle_s=10.0)
    assert sc.tick(IDLE) is None
    clock.advance(6)
    assert sc.tick(busy(0, None, 0.9)) is None  # slots busy, nothing queued: not idle
    clock.advance(6)
    assert sc.tick(IDLE) is None  # idle again, but only since now
    clock.advance(6)
    assert sc.tick(busy(3, 0.0, 0.1)) is None  # a little backlog
    clock.advance(6)
    assert sc.tick(IDLE) is None
    clock.advance(10)
    assert sc.tick(IDLE) is not None


def load(backlog: int, rate: float, service_s: float, ratio: float = 1.0) -> ScalerInputs:
    return ScalerInputs(backlog, None, ratio, arrival_per_s=rate, service_s=service_s)


def test_littles_law_sizes_for_the_load_in_one_step_and_says_why() -> None:
    sc, _ = scaler(initial=5, max_concurrency=30)
    d = sc.tick(load(20, 1000.0, 0.020))
    # 1000/s x 20 ms x 1.25 = 25 slots, + 20 queued x 20 ms / 0.5 s = 0.8 -> 26.
    assert d is not None and (d.old, d.new) == (5, 26)
    assert d.reason == (
        "+21: backlog 20, need 26 slots (1000/s x 20.0 ms x 1.25 + backlog cleared in 0.5 s)"
    )
    assert sc.tick(load(20, 1000.0, 0.020)) is None  # already enough: no creep on busy slots


def test_littles_law_is_capped_and_respects_the_cooldown() -> None:
    sc, clock = scaler(initial=5, max_concurrency=30, up_cooldown_s=0.2)
    assert sc.tick(load(10, 500.0, 0.020)).new == 13  # type: ignore[union-attr]  # 12.5 + 0.4
    clock.advance(0.1)
    assert sc.tick(load(5000, 500.0, 0.020)) is None  # cooling down
    clock.advance(0.1)
    assert sc.tick(load(5000, 500.0, 0.020)).new == 30  # type: ignore[union-attr]


def test_littles_law_needs_a_backlog_and_steady_load_does_not_flap() -> None:
    sc, clock = scaler(initial=10, down_after_idle_s=1.0)
    assert sc.tick(load(0, 1000.0, 0.020)) is None  # nothing waits: no reason to grow
    for _ in range(100):  # a steady load the slots keep up with, ticked every 0.1 s
        clock.advance(0.1)
        assert sc.tick(load(1, 300.0, 0.020, ratio=0.7)) is None
    assert sc.concurrency == 10 and not sc.decisions


def test_slow_waits_still_grow_when_the_sizing_says_enough() -> None:
    sc, _ = scaler(initial=10)
    d = sc.tick(ScalerInputs(400, 3.0, 1.0, arrival_per_s=10.0, service_s=0.01))
    assert d is not None and d.new == 14 and d.reason.startswith("+4: backlog 400, wait p95 3.0")


def test_pin_and_unpin() -> None:
    sc, clock = scaler(initial=5, min_concurrency=3, max_concurrency=10)
    d = sc.pin(40)
    assert sc.pinned and sc.concurrency == 40 and d.reason == "pinned at 40 by operator"
    assert sc.tick(busy(10_000, 9.0, 1.0)) is None
    clock.advance(100)
    assert sc.tick(IDLE) is None and sc.concurrency == 40
    d = sc.unpin()
    assert not sc.pinned and d.new == 10 and d.reason == "unpinned: automatic scaling"
    with pytest.raises(ValueError):
        sc.pin(0)


def test_set_bounds_clamps_unless_pinned() -> None:
    sc, _ = scaler(initial=20)
    d = sc.set_bounds(5, 10)
    assert d is not None and d.new == 10 and d.reason == "bounds now 5-10"
    assert sc.set_bounds(5, 12) is None  # still inside
    d = sc.set_bounds(15, 20)
    assert d is not None and d.new == 15
    sc.pin(3)
    assert sc.set_bounds(1, 2) is None and sc.concurrency == 3
    with pytest.raises(ValueError):
        sc.set_bounds(5, 4)
    with pytest.raises(ValueError):
        ScalerSettings(min_concurrency=0)


def test_decision_history_is_bounded() -> None:
    sc = AutoScaler(ScalerSettings(1, 1000, up_cooldown_s=0), initial=1, history=5)
    for _ in range(8):
        sc.tick(busy(10**6, 9.0, 1.0))
    assert len(sc.decisions) == 5 and sc.decisions[-1].new == 256


async def test_pool_scales_up_under_backlog_and_down_when_idle(redis: Redis, prefix: str) -> None:
    reg = TaskRegistry()

    @task(name="t.sleep", registry=reg)
    async def nap() -> None:
        await asyncio.sleep(0.01)

    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=2.0, backoff_base_s=0.01))
    settings = PoolSettings(
        min_concurrency=1,
        max_concurrency=16,
        scaler_tick_s=0.05,
        scale_up_cooldown_s=0.05,
        scale_down_after_idle_s=0.2,
        wait_p95_target_s=0.05,
        idle_block_s=0.2,
        metrics_interval_s=0.2,
    )
    pool = WorkerPool(broker, settings, registry=reg)
    await broker.enqueue([TaskSpec("t.sleep") for _ in range(1500)])
    await pool.start()
    try:
        deadline = time.monotonic() + 20
        while pool.counts["succeeded"] < 1500:
            assert time.monotonic() < deadline, pool.snapshot()
            await asyncio.sleep(0.02)
        peak = max(d.new for d in pool.snapshot().decisions)
        while pool.target > 1:
            assert time.monotonic() < deadline, pool.snapshot().decisions
            await asyncio.sleep(0.02)
        snap = pool.snapshot()
    finally:
        await pool.stop(grace_s=1)
    ups = [d for d in snap.decisions if d.delta > 0]
    downs = [d for d in snap.decisions if d.delta < 0]
    assert peak >= 8 and peak <= 16
    assert ups and all(d.reason.startswith(f"+{d.delta}: backlog ") for d in ups)
    assert all(d.backlog > 0 for d in ups)
    assert downs and all(d.reason.startswith(f"-{-d.delta}: idle ") for d in downs)
    assert snap.concurrency == 1 and not snap.pinned
    assert len(snap.slots) == 1


async def test_an_idle_worker_reads_queue_depths_once_per_wait_and_at_once_on_a_wake(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parked on empty queues, ticks reuse the last depths; anything that makes a task pending
    wakes the fetcher, and the next tick reads again (a paused queue's backlog included)."""
    reg = TaskRegistry()

    @task(name="t.idle", registry=reg)
    def noop() -> None:
        return None

    broker = Broker(redis, EngineConfig(prefix=prefix, lease_s=2.0))
    settings = PoolSettings(
        concurrency=2, scaler_tick_s=0.01, idle_block_s=30.0, metrics_interval_s=0.2
    )
    pool = WorkerPool(broker, settings, registry=reg)
    reads = 0
    read_depths = pool.scaling._read_depths

    async def counted() -> int:
        nonlocal reads
        reads += 1
        return await read_depths()

    monkeypatch.setattr(pool.scaling, "_read_depths", counted)

    async def until(check: Any, what: str) -> None:
        deadline = time.monotonic() + 10
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.005)

    await pool.start()
    try:
        await until(lambda: pool.fetcher.waiting_for_work and reads > 0, "never parked")
        await asyncio.sleep(0.01)  # the tick after parking reads once more at most
        parked_reads = reads
        await asyncio.sleep(0.3)  # ~30 ticks while parked on the wake-up key
        assert reads == parked_reads
        await queues.pause(broker, "default")
        await broker.enqueue([TaskSpec("t.idle") for _ in range(3)])
        await until(lambda: pool.scaling.backlog == 3, "a paused backlog was never read")
        assert reads > parked_reads
        await queues.resume(broker, "default")
        await until(lambda: pool.counts["succeeded"] == 3, "the tasks never ran")
        await until(lambda: pool.scaling.backlog == 0, "the drained backlog was never read")
    finally:
        await pool.stop(grace_s=1)
