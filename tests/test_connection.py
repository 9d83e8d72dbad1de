"""engine.connection and engine.server_check against real servers: masking, pools, retries,
warnings, waiting."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialWithJitterBackoff

from engine.connection import (
    RedisUnavailable,
    _build_client,
    mask_url,
    open_redis,
    wait_for_redis,
)
from engine.embedded import EmbeddedServer, find_free_port
from engine.server_check import check_server


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("redis://alice:s3cret@localhost:6379/0", "redis://alice:***@localhost:6379/0"),
        (
            "rediss://alice:s3cret@cache.example.com:6380",
            "rediss://alice:***@cache.example.com:6380",
        ),
        ("redis://s3cret@localhost", "redis://***@localhost"),
        ("redis://:p@ss@host:1/2", "redis://:***@host:1/2"),
        ("redis://:pa/ss@host:1", "redis://:***@host:1"),
        ("unix:///tmp/r.sock?db=1&password=s3cret", "unix:///tmp/r.sock?db=1&password=***"),
        ("unix://alice:s3cret@/tmp/r.sock?db=0", "unix://alice:***@/tmp/r.sock?db=0"),
        ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
        ("redis://h?password=x&Password=y", "redis://h?password=***&Password=***"),
        ("", ""),
        ("localhost?password=s3cret", "localhost?password=***"),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    masked = mask_url(url)
    assert masked == expected
    assert "s3cret" not in masked
    assert mask_url(masked) == masked  # idempotent


async def test_open_redis_against_the_server(redis_url: str, prefix: str) -> None:
    client = await open_redis(redis_url, max_connections=3, decode_responses=True)
    try:
        assert isinstance(client.connection_pool, BlockingConnectionPool)
        assert client.connection_pool.max_connections == 3
        await client.set(f"{prefix}:k", "v")
        assert await client.get(f"{prefix}:k") == "v"
        # More concurrent commands than connections: callers queue for the pool.
        results = await asyncio.gather(*(client.incr(f"{prefix}:n") for _ in range(20)))
        assert sorted(results) == list(range(1, 21))
    finally:
        await client.aclose()


async def test_redis_fixture_is_usable(redis: Redis, prefix: str) -> None:
    await redis.set(f"{prefix}:x", b"1")
    assert await redis.get(f"{prefix}:x") == b"1"


def test_rediss_keeps_certificate_verification() -> None:
    client = _build_client(
        "rediss://:s3cret@cache.example.com:6380/0",
        max_connections=2,
        pool_timeout_s=1.0,
        retries=1,
        socket_timeout_s=None,
        connect_timeout_s=1.0,
        decode_responses=False,
        health_check_interval_s=15.0,
        backoff=None,
    )
    connection = client.connection_pool.make_connection()
    assert connection.ssl_context.cert_reqs == ssl.CERT_REQUIRED
    assert connection.ssl_context.check_hostname is True


async def test_warnings_for_evicting_non_persistent_server(
    embedded_server_factory: Callable[..., EmbeddedServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = embedded_server_factory(persistence=False)
    client = await open_redis(server.url)
    try:
        await client.config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level(logging.WARNING, logger="engine.server_check"):
            warnings = await check_server(client, server.url)
            again = await check_server(client, server.url)
        assert len(warnings) == 2
        assert any("allkeys-lru" in w and "noeviction" in w for w in warnings)
        assert any("persistence is off" in w for w in warnings)
        assert again == warnings
        # Logged once per process per URL, however often the check runs.
        logged = [r.getMessage() for r in caplog.records if r.name == "engine.server_check"]
        assert sorted(logged) == sorted(warnings)
    finally:
        await client.aclose()


async def test_no_warnings_for_a_durable_noeviction_server(
    embedded_server_factory: Callable[..., EmbeddedServer],
) -> None:
    server = embedded_server_factory(persistence=True)
    client = await open_redis(server.url)
    try:
        assert await check_server(client, server.url) == []
    finally:
        await client.aclose()


async def test_check_falls_back_to_info_when_config_is_refused(
    embedded_server_factory: Callable[..., EmbeddedServer], caplog: pytest.LogCaptureFixture
) -> None:
    # A managed-Redis look-alike: this user may do anything but CONFIG.
    server = embedded_server_factory(persistence=False)
    admin = await open_redis(server.url)
    try:
        await admin.config_set("maxmemory-policy", "volatile-lru")
        await admin.acl_setuser(
            "app", enabled=True, passwords=["+hunter2-pw"], keys=["*"], channels=["*"],
            commands=["+@all", "-config"],
        )  # fmt: skip
    finally:
        await admin.aclose()
    url = f"redis://app:hunter2-pw@127.0.0.1:{server.port}/0"
    client = await open_redis(url)
    try:
        with caplog.at_level(logging.DEBUG, logger="engine.server_check"):
            warnings = await check_server(client, url)
    finally:
        await client.aclose()
    # Persistence cannot be known without CONFIG: only the eviction policy is reported.
    assert len(warnings) == 1
    assert "volatile-lru" in warnings[0]
    assert "app:***@" in warnings[0]
    assert "hunter2-pw" not in caplog.text


class _SignallingBackoff(ExponentialWithJitterBackoff):
    """The client's own backoff, which also tells the test that a retry is under way."""

    def __init__(self, cap: float, base: float) -> None:
        super().__init__(cap=cap, base=base)
        self.retrying = threading.Event()

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        # redis-py copies the Retry per connection; every copy must signal the same event.
        return self

    def compute(self, failures: int) -> float:
        self.retrying.set()
        return super().compute(failures)


