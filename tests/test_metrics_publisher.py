"""SnapshotPublisher and fetch_fleet_snapshot against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from support.polling import wait_for

from engine.embedded import EmbeddedServer, find_free_port
from engine.metrics import (
    MetricsRecorder,
    SnapshotPublisher,
    decode_snapshot,
    fetch_fleet_snapshot,
    stats_index,
    stats_key,
)


def test_key_helpers() -> None:
    assert stats_key("spool", "w1") == "spool:stats:w1"
    assert stats_index("spool") == "spool:stats"


@pytest.mark.asyncio
async def test_publish_and_fetch_fleet(redis: Any, prefix: str) -> None:
    assert await fetch_fleet_snapshot(redis, prefix) is None
    pubs = []
    for worker, n in (("w1", 3), ("w2", 5)):
        rec = MetricsRecorder(worker)
        for _ in range(n):
            rec.record_task("q", "l", "t", 1.0, 1.1, 1.2, 1.3, 1.4)
        rec.set_depth("q", "l", n)
        pubs.append(SnapshotPublisher(redis, prefix, worker, rec, interval_s=1.0, ttl_s=5.0))
    for pub in pubs:
        await pub.publish_once()
    key = stats_key(prefix, "w1")
    assert 0 < await redis.pttl(key) <= 5000
    assert decode_snapshot(await redis.get(key)).worker_id == "w1"
    fleet = await fetch_fleet_snapshot(redis, prefix)
    assert fleet is not None
    assert fleet.processes == 2
    assert fleet.counter("succeeded") == 8
    assert fleet.stage("end_to_end", 0).count == 8
    # Found through the index, not a SCAN: a process whose key expired drops out on its own.
    assert sorted(await redis.zrange(stats_index(prefix), 0, -1)) == [b"w1", b"w2"]
    await redis.delete(stats_key(prefix, "w2"))
    fleet = await fetch_fleet_snapshot(redis, prefix)
    assert fleet is not None and fleet.processes == 1 and fleet.counter("succeeded") == 3


@pytest.mark.asyncio
async def test_publisher_survives_redis_errors_and_recovers(
    embedded_server_factory: Callable[..., EmbeddedServer],
) -> None:
    """With nothing listening, every publish fails and the loop keeps going; once a server
    listens at that address, the next publish lands and the error clears."""
    port = find_free_port()
    client = Redis(
        host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5
    )
    pub = SnapshotPublisher(client, "p", "w", MetricsRecorder(), interval_s=0.05)
    pub.start()
    try:
        await wait_for(lambda: isinstance(pub.last_error, RedisConnectionError), what="an error")
        assert pub.running
        embedded_server_factory(port=port)
        await wait_for(lambda: pub.last_error is None, what="a publish after the restart")
        assert pub.running and await client.exists(stats_key("p", "w")) == 1
    finally:
        await pub.stop()
        await client.aclose()
    assert not pub.running
