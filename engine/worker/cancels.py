"""Cancel requests for the tasks this process holds: heard on its own pub/sub channel (within
milliseconds), and from lease renewal as a backstop (a message sent while the subscription
was down is lost; the `cancel` hash in Redis is not)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from engine.broker import Broker, _s
from engine.connection import raise_if_cancelling
from engine.worker.handler import HandlerRunner
from engine.worker.leases import Leases
from engine.worker.slots import Slots

log = logging.getLogger("spool.worker")


class CancelListener:
    """Subscribes to `GlobalKeys.cancel_channel(worker_id)` and stops the tasks named there."""

    def __init__(
        self, broker: Broker, worker_id: str, runner: HandlerRunner, slots: Slots, leases: Leases
    ) -> None:
        self.broker = broker
        self.channel = broker.globals.cancel_channel(worker_id)
        self.runner = runner
        self.slots = slots
        self.leases = leases
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def request(self, task_id: str) -> None:
        """Stop `task_id` if this process holds it (running, or fetched and not started)."""
        if task_id in self.leases.inflight:
            self.runner.cancel(task_id, self.slots.tasks)

    def start(self) -> None:
        """Start listening."""
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.broker.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                backoff = 0.1
                while True:
                    raise_if_cancelling()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        _queue, _, task_id = _s(message["data"]).partition("\n")
                        self.request(task_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Lease renewal still reports requests meanwhile (a little later).
                self.subscribed.clear()
                log.warning("cancel channel lost (%s); resubscribing", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
