"""Wake-ups of an idle fetcher on a Redis Cluster, where one BLPOP cannot span the queues.

Each queue's wake key lives in that queue's slot, so a worker on several queues cannot block on
all of them with one command. Taking turns (a slice of the wait on each key) made an idle
worker see a new task up to a whole slice late. Instead one watcher per queue stays parked on
its own key (its own connection) and sets an event when a token arrives: the fetcher waits on
the event, and sees work on any queue as fast as on one server.
"""

from __future__ import annotations

import asyncio
import logging

from engine.broker import Broker
from engine.connection import raise_if_cancelling
from engine.worker.health import REDIS_DOWN

log = logging.getLogger("spool.worker")


class ClusterWake:
    """One parked BLPOP per queue; `wait` returns as soon as any of them got a token."""

    def __init__(self, broker: Broker, queues: tuple[str, ...], block_s: float = 1.0) -> None:
        self.broker = broker
        self.queues = queues
        self.block_s = block_s
        self._event = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Park one watcher on each queue's wake key."""
        self._watchers = [asyncio.create_task(self._watch(q)) for q in self.queues]

    async def stop(self) -> None:
        """Stop the watchers (a cancelled BLPOP closes its connection; nothing else is lost:
        a token taken and not seen only delays a fetch until the next timeout)."""
        for w in self._watchers:
            w.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []

    async def wait(self, timeout_s: float) -> bool:
        """True as soon as a token arrived on any queue (maybe before this call), else False
        after `timeout_s`."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()

    async def _watch(self, queue: str) -> None:
        key = self.broker.keys(queue).wake
        backoff = 0.05
        while True:
            raise_if_cancelling()
            try:
                if await self.broker.redis.blpop([key], timeout=self.block_s) is not None:
                    self._event.set()
                backoff = 0.05
            except REDIS_DOWN:
                # The fetcher reports the outage; a watcher only keeps trying.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("wake-up watcher of %s failed; retrying in %.2f s", queue, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
