"""Item 7: Sentinel failover. A primary (AOF), a replica and three sentinels, all the shipped
`valkey-server`; workers use a `redis+sentinel://` URL; the primary is SIGKILLed mid-load."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from support.polling import wait_for
from support.workers import kill_all, wait_running

from engine.broker import Broker
from engine.config import EngineConfig
from engine.connection import open_redis
from engine.durable import enqueue_durably
from engine.embedded import EmbeddedServer, _valkey_executable, find_free_port
from engine.task import TaskSpec

from .conftest import Workers, all_succeeded, figure, succeeded

MASTER = "spoolmaster"


class Sentinels:
    """Three sentinel processes watching one primary."""

    def __init__(self, root: Path, primary_port: int) -> None:
        self.ports = [find_free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for i, port in enumerate(self.ports):
            folder = root / f"sentinel-{i}"
            folder.mkdir()
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 4000\n"
            )
            with open(folder / "log", "wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [_valkey_executable(), str(conf), "--sentinel"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    @property
    def url(self) -> str:
        """The workers' `redis+sentinel://` URL."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{MASTER}"

    async def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers sees it."""
        for port in self.ports:
            client = Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
            try:
                addr = await client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                return int(addr[1]) if addr else None
            except Exception:
                continue
            finally:
                await client.aclose()
        return None

    def stop(self) -> None:
        kill_all(self.procs)


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, EmbeddedServer, Sentinels]]:
    """A primary with AOF, one replica, three sentinels."""
    primary = EmbeddedServer(tmp_path / "primary", port=0, persistence=True).start()
    assert primary.port is not None
    replica = EmbeddedServer(
        tmp_path / "replica",
        port=0,
        persistence=True,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    ).start()
    sentinels = Sentinels(tmp_path, primary.port)
    try:
        yield primary, replica, sentinels
    finally:
        sentinels.stop()
        replica.stop()
        primary.stop()


async def test_workers_follow_a_sentinel_failover_within_10s_losing_nothing(
    replicated: tuple[EmbeddedServer, EmbeddedServer, Sentinels],
    workers_factory: Callable[[str, str], Workers],
) -> None:
    primary_server, replica_server, sentinels = replicated
    prefix = "fault-sentinel"
    await wait_for(sentinels.master_port, 15, "the sentinels see the primary")
    primary = await open_redis(primary_server.url)
    replica = await open_redis(replica_server.url)
    client = await open_redis(sentinels.url, retries=1)
    broker = Broker(client, EngineConfig(prefix=prefix))
    workers = workers_factory(prefix, primary_server.url)
    procs = [workers.start(sentinels.url, "--concurrency", "4") for _ in range(2)]
    try:
        for proc in procs:
            await wait_running(proc, 20)
        ids: list[str] = []
        for _ in range(10):  # load: 500 tasks that take 20 ms each, 8 slots; acknowledged
            # only once a replica has them (durable enqueue), which is what survives a failover
            ids += await enqueue_durably(broker, [TaskSpec(name="ws.sleep", args=[20])] * 50)
        await wait_for(lambda: succeeded(broker, ids[:20]), 10, "workers busy")

        primary_server._process.kill()  # type: ignore[union-attr]  # SIGKILL mid-load
        killed = time.monotonic()
        await primary.aclose()
        old_port = primary_server.port
        await wait_for(
            lambda: _promoted(sentinels, old_port), 30, "a sentinel promotes the replica"
        )
        promoted = time.monotonic()
        later: list[str] = []
        while not later:  # the producer follows the failover too
            try:
                later = await broker.enqueue([TaskSpec(name="ws.sleep", args=[1])] * 20)
            except Exception:
                await asyncio.sleep(0.1)
        ids += later
        await wait_for(lambda: succeeded(broker, later[:1]), 10, "work resumes after promotion")
        resumed_s = time.monotonic() - promoted
        await wait_for(lambda: all_succeeded(broker, ids), 30, "every acknowledged task done")
        completed = await succeeded(broker, ids)
        figure(
            "sentinel failover (SIGKILL of the primary)",
            acknowledged=len(ids),
            completed=completed,
            lost=len(ids) - completed,
            promotion_after_kill_s=round(promoted - killed, 2),
            resumed_after_promotion_s=round(resumed_s, 2),
        )
        assert completed == len(ids)
        assert resumed_s < 10.0
    finally:
        await client.aclose()
        await replica.aclose()


async def _promoted(sentinels: Sentinels, old_port: int | None) -> bool:
    port = await sentinels.master_port()
    return port is not None and port != old_port
