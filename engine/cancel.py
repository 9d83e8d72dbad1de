"""Cancelling a task: the script decides (removed, or running and to be stopped), and a running
task's worker is told on its own pub/sub channel, named in the task's lease token."""

from __future__ import annotations

from engine import queues as queue_ops
from engine.broker import Broker


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
