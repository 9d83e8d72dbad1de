"""Durable enqueue: return only once the write reached a replica (WAIT) or the primary's AOF
on disk (WAITAOF, Redis 7.2+ / Valkey), else raise `DurabilityError`.

WAIT and WAITAOF count the writes of the connection they are sent on, so the enqueue and the
wait share one connection taken from the client's pool for the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.broker import Broker
from engine.errors import DurabilityError
from engine.task import TaskSpec

#: How long a durable enqueue waits for the replica or the fsync.
DURABLE_TIMEOUT_S = 1.0


async def enqueue_durably(
    broker: Broker, specs: Sequence[TaskSpec], timeout_s: float = DURABLE_TIMEOUT_S
) -> list[str]:
    """`broker.enqueue(specs)`, confirmed by WAIT 1 or else WAITAOF 1 0 within `timeout_s`."""
    pool = getattr(broker.redis, "connection_pool", None)
    if pool is None:
        raise DurabilityError("durable enqueue is not available on Redis Cluster")
    one = Redis(connection_pool=pool, single_connection_client=True)
    try:
        ids = await Broker(one, broker.config, registry=broker.registry).enqueue(specs)
        timeout_ms = max(1, int(timeout_s * 1000))
        if int(await one.execute_command("WAIT", 1, timeout_ms)) >= 1:
            return ids
        try:
            local, _replicas = await one.execute_command("WAITAOF", 1, 0, timeout_ms)
        except ResponseError as exc:  # no WAITAOF (Redis < 7.2), or appendonly is off
            raise DurabilityError(
                f"no replica acknowledged the write within {timeout_s:g} s and the AOF cannot "
                f"confirm it ({exc})"
            ) from None
        if int(local) >= 1:
            return ids
        raise DurabilityError(
            f"neither a replica nor the AOF confirmed the write within {timeout_s:g} s"
        )
    finally:
        await one.aclose()
