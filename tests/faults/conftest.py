"""Fault-suite fixtures: a private server with AOF, a TCP proxy the test controls, and real
`spool-console --no-ui` worker processes that reach the server only through the proxy.

Every fault test starts its own server (whatever `SPOOL_TEST_REDIS_URL` says): it kills,
stops, fills or fails over that server, which must never be a shared one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from support.workers import WorkerProcesses, log_of

from engine.broker import Broker
from engine.embedded import EmbeddedServer
from engine.queues import task_status
from engine.task import TaskSpec, TaskState

from .proxy import FaultProxy


def figure(name: str, **values: object) -> None:
    """Print a test's measured figures on one line (shown with `pytest -s` or on failure)."""
    print(f"[fault figures] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


class Workers(WorkerProcesses):
    """Workers for one fault test, each given the server's URL (often the proxy's) at start."""

    def __init__(self, prefix: str, handler_url: str, logs: Path) -> None:
        # Handlers that count runs talk to the server directly, not through the proxy.
        super().__init__(prefix, handler_url, logs, "--lease", "2", "--status-interval", "0.5")

    start = WorkerProcesses.spawn
    log_text = staticmethod(log_of)

    @staticmethod
    def terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> float:
        """SIGTERM `proc` and return the seconds it took to exit (fails past `timeout_s`)."""
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError(f"worker did not exit within {timeout_s} s of SIGTERM") from None
        return time.monotonic() - started


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A private server on a free port with AOF (appendfsync everysec), as in production."""
    server = EmbeddedServer(tmp_path / "aof", port=0, persistence=True)
    server.start()
    try:
        yield server
    finally:
        pid = server.pid
        if pid is not None:  # a test may leave it SIGSTOPped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def proxy(aof_server: EmbeddedServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of `aof_server`."""
    assert aof_server.port is not None
    p = FaultProxy("127.0.0.1", aof_server.port).start()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def workers_factory(tmp_path: Path) -> Iterator[Callable[[str, str], Workers]]:
    """`make(prefix, handler_url)` → a `Workers` whose processes are killed at teardown."""
    made: list[Workers] = []

    def make(prefix: str, handler_url: str) -> Workers:
        w = Workers(prefix, handler_url, tmp_path)
        made.append(w)
        return w

    yield make
    for w in made:
        w.cleanup()


async def ledger(redis: Redis, count_key: str, ids: list[str]) -> tuple[int, int, int]:
    """(completed, lost, duplicates) of the acknowledged `ids`, from ws.count's run counter."""
    runs = await redis.hmget(count_key, ids) if ids else []
    completed = sum(1 for r in runs if r is not None)
    duplicates = sum(int(r) - 1 for r in runs if r is not None)
    return completed, len(ids) - completed, duplicates


async def all_done(redis: Redis, count_key: str, ids: list[str]) -> bool:
    """Whether every one of `ids` has run at least once."""
    return (await ledger(redis, count_key, ids))[0] == len(ids)


async def enqueue_counted(
    broker: Broker, count_key: str, n: int, queue: str = "default"
) -> list[str]:
    """Enqueue `n` ws.count tasks (each counts its runs in `count_key`); their ids."""
    specs = [TaskSpec(name="ws.count", queue=queue, kwargs={"key": count_key}) for _ in range(n)]
    return await broker.enqueue(specs)


async def succeeded(broker: Broker, ids: list[str]) -> int:
    """How many of `ids` (queue "default") have succeeded, from their task records."""
    infos = [await task_status(broker, task_id, "default") for task_id in ids]
    return sum(1 for i in infos if i is not None and i.state == TaskState.SUCCEEDED)


async def all_succeeded(broker: Broker, ids: list[str]) -> bool:
    """Whether every one of `ids` has succeeded."""
    return await succeeded(broker, ids) == len(ids)
