"""Finding the server: SPOOL_REDIS_URL, else the embedded server already running in the state
directory (the console's), else a new one; Client, SyncClient and `--no-ui` all agree."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.polling import wait_for

from engine import Client, EngineConfig, SyncClient, TaskState
from engine.discovery import find_server
from engine.embedded import EmbeddedServer, EmbeddedServerError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def state_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private XDG_STATE_HOME (short: the socket path must fit in 107 bytes), no URL in the
    environment; any embedded server left there is stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="spool-d-") as tmp:
        monkeypatch.setenv("XDG_STATE_HOME", tmp)
        monkeypatch.delenv("SPOOL_REDIS_URL", raising=False)
        try:
            yield Path(tmp)
        finally:
            pid_file = Path(tmp) / "spool" / "valkey.pid"
            if pid_file.exists():
                with open(pid_file) as fh:
                    pid = int(fh.read().strip() or 0)
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)


def test_an_explicit_url_then_the_environment_win(redis_url: str, state_home: Path) -> None:
    assert find_server("redis://given:1/0").source == "given"
    choice = find_server(None, env={"SPOOL_REDIS_URL": redis_url})
    assert (choice.url, choice.source, choice.started) == (redis_url, "SPOOL_REDIS_URL", None)
    assert not (state_home / "spool" / "valkey.sock").exists()  # nothing was started


def test_the_running_embedded_server_is_found_else_started(
    state_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(EmbeddedServerError, match="none running"):
        find_server(None, start=False)
    caplog.set_level(logging.INFO, logger="spool.discovery")
    first = find_server(None)
    try:
        assert first.started is not None and first.source.startswith("started")
        second = find_server(None)
        assert second.url == first.url and second.started is None
        assert second.source.startswith("embedded server already running")
        assert sum("using Redis at" in r.getMessage() for r in caplog.records) == 2
    finally:
        first.started.stop()


def test_a_lost_race_to_start_uses_the_winner(state_home: Path) -> None:
    winner = EmbeddedServer(data_dir=state_home / "spool").start()
    try:
        # As if our ping came just before the winner's server answered: start() refuses, and
        # the choice falls back to the server that now answers.
        original = EmbeddedServer.ping
        calls = {"n": 0}

        def late_ping(self: EmbeddedServer, timeout_s: float = 0.5) -> bool:
            calls["n"] += 1
            return calls["n"] > 1 and original(self, timeout_s)

        EmbeddedServer.ping = late_ping  # type: ignore[method-assign]
        try:
            choice = find_server(None)
        finally:
            EmbeddedServer.ping = original  # type: ignore[method-assign]
        assert choice.url == winner.url and choice.started is None
    finally:
        winner.stop()


async def test_client_and_sync_client_share_the_running_server(state_home: Path) -> None:
    server = EmbeddedServer(data_dir=state_home / "spool", persistence=False).start()
    try:
        config = EngineConfig(prefix="disc")
        async with Client(config=config) as client:
            tid = await client.enqueue("spool.noop")

        def sync_side() -> str:
            with SyncClient(config=config) as sync:
                info = sync.status(tid)
                assert info is not None and info.state is TaskState.PENDING
                return sync.enqueue("spool.noop", queue="other")

        other = await asyncio.to_thread(sync_side)
        assert server.ping()  # neither client stopped a server it did not start
        async with Client(config=config) as client:
            info = await client.status(other)
            assert info is not None and info.queue == "other"
    finally:
        server.stop()


def test_sync_client_waits_for_a_result(redis_url: str, prefix: str) -> None:
    with SyncClient(redis_url, config=EngineConfig(prefix=prefix)) as client:
        tid = client.enqueue("spool.noop")
        with pytest.raises(TimeoutError):
            client.result(tid, timeout=0.05)
        with pytest.raises(RuntimeError, match="not connected"):
            SyncClient(redis_url).status(tid)


async def test_a_worker_without_flags_joins_the_console_server(state_home: Path) -> None:
    server = EmbeddedServer(data_dir=state_home / "spool", persistence=False).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["XDG_STATE_HOME"] = str(state_home)
    env["PYTHONPATH"] = str(ROOT)
    log = state_home / "worker.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spool_console.cli", "--no-ui", "--status-interval", "60"],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        async with Client() as client:  # finds the same server
            tid = await client.enqueue("spool.noop")
            assert await client.result(tid, timeout=30) is None
        text = log.read_text()
        assert "embedded server already running" in text, text
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        server.stop()
    await wait_for(lambda: proc.returncode == 0, 1, "the worker exits 0 on SIGTERM")


async def test_a_second_console_shares_the_first_ones_server(state_home: Path) -> None:
    from spool_console.engine_host import EngineHost
    from spool_console.testing import make_settings

    settings = make_settings(None, "disc2")
    first, second = EngineHost(settings, interval_s=0.1), EngineHost(settings, interval_s=0.1)
    first.start()
    try:
        await wait_for(lambda: first.snapshot.connected, 20, "the first console connects")
        second.start()
        try:
            await wait_for(lambda: second.snapshot.connected, 20, "the second console connects")
            assert second.redis_url == first.redis_url
            assert second.snapshot.url_masked.endswith("(embedded, shared)")
        finally:
            await asyncio.to_thread(second.stop)
        # The second console leaving does not stop the server the first one started.
        assert EmbeddedServer(data_dir=state_home / "spool").ping()
    finally:
        await asyncio.to_thread(first.stop)
    assert not EmbeddedServer(data_dir=state_home / "spool").ping()


def test_two_processes_starting_at_once_get_one_server(state_home: Path) -> None:
    # Two consoles launched together both found no server and both started one on the same
    # socket and data directory (two valkey-server processes writing one AOF).
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(2)

    def race(_: int):
        barrier.wait()
        return find_server(None)

    with ThreadPoolExecutor(2) as pool:
        choices = list(pool.map(race, range(2)))
    try:
        assert sum(c.started is not None for c in choices) == 1, [c.source for c in choices]
        assert choices[0].url == choices[1].url
    finally:
        for c in choices:
            if c.started is not None:
                c.started.stop()


async def test_a_sharing_console_takes_the_server_over_when_its_owner_quits(
    state_home: Path,
) -> None:
    # The first console quitting stopped the server under the second, which stayed on
    # REDIS DOWN for good.
    from spool_console.engine_host import EngineHost
    from spool_console.testing import make_settings

    settings = make_settings(None, "disc3")
    first, second = EngineHost(settings, interval_s=0.1), EngineHost(settings, interval_s=0.1)
    first.start()
    try:
        await wait_for(lambda: first.snapshot.connected, 20, "the first console connects")
        second.start()
        await wait_for(lambda: second.snapshot.connected, 20, "the second console connects")
        await asyncio.to_thread(first.stop)
        await wait_for(
            lambda: second.snapshot.connected
            and second.snapshot.url_masked.endswith("(embedded)"),
            20,
            "the second console restarts the server and owns it",
        )
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
    assert not EmbeddedServer(data_dir=state_home / "spool").ping()
