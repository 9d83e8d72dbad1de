"""Queue routes: list with depths, pause, resume, diagnosis."""

from __future__ import annotations

from aiohttp import web

from engine import queues as queue_ops
from engine.diagnosis import diagnose_queue
from engine.http import audit
from engine.http.context import ctx
from engine.http.contract import (
    DiagnosisReason,
    QueueDiagnosis,
    QueueList,
    QueueState,
    queue_view,
)
from engine.http.errors import ApiError, reply


def _queue(request: web.Request) -> str:
    queue = request.match_info["queue"]
    try:
        ctx(request).broker.keys(queue)  # validates the name before any write
    except ValueError as exc:
        raise ApiError(400, "invalid_queue", str(exc)) from None
    return queue


async def list_queues(request: web.Request) -> web.Response:
    """GET /v1/queues."""
    stats = await queue_ops.all_queue_stats(ctx(request).broker)
    return reply(QueueList(queues=[queue_view(s) for s in stats]))


async def pause_queue(request: web.Request) -> web.Response:
    """POST /v1/queues/{queue}/pause (a queue not used yet may be paused ahead of time)."""
    queue = _queue(request)
    await queue_ops.pause(ctx(request).broker, queue)
    await audit.record(request, "pause", f"queue {queue}", "done")
    return reply(QueueState(queue=queue, paused=True))


async def resume_queue(request: web.Request) -> web.Response:
    """POST /v1/queues/{queue}/resume."""
    queue = _queue(request)
    await queue_ops.resume(ctx(request).broker, queue)
    await audit.record(request, "resume", f"queue {queue}", "done")
    return reply(QueueState(queue=queue, paused=False))


async def queue_diagnosis(request: web.Request) -> web.Response:
    """GET /v1/queues/{queue}/diagnosis: why the queue is (not) moving."""
    queue = _queue(request)
    d = await diagnose_queue(ctx(request).broker, queue)
    reasons = [DiagnosisReason(code=r.code, message=r.message) for r in d.reasons]
    return reply(
        QueueDiagnosis(
            queue=d.queue,
            moving=d.moving,
            reasons=reasons,
            oldest_pending_age_s=d.oldest_pending_age_s,
        )
    )
