"""Shared fixtures: one real server per test process (each pytest-xdist worker starts its own
embedded one), a clean key prefix per test, private servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from support import bench_keys
from support.workers import Procs

from engine.connection import open_redis
from engine.embedded import EmbeddedServer

# Keys are deleted in batches so teardown stays one round trip per few hundred keys.
_UNLINK_BATCH = 500


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server every test shares: `SPOOL_TEST_REDIS_URL`, else an embedded one.

    The embedded server listens on a free loopback port with persistence off (tests need no
    durability, and fsyncs would only slow them down).
    """
    url = os.environ.get("SPOOL_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedServer(tmp_path_factory.mktemp("valkey"), port=0, persistence=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every `<prefix>:*` key is deleted afterwards.

    This is what lets tests share one server (even a developer's real Redis, db 15) without
    seeing each other's keys.
    """
    value = f"t-{uuid.uuid4().hex[:8]}"
    yield value
    client = SyncRedis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{value}:*", count=1000):
            batch.append(key)
            if len(batch) >= _UNLINK_BATCH:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """An open async client on the shared server, closed after the test."""
    client = await open_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def embedded_server_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedServer]]:
    """Make private, started EmbeddedServers (TCP, free port) for tests that kill or restart one.

    Keyword arguments go to `EmbeddedServer` (default `persistence=False`). Every server made is
    stopped at teardown, whatever state the test left it in.
    """
    servers: list[EmbeddedServer] = []

    def make(**kwargs: Any) -> EmbeddedServer:
        kwargs.setdefault("persistence", False)
        kwargs.setdefault("port", 0)
        server = EmbeddedServer(tmp_path / f"valkey-{len(servers)}", **kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    errors: list[BaseException] = []
    for server in reversed(servers):
        try:
            server.stop()
        except Exception as exc:  # keep stopping the others, report after
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def procs(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Procs]:
    """Real `spool-console --no-ui` workers on the shared server; killed at teardown."""
    p = Procs(redis_url, prefix, tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture
def bench_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the benchmark prefixes this test uses (`support.bench_keys.leftover_keys`)."""
    bench_keys.track(monkeypatch)
