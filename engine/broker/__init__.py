"""The broker: every queue state change, each one Lua round trip for a whole batch.

`Broker` is assembled from one module per group of calls: `enqueue` (storing tasks), `fetch`
(leasing them out), `lifecycle` (settle, extend, release, reap, cancel), `admin` (pause, dead
letters, repair, audit), `fleet` (worker records) over `core` (client, config, key names, queue
registration).
"""

from __future__ import annotations

from engine.broker.admin import AdminCalls
from engine.broker.core import BATCH_MAX, _s, chunks, enqueued_at_ms
from engine.broker.enqueue import EnqueueCalls, new_task_id
from engine.broker.fetch import FetchCalls, FetchResult
from engine.broker.fleet import FleetCalls
from engine.broker.lifecycle import LifecycleCalls, ReapResult

__all__ = [
    "BATCH_MAX",
    "Broker",
    "FetchResult",
    "ReapResult",
    "_s",
    "chunks",
    "enqueued_at_ms",
    "new_task_id",
]


class Broker(EnqueueCalls, FetchCalls, LifecycleCalls, AdminCalls, FleetCalls):
    """Queue operations over one Redis client. Cheap to create; holds no connection itself."""
