"""Periodic tasks: when a schedule ticks (croniter for cron lines), and what is known of each.

Ticks are absolute: `every=60` ticks at whole multiples of 60 s since the epoch, a cron line at
its matching times. Every worker computes the same ticks, and `schedule_tick.lua` records the
last tick enqueued per schedule, so each tick is enqueued once fleet-wide however many workers
run it, and never again after a restart. After an outage only the latest missed tick runs
(once), not every tick missed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from engine import codec
from engine.task import TaskDef

if TYPE_CHECKING:
    from engine.broker import Broker


def validate_cron(cron: str, tz: str | None) -> None:
    """Raise `ValueError` for a cron line croniter cannot read, or an unknown zone."""
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise ValueError(f"invalid cron line {cron!r}")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc


@dataclass(frozen=True, slots=True)
class Schedule:
    """One periodic task's timing (from its `@task` declaration)."""

    name: str
    every_s: float | None = None
    cron: str | None = None
    tz: str | None = None

    @classmethod
    def of(cls, definition: TaskDef) -> Schedule:
        """The schedule a periodic `@task` declares."""
        return cls(definition.name, definition.every_s, definition.cron, definition.tz)

    def _zone(self) -> Any:
        return ZoneInfo(self.tz) if self.tz else UTC

    def latest_at_or_before(self, now_s: float) -> float:
        """The last tick at or before `now_s` (epoch seconds)."""
        if self.every_s is not None:
            return math.floor(now_s / self.every_s) * self.every_s
        assert self.cron is not None
        # croniter's get_prev is strictly before its start: start just after `now_s`.
        start = datetime.fromtimestamp(now_s, self._zone()) + timedelta(microseconds=1)
        return float(croniter(self.cron, start).get_prev(float))

    def next_after(self, t_s: float) -> float:
        """The first tick strictly after `t_s` (epoch seconds)."""
        if self.every_s is not None:
            return (math.floor(t_s / self.every_s) + 1) * self.every_s
        assert self.cron is not None
        start = datetime.fromtimestamp(t_s, self._zone())
        return float(croniter(self.cron, start).get_next(float))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (published for `Client.schedules()` and the console)."""
        return {"name": self.name, "every_s": self.every_s, "cron": self.cron, "tz": self.tz}


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A periodic task as the fleet runs it: its timing, queue, last and next run."""

    name: str
    queue: str
    every_s: float | None
    cron: str | None
    tz: str | None
    last_run_ms: int | None
    next_run_ms: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, empty fields left out."""
        out = {
            "name": self.name,
            "queue": self.queue,
            "every_s": self.every_s,
            "cron": self.cron,
            "tz": self.tz,
            "last_run_ms": self.last_run_ms,
            "next_run_ms": self.next_run_ms,
        }
        return {k: v for k, v in out.items() if v is not None}


def schedule_info(doc: dict[str, Any], last_ms: int | None, now_s: float) -> ScheduleInfo:
    """A published schedule (`Schedule.to_dict` plus its queue) with its last and next run."""
    schedule = Schedule(doc["name"], doc.get("every_s"), doc.get("cron"), doc.get("tz"))
    after = now_s if last_ms is None else max(now_s, last_ms / 1000)
    return ScheduleInfo(
        name=schedule.name,
        queue=doc.get("queue", "default"),
        every_s=schedule.every_s,
        cron=schedule.cron,
        tz=schedule.tz,
        last_run_ms=last_ms,
        next_run_ms=int(schedule.next_after(after) * 1000),
    )


def tick_id(name: str, tick_ms: int) -> str:
    """The id of the task a tick enqueues: the same on every worker (enqueue is idempotent by
    id, a second guard beside the last-tick record)."""
    return f"sched:{name}:{tick_ms}"


async def list_schedules(broker: Broker) -> list[ScheduleInfo]:
    """Every periodic task the workers have published, with its last and next run."""
    raw = await broker.redis.hgetall(broker.globals.schedules)
    docs = sorted((codec.loads(v) for v in raw.values()), key=lambda d: d["name"])
    out = []
    for doc in docs:
        keys = broker.keys(doc.get("queue", "default"))
        # `<name>\trun`: the last tick enqueued (`<name>` also holds the first tick seen).
        last = await broker.redis.hget(keys.schedules, f"{doc['name']}\trun")
        out.append(schedule_info(doc, None if last is None else int(last), time.time()))
    return out
