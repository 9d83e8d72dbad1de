"""The schedule duty: every worker that has a periodic task's handler ticks its schedule; the
`schedule_tick` script makes each tick one task fleet-wide (see `engine.schedule`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from engine import codec, declared
from engine.broker import Broker
from engine.schedule import Schedule, tick_id
from engine.task import TaskDef, TaskRegistry, TaskSpec

log = logging.getLogger("spool.schedule")


class ScheduleDuty:
    """Enqueues the due tick of each periodic task in `registry` (a periodic duty)."""

    def __init__(
        self, broker: Broker, registry: TaskRegistry, clock: Callable[[], float] = time.time
    ) -> None:
        self.broker = broker
        self._clock = clock
        self.schedules: list[tuple[TaskDef, Schedule]] = [
            (d, Schedule.of(d)) for d in registry if d.periodic
        ]
        self._done: dict[str, float] = {}  # name -> latest tick this process saw handled

    @property
    def interval_s(self) -> float:
        """How often to look: often enough that a tick is enqueued well within its period."""
        everies = [s.every_s for _, s in self.schedules if s.every_s is not None]
        return min([0.2, *(e / 5 for e in everies)])

    async def publish(self) -> None:
        """Write each schedule where clients and the console list them (`P:schedules`)."""
        if not self.schedules:
            return
        mapping = {}
        for definition, schedule in self.schedules:
            spec = declared.resolve(TaskSpec(definition.name), self.broker.registry, definition)
            mapping[definition.name] = codec.dumps({**schedule.to_dict(), "queue": spec.queue})
        await self.broker.redis.hset(self.broker.globals.schedules, mapping=mapping)

    async def run_once(self) -> None:
        """Enqueue every schedule's latest tick that no worker has enqueued yet."""
        now = self._clock()
        for definition, schedule in self.schedules:
            tick = schedule.latest_at_or_before(now)
            if self._done.get(definition.name, float("-inf")) >= tick:
                continue
            tick_ms = round(tick * 1000)
            spec = declared.resolve(
                TaskSpec(definition.name, id=tick_id(definition.name, tick_ms)),
                self.broker.registry,
                definition,
            )
            outcome = await self.broker.schedule_tick(spec, tick_ms)
            if outcome == 1:
                log.info("enqueued %s for its tick at %d ms", definition.name, tick_ms)
            if outcome >= 0:  # -1: not due by the server's clock yet; try again next round
                self._done[definition.name] = tick
