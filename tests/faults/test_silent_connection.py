"""Item 1: connections that go silent (no FIN, no RST), stall, or are reset.

Real worker processes reach a real server (AOF on) only through the fault proxy; the test
enqueues directly and counts runs of every acknowledged task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from support.polling import wait_for
from support.workers import wait_running

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.embedded import EmbeddedServer

from .conftest import Workers, all_done, enqueue_counted, figure, ledger
from .proxy import FaultProxy

GRACE_S = 2.0
#: Grace plus the runner's shutdown margin (SHUTDOWN_MARGIN_S) plus slack for a loaded machine.
EXIT_BOUND_S = GRACE_S + 6.0 + 3.0


async def test_silent_drop_resumes_within_10s_and_sigterm_still_exits(
    aof_server: EmbeddedServer,
    proxy: FaultProxy,
    workers_factory: Callable[[str, str], Workers],
) -> None:
    prefix, key = "fault-silent", "fault-silent:runs"
    redis = await open_redis(aof_server.url)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    workers = workers_factory(prefix, aof_server.url)
    procs = [
        workers.start(proxy.url, "--concurrency", "4", "--grace", str(GRACE_S)) for _ in range(2)
    ]
    try:
        for proc in procs:
            await wait_running(proc, 20)
        ids = await enqueue_counted(broker, key, 200)
        await wait_for(lambda: all_done(redis, key, ids), 20, "warm-up tasks done")

        proxy.drop()  # every connection now leads nowhere, silently
        dropped_at = time.monotonic()
        ids += await enqueue_counted(broker, key, 300)
        for proc in procs:
            await wait_for(
                lambda proc=proc: "REDIS DOWN" in workers.log_text(proc),
                10,
                "the status line says Redis is unreachable",
            )
        detected_s = time.monotonic() - dropped_at
        during = (await ledger(redis, key, ids))[0]

        proxy.pass_through()
        restored = time.monotonic()
        await wait_for(
            lambda: all_done(redis, key, ids), 10, "every task done within 10 s of the path"
        )
        resume_s = time.monotonic() - restored
        completed, lost, duplicates = await ledger(redis, key, ids)
        figure(
            "silent drop",
            acknowledged=len(ids),
            completed=completed,
            lost=lost,
            duplicates=duplicates,
            detected_s=round(detected_s, 2),
            done_during_drop=during,
            all_done_after_restore_s=round(resume_s, 2),
        )
        assert lost == 0 and completed == len(ids)
        assert resume_s < 10.0

        # SIGTERM while the path is silent again: the process still ends within its bound.
        proxy.drop()
        await wait_for(
            lambda: "REDIS DOWN" in workers.log_text(procs[0]).rpartition("Redis answers")[2],
            10,
            "the drop is noticed again",
        )
        exit_s = await asyncio.to_thread(Workers.terminate, procs[0], EXIT_BOUND_S)
        figure("SIGTERM on a silent path", exit_s=round(exit_s, 2), bound_s=EXIT_BOUND_S)
    finally:
        proxy.pass_through()
        await redis.aclose()


async def test_stall_and_reset_lose_nothing(
    aof_server: EmbeddedServer,
    proxy: FaultProxy,
    workers_factory: Callable[[str, str], Workers],
) -> None:
    prefix, key = "fault-stall", "fault-stall:runs"
    redis = await open_redis(aof_server.url)
    broker = Broker(redis, EngineConfig(prefix=prefix))
    workers = workers_factory(prefix, aof_server.url)
    for _ in range(2):
        workers.start(proxy.url, "--concurrency", "4", "--grace", str(GRACE_S))
    try:
        ids = await enqueue_counted(broker, key, 200)
        await wait_for(lambda: all_done(redis, key, ids), 20, "warm-up tasks done")

        proxy.stall()  # a 4 s congested path: bytes held, none lost
        ids += await enqueue_counted(broker, key, 300)
        await asyncio.sleep(4.0)  # the fault's duration, not a synchronisation
        proxy.pass_through()
        restored = time.monotonic()
        await wait_for(lambda: all_done(redis, key, ids), 10, "all done after the stall")
        stall_resume_s = time.monotonic() - restored

        ids += await enqueue_counted(broker, key, 300)
        proxy.reset()  # every connection torn down with an RST
        reset_at = time.monotonic()
        await wait_for(lambda: all_done(redis, key, ids), 10, "all done after the reset")
        reset_resume_s = time.monotonic() - reset_at
        completed, lost, duplicates = await ledger(redis, key, ids)
        figure(
            "stall 4 s then reset",
            acknowledged=len(ids),
            completed=completed,
            lost=lost,
            duplicates=duplicates,
            all_done_after_stall_s=round(stall_resume_s, 2),
            all_done_after_reset_s=round(reset_resume_s, 2),
        )
        assert lost == 0 and completed == len(ids)
    finally:
        proxy.pass_through()
        await redis.aclose()