async def test_client_survives_a_server_restart(
    embedded_server_factory: Callable[..., EmbeddedServer],
) -> None:
    server = embedded_server_factory()
    backoff = _SignallingBackoff(cap=0.2, base=0.01)
    # 50 retries at up to 0.2 s each give the server several seconds to come back.
    client = await open_redis(server.url, retries=50, backoff=backoff)
    try:
        await client.set("before", "1")
        assert not backoff.retrying.is_set()
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.ping():
            assert time.monotonic() < deadline, "server did not die"
            await asyncio.sleep(0.01)

        def restart_once_retrying() -> None:
            # Only bring the server back once the client has failed and is backing off, so
            # the command below can only succeed through the retry path.
            if not backoff.retrying.wait(timeout=10):
                raise AssertionError("client never retried")
            server.restart()

        restarter = asyncio.create_task(asyncio.to_thread(restart_once_retrying))
        assert await client.ping() is True
        await restarter
        assert backoff.retrying.is_set()
        # The same client keeps working on the new (empty, non-persistent) server.
        assert await client.get("before") is None
        await client.set("after", "2")
        assert await client.get("after") == b"2"
    finally:
        await client.aclose()


async def test_wait_for_redis_gives_up_quickly_on_a_dead_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = find_free_port()  # nothing listens there: connections are refused
    url = f"redis://alice:hunter2-pw@127.0.0.1:{port}/0"
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(RedisUnavailable) as info:
        await wait_for_redis(url, deadline_s=0.5)
    assert time.monotonic() - started < 3.0
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert f"redis://alice:***@127.0.0.1:{port}/0" in message
    assert "hunter2-pw" not in message
    assert info.value.last_error is not None
    assert "hunter2-pw" not in caplog.text


async def test_wait_for_redis_returns_once_the_server_is_up(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path, port=find_free_port(), persistence=False)
    starter = asyncio.create_task(asyncio.to_thread(server.start))
    try:
        client = await wait_for_redis(server.url, deadline_s=15.0)
        try:
            assert await client.ping() is True
        finally:
            await client.aclose()
    finally:
        # Let start() finish whatever happened, so stop() leaves no orphan server behind.
        await asyncio.gather(starter, return_exceptions=True)
        server.stop()


async def test_wait_for_redis_does_not_retry_wrong_credentials(
    embedded_server_factory: Callable[..., EmbeddedServer],
) -> None:
    server = embedded_server_factory()
    admin = await open_redis(server.url)
    try:
        await admin.config_set("requirepass", "right-pw")
    finally:
        await admin.aclose()
    url = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as info:
        await wait_for_redis(url, deadline_s=20.0)
    assert time.monotonic() - started < 5.0
    assert "wrong-pw" not in str(info.value)
