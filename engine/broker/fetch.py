"""Broker calls that hand tasks to workers: fetch, blocking waits and nudges."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine import codec
from engine.broker.core import BATCH_MAX, BrokerCore, _s, enqueued_at_us
from engine.broker.lifecycle import settle_argv, settle_flags
from engine.connection_pool import run_batch
from engine.outcomes import Outcome
from engine.scripts import is_missing_function
from engine.task import FetchedTask


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch returned. `next_due_ms` is the earliest scheduled task, or None."""

    now_ms: int
    next_due_ms: int | None
    tasks: list[FetchedTask]


class FetchCalls(BrokerCore):
    """Leasing tasks out, and the wake-ups that tell workers to."""

    async def fetch(
        self, queue: str, n: int, worker_id: str, lease_s: float | None = None
    ) -> FetchResult:
        """Lease up to `n` tasks of `queue`, highest level first, FIFO within a level.

        More than `BATCH_MAX` takes several script calls, each complete on its own.
        """
        res = await self._fetch_once(queue, min(n, BATCH_MAX), worker_id, lease_s)
        last = len(res.tasks)
        while last == BATCH_MAX and len(res.tasks) < n:
            more = await self._fetch_once(
                queue, min(n - len(res.tasks), BATCH_MAX), worker_id, lease_s
            )
            last = len(more.tasks)
            res = FetchResult(more.now_ms, more.next_due_ms, res.tasks + more.tasks)
        return res

    async def _fetch_once(
        self, queue: str, n: int, worker_id: str, lease_s: float | None
    ) -> FetchResult:
        keys = self.keys(queue)
        token, argv = self._fetch_argv(queue, n, worker_id, lease_s)
        try:
            raw = await self.scripts.run("fetch", keys, argv, [keys.fetch_mark(token)])
        except BaseException:
            self._lost_fetches[(queue, worker_id)] = token
            raise
        return _fetch_result(queue, raw, token)

    def _fetch_argv(
        self, queue: str, n: int, worker_id: str, lease_s: float | None
    ) -> tuple[str, list[object]]:
        token = self._lost_fetches.pop((queue, worker_id), None)
        if token is None:
            token = f"{os.urandom(8).hex()}|{worker_id}"
        lease_ms = int((lease_s or self.config.lease_s) * 1000)
        return token, [n, lease_ms, token, self.config.promote_batch, self.config.wake_tokens_max]

    async def wait_and_fetch(
        self,
        queues: Sequence[str],
        queue: str,
        n: int,
        worker_id: str,
        timeout_s: float,
        lease_s: float | None = None,
    ) -> FetchResult:
        """Block on the wake keys of `queues` (and the worker's nudge key), then fetch up to `n`
        of `queue`, in one round trip. One server only: use `wait_for_work` on a Cluster.

        Redis runs a command pipelined behind a BLPOP as soon as the BLPOP returns, so a woken
        worker has its tasks without a second round trip. The fetch runs after a timeout too
        (it then finds what came due, or nothing); a token of another queue leaves it empty
        and the caller's next round fetches every queue.
        """
        return (await self._wait_pipeline(queues, queue, n, worker_id, timeout_s, lease_s, ()))[1]

    async def settle_and_wait(
        self,
        outcomes: Sequence[Outcome],
        queues: Sequence[str],
        queue: str,
        n: int,
        worker_id: str,
        timeout_s: float,
    ) -> tuple[list[bool] | Exception, FetchResult]:
        """`settle(queue, outcomes)` (at most `BATCH_MAX`) sent ahead of `wait_and_fetch`, in
        the same round trip: the server settles at once, but the flags come back with the
        wake-up. An error reply of the settle alone is returned in place of the flags (the
        wait and the fetch stand); anything that fails the round trip raises, and whether the
        settle ran is then unknown (a replay is safe: the lease tokens reject it).
        """
        settled, res = await self._wait_pipeline(
            queues, queue, n, worker_id, timeout_s, None, outcomes
        )
        if isinstance(settled, Exception):
            return settled, res
        return settle_flags(len(outcomes), settled), res

    async def _wait_pipeline(
        self,
        queues: Sequence[str],
        queue: str,
        n: int,
        worker_id: str,
        timeout_s: float,
        lease_s: float | None,
        outcomes: Sequence[Outcome],
    ) -> tuple[Any, FetchResult]:
        keys = self.keys(queue)
        token, argv = self._fetch_argv(queue, min(n, BATCH_MAX), worker_id, lease_s)
        mark = [keys.fetch_mark(token)]
        all_keys, args = self.scripts.call_args("fetch", keys, argv, mark)
        # The nudge key of the first queue: `nudge` pushes the same one.
        wake_keys = [self.keys(q).wake for q in queues] + [self.keys(queues[0]).nudge(worker_id)]
        settled: Any = None
        commands: list[Sequence[Any]] = []
        if outcomes:
            s_keys, s_args = self.scripts.call_args(
                "settle", keys, *settle_argv(self.config, keys, outcomes)
            )
            commands.append(self.scripts.command("settle", s_keys, s_args))
        commands.append(("BLPOP", *wake_keys, max(timeout_s, 0.001)))
        commands.append(self.scripts.command("fetch", all_keys, args))
        try:
            replies = await run_batch(self.redis.connection_pool, commands)
            if outcomes:
                settled = replies[0]
            woke, raw = replies[-2:]
            if isinstance(woke, Exception):
                raise woke
            if is_missing_function(raw):  # a restarted or flushed server: load and run it
                raw = await self.scripts.run("fetch", keys, argv, mark)
            elif isinstance(raw, Exception):
                raise raw
        except BaseException:
            self._lost_fetches[(queue, worker_id)] = token
            raise
        return settled, _fetch_result(queue, raw, token)

    async def nudge(self, queue: str, worker_id: str) -> None:
        """End `worker_id`'s wait in `wait_and_fetch` on queues starting with `queue` (the token
        expires if nobody takes it)."""
        key = self.keys(queue).nudge(worker_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(key, b"1")
            pipe.pexpire(key, 60_000)
            await pipe.execute()

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until a wake token arrives on any of `queues` (True) or the timeout (False)."""
        wake_keys = [self.keys(q).wake for q in queues]
        if self.cluster and len(wake_keys) > 1:
            # One BLPOP may not span Cluster slots: take turns, each with a slice of the wait.
            share = max(timeout_s / len(wake_keys), 0.01)
            for key in wake_keys:
                if await self.redis.blpop([key], timeout=share) is not None:
                    return True
            return False
        got = await self.redis.blpop(wake_keys, timeout=max(timeout_s, 0.001))
        return got is not None


def _fetch_result(queue: str, raw: list[Any], token: str) -> FetchResult:
    """Decode the fetch script's reply (see fetch.lua: two values per task, or five)."""
    now_ms = int(raw[0])
    next_due = int(raw[1])
    fetched_at_ms = int(raw[2]) / 1000  # µs resolution: sub-millisecond waits are real
    width = int(raw[3])
    tasks: list[FetchedTask] = []
    if width == 2:
        for i in range(4, len(raw), 2):
            tasks.append(_decode_fetched(queue, raw[i], raw[i + 1], 1, b"", fetched_at_ms, token))
        return FetchResult(now_ms, None if next_due < 0 else next_due, tasks)
    for i in range(4, len(raw), 5):
        task = _decode_fetched(
            queue, raw[i], raw[i + 1], int(raw[i + 2]), raw[i + 3], fetched_at_ms, token
        )
        if raw[i + 4]:
            task.ready_at_ms = int(raw[i + 4]) / 1000
        tasks.append(task)
    return FetchResult(now_ms, None if next_due < 0 else next_due, tasks)


def _decode_fetched(
    queue: str,
    task_id: bytes,
    payload: bytes,
    attempt: int,
    ea: bytes,
    now_ms: float,
    token: str,
) -> FetchedTask:
    """One fetched task; its enqueue time from its payload, else `ea` (µs, a task stored by an
    earlier version), else the fetch time."""
    p = codec.read_payload(payload)
    us = enqueued_at_us(p, ea)
    return FetchedTask(
        id=_s(task_id),
        queue=queue,
        name=p.name,
        level=p.level,
        args=p.args,
        kwargs=p.kwargs,
        attempt=attempt,
        max_retries=p.max_retries,
        timeout_s=p.timeout_s,
        enqueued_at_ms=now_ms if us is None else us / 1000,
        fetched_at_ms=now_ms,
        token=token,
        decode_error=p.error,
        received_at_ms=p.received_at_ms,
        trace_parent=p.trace_parent,
    )
