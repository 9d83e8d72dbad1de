"""Publish this process's metrics snapshot to Redis every second; read the fleet's back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from engine.connection import raise_if_cancelling

from .recorder import MetricsRecorder
from .snapshot import MetricsSnapshot, decode_snapshot, encode_snapshot, merge_snapshots

__all__ = [
    "SnapshotPublisher",
    "fetch_fleet_snapshot",
    "read_snapshots",
    "stats_index",
    "stats_key",
]

log = logging.getLogger(__name__)

#: Index entries older than this are dropped by the next publish (their stats key expired long
#: ago; a reader skips a vanished key anyway).
INDEX_KEEP_MS = 300_000
#: Trim the index on every n-th publish only: one more command a second buys nothing.
_TRIM_EVERY = 30


def stats_key(prefix: str, worker_id: str) -> str:
    """Key holding ``worker_id``'s latest snapshot (a string with a TTL)."""
    return f"{prefix}:stats:{worker_id}"


def stats_index(prefix: str) -> str:
    """Sorted set: worker id -> when it last published (ms). Readers find stats keys here.

    Not a SCAN for ``stats:*``: a SCAN walks the whole keyspace, and with a day of result keys
    (one per finished task) that is millions of keys per read. A soak at 5,000 tasks/s with
    ~1.1 M keys spent 6.9 s of every 20 s of Redis time in the harness's SCANs.
    """
    return f"{prefix}:stats"


class SnapshotPublisher:
    """An asyncio task that SETs the recorder's encoded snapshot with a TTL every interval.

    The TTL (a few intervals) makes a dead process's stats vanish on their own. Redis errors
    never stop the loop: the first one of a run of failures is logged, every one is kept in
    ``last_error`` until a publish succeeds again.
    """

    def __init__(
        self,
        redis: Any,
        prefix: str,
        worker_id: str,
        recorder: MetricsRecorder,
        interval_s: float = 1.0,
        ttl_s: float = 5.0,
    ) -> None:
        """``redis`` is a ``redis.asyncio.Redis``-compatible client."""
        self.redis = redis
        self.prefix = prefix
        self.worker_id = worker_id
        self.recorder = recorder
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.key = stats_key(prefix, worker_id)
        self.last_error: BaseException | None = None
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    async def publish_once(self) -> MetricsSnapshot:
        """Take a snapshot and SET it with PX ttl; return the snapshot. Raises Redis errors."""
        snap = await self.recorder.snapshot_async()
        index = stats_index(self.prefix)
        now_ms = int(time.time() * 1000)
        # One round trip, not a transaction: in a Cluster the index and the stats key live in
        # different slots (the cluster client sends each command to its own node).
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key, encode_snapshot(snap), px=max(1, int(self.ttl_s * 1000)))
            pipe.zadd(index, {self.worker_id: now_ms})
            if self.published % _TRIM_EVERY == 0:
                pipe.zremrangebyscore(index, "-inf", now_ms - INDEX_KEEP_MS)
            await pipe.execute()
        self.published += 1
        return snap

    async def _run(self) -> None:
        while True:
            try:
                await self.publish_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.last_error is None:
                    log.warning(
                        "metrics publish to %s failed (will keep trying): %r", self.key, exc
                    )
                self.last_error = exc
            else:
                if self.last_error is not None:
                    log.info("metrics publish to %s recovered", self.key)
                self.last_error = None
            raise_if_cancelling()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Start publishing in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"spool-metrics-publisher:{self.worker_id}"
            )

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the background task and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def read_snapshots(redis: Any, prefix: str) -> list[MetricsSnapshot]:
    """Every live process's snapshot under ``prefix`` (found through `stats_index`).

    Keys that expired (the process stopped), or hold something undecodable, are skipped.
    """
    ids = await redis.zrange(stats_index(prefix), 0, -1)
    keys = [stats_key(prefix, i.decode() if isinstance(i, bytes) else i) for i in ids]
    snaps: list[MetricsSnapshot] = []
    for j in range(0, len(keys), 500):  # bounded MGETs: one huge reply would stall the server
        chunk = keys[j : j + 500]
        # Stats keys of different processes live in different Cluster slots.
        mget = getattr(redis, "mget_nonatomic", None) or redis.mget
        for raw in await mget(chunk):
            if raw is None:
                continue
            try:
                snaps.append(decode_snapshot(raw))
            except (ValueError, KeyError, TypeError):
                log.debug("skipping an undecodable stats key under %s", prefix)
    return snaps


async def fetch_fleet_snapshot(redis: Any, prefix: str) -> MetricsSnapshot | None:
    """Every live process's snapshot merged into one; None when no process published."""
    snaps = await read_snapshots(redis, prefix)
    return merge_snapshots(snaps) if snaps else None
