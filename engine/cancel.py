"""Cancelling a task: the script decides (removed, or running and to be stopped), and a running
task's worker is told on its own pub/sub channel, named in the task's lease token."""

from __future__ import annotations

from dataclasses import dataclass

from engine import queues as queue_ops
from engine.broker import Broker


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancel did: the task's queue, whether this call cancelled it, its state after."""

    task_id: str
    queue: str
    cancelled: bool
    state: str | None

    @property
    def result(self) -> str:
        """`cancelled, now <state>` or `nothing to do (<state>)`: the audit trail's result."""
        return f"cancelled, now {self.state}" if self.cancelled else f"nothing to do ({self.state})"

    @property
    def scope(self) -> str:
        """`<queue>/<id>`: the audit trail's scope."""
        return f"{self.queue}/{self.task_id}"


async def cancel_task(broker: Broker, task_id: str, queue: str | None = None) -> bool:
    """Cancel `task_id` (looked up in every queue when `queue` is None); True when this call
    cancelled it or asked its worker to stop it. See `Client.cancel`."""
    if queue is None:
        info = await queue_ops.task_status(broker, task_id)
        if info is None:
            return False
        queue = info.queue
    code, token = await broker.cancel(queue, task_id)
    if code == 2:
        worker = token.partition("|")[2]
        if worker:
            # Lost if the worker is not listening right now: its lease renewal also learns of
            # the request (extend reports it), so the task still stops, a little later.
            await broker.redis.publish(broker.globals.cancel_channel(worker), f"{queue}\n{task_id}")
    return code != 0


async def cancel_and_report(
    broker: Broker, task_id: str, queue: str | None = None
) -> CancelOutcome | None:
    """Cancel `task_id` and read its state after; None when no such task exists (or it
    expired). What the console, the CLI and the HTTP API each do for one cancel."""
    info = await queue_ops.task_status(broker, task_id, queue)
    if info is None:
        return None
    done = await cancel_task(broker, task_id, info.queue)
    after = await queue_ops.task_status(broker, task_id, info.queue)
    return CancelOutcome(task_id, info.queue, done, str(after.state) if after else None)
