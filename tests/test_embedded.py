"""EmbeddedServer: start/stop on TCP and unix sockets, persistence, restart, failure reports."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.connection import open_redis
from engine.embedded import EmbeddedServer, EmbeddedServerError, default_state_dir


def wait_until(predicate: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Poll `predicate` until it holds; fail the test after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {deadline_s}s")
        time.sleep(0.01)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short data dir: unix socket paths must stay under ~107 bytes, pytest's can be long."""
    path = Path(tempfile.mkdtemp(prefix="spool-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_tcp_server_answers_and_stops(embedded_server_factory: Callable[..., EmbeddedServer]):
    server = embedded_server_factory()
    assert server.port is not None and server.port > 0
    assert server.url == f"redis://127.0.0.1:{server.port}"
    assert server.running and server.ping()
    server.stop()
    assert not server.running
    assert not server.ping()
    server.stop()  # idempotent


async def test_unix_socket_server_works(short_dir: Path):
    with EmbeddedServer(short_dir, persistence=False) as server:
        assert server.socket_path == short_dir / "valkey.sock"
        assert server.url == f"unix://{short_dir / 'valkey.sock'}"
        assert server.port is None
        # Only the owner may connect.
        assert (server.socket_path.stat().st_mode & 0o777) == 0o700
        client = await open_redis(server.url, decode_responses=True)
        try:
            await client.set("k", "v")
            assert await client.get("k") == "v"
            # TCP is off: the server listens on the socket only.
            assert (await client.config_get("port"))["port"] == "0"
        finally:
            await client.aclose()
    assert not server.running
    assert not server.socket_path.exists()


async def test_aof_file_appears_and_data_survives_restart(short_dir: Path):
    with EmbeddedServer(short_dir, port=0, persistence=True) as server:
        client = await open_redis(server.url)
        try:
            await client.set("durable", "yes")
        finally:
            await client.aclose()
        wait_until(lambda: any(short_dir.rglob("*.aof")))
        server.restart()
        client = await open_redis(server.url)
        try:
            assert await client.get("durable") == b"yes"
        finally:
            await client.aclose()


def test_persistence_off_writes_nothing(embedded_server_factory: Callable[..., EmbeddedServer]):
    server = embedded_server_factory(persistence=False)
    server.stop()
    assert not list(server.data_dir.rglob("*.aof"))
    assert not list(server.data_dir.rglob("*.rdb"))


def test_restart_keeps_the_port(embedded_server_factory: Callable[..., EmbeddedServer]):
    server = embedded_server_factory()
    port, pid = server.port, server.pid
    server.restart()
    assert server.port == port
    assert server.pid != pid
    assert server.ping()


def test_stale_socket_from_killed_server_is_replaced(short_dir: Path):
    server = EmbeddedServer(short_dir, persistence=False).start()
    try:
        assert server.pid is not None
        os.kill(server.pid, 9)
        wait_until(lambda: not server.ping())
        assert server.socket_path is not None and server.socket_path.exists()
        server.restart()
        assert server.ping()
    finally:
        server.stop()


def test_second_server_on_a_live_socket_is_refused(short_dir: Path):
    with (
        EmbeddedServer(short_dir, persistence=False),
        pytest.raises(EmbeddedServerError, match="already answers"),
    ):
        EmbeddedServer(short_dir, persistence=False).start()


def test_start_failure_reports_the_log_tail(tmp_path: Path):
    server = EmbeddedServer(tmp_path, port=0, persistence=False, extra_args=["--no-such-option"])
    with pytest.raises(EmbeddedServerError) as info:
        server.start()
    message = str(info.value)
    assert "exited" in message
    assert "no-such-option" in message
    assert not server.running


def test_busy_port_is_reported(tmp_path: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = EmbeddedServer(tmp_path, port=port, persistence=False)
        with pytest.raises(EmbeddedServerError, match=r"(?i)address already in use"):
            server.start()


def test_too_long_socket_path_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="unix socket path"):
        EmbeddedServer(tmp_path / ("x" * 120))


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "spool"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert default_state_dir() == Path.home() / ".local" / "state" / "spool"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local" / "state" / "spool"
