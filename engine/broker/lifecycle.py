"""Broker calls on leased and ending tasks: settle, extend, release, reap, cancel, end watches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.broker.core import BrokerCore, _s, chunks
from engine.config import EngineConfig
from engine.keys import QueueKeys
from engine.outcomes import Outcome


@dataclass(frozen=True, slots=True)
class ReapResult:
    """What one reaper pass did on one queue."""

    requeued: int
    dead: int
    promoted: int
    orphans: int
    evicted: int
    crash_looped: int


def settle_flags(count: int, rejected: Sequence[int]) -> list[bool]:
    """Per outcome of a settle call of `count`: applied (True) or rejected as stale, from the
    script's reply (the 1-based positions it rejected)."""
    flags = [True] * count
    for position in rejected:
        flags[int(position) - 1] = False
    return flags


def settle_argv(
    cfg: EngineConfig, keys: QueueKeys, outcomes: Sequence[Outcome]
) -> tuple[list[object], list[str]]:
    """ARGV after the levels, and the result keys, of one settle call (at most `BATCH_MAX`
    outcomes): one packed argument per outcome."""
    argv: list[object] = [
        int(cfg.result_ttl_s * 1000),
        cfg.dead_max,
        int(cfg.dead_max_age_s * 1000),
    ]
    extra: list[str] = []
    for o in outcomes:
        t = o.task
        argv.append(
            b"%s%s\n%s\n%d\n%s"
            % (o.kind.encode(), t.id.encode(), t.token.encode(), o.delay_ms, o.data)
        )
        extra.append(keys.result(t.id))
    return argv, extra


class LifecycleCalls(BrokerCore):
    """A task's life after fetch: its end, its lease, its cancel, and who waits for its end."""

    async def settle(self, queue: str, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply finished attempts; False marks a stale lease (rejected and counted).

        More than `BATCH_MAX` outcomes take several script calls: if one fails, those before
        it stay applied (a caller that retries should pass at most `BATCH_MAX`).
        """
        flags: list[bool] = []
        for part in chunks(outcomes):
            flags += await self._settle_once(queue, part)
        return flags

    async def _settle_once(self, queue: str, outcomes: Sequence[Outcome]) -> list[bool]:
        keys = self.keys(queue)
        argv, extra = settle_argv(self.config, keys, outcomes)
        return settle_flags(len(outcomes), await self.scripts.run("settle", keys, argv, extra))

    async def extend(
        self, queue: str, leases: Sequence[tuple[str, str]], lease_s: float | None = None
    ) -> list[int]:
        """Renew live leases held with these (id, token) pairs: 1 renewed, 2 renewed but a
        cancel was requested (stop the task), 0 the lease is lost."""
        flags: list[int] = []
        for part in chunks(leases):
            argv: list[object] = [int((lease_s or self.config.lease_s) * 1000)]
            for task_id, token in part:
                argv += [task_id, token]
            flags += [int(f) for f in await self.scripts.run("extend", self.keys(queue), argv)]
        return flags

    async def release(self, queue: str, leases: Sequence[tuple[str, str]]) -> int:
        """Give back unfinished tasks (shutdown): next out of their level, attempt not counted."""
        released = 0
        for part in chunks(leases):
            argv: list[object] = [self.config.wake_tokens_max]
            for task_id, token in part:
                argv += [task_id, token]
            released += int(await self.scripts.run("release", self.keys(queue), argv))
        return released

    async def reap(self, queue: str, limit: int = 1000) -> ReapResult:
        """Return expired leases, promote due tasks, drop orphans, enforce DLQ caps."""
        cfg = self.config
        raw = await self.scripts.run(
            "reap",
            self.keys(queue),
            [
                limit,
                cfg.crash_limit,
                cfg.dead_max,
                int(cfg.dead_max_age_s * 1000),
                cfg.promote_batch,
                cfg.wake_tokens_max,
                int(cfg.result_ttl_s * 1000),
            ],
        )
        return ReapResult(*(int(x) for x in raw))

    async def cancel(self, queue: str, task_id: str) -> tuple[int, str]:
        """Cancel a task: (1, "") when it was removed before running (pending, scheduled,
        retrying, parked), (2, lease token) when it runs and its worker must stop it, (0, "")
        when there was nothing to do (unknown, already ended, or already requested)."""
        code, token = await self.scripts.run("cancel", self.keys(queue), [task_id])
        return int(code), _s(token)

    async def watch_end(self, queue: str, task_id: str) -> str:
        """Register interest in the end of `task_id`; returns the `ended` stream position to
        read from (see `engine.results`)."""
        return _s(await self.scripts.run("watch_end", self.keys(queue), [task_id]))

    async def unwatch_end(self, queue: str, task_id: str) -> None:
        """Withdraw one registration of `watch_end` (the task's end withdraws them all)."""
        await self.scripts.run("unwatch_end", self.keys(queue), [task_id])
