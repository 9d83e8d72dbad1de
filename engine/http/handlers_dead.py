"""Dead-letter routes: list with filters and paging, groups, requeue, delete."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from engine import dead as dead_ops
from engine.broker import Broker
from engine.dead import DeadFilter
from engine.http.context import ctx
from engine.http.errors import ApiError, json_response
from engine.http.validation import query_limit, query_str, read_json, requeue_request


def _invalid(exc: ValueError) -> ApiError:
    return ApiError(400, "invalid_request", str(exc))


async def list_dead(request: web.Request) -> web.Response:
    """GET /v1/dead?queue=&task=&error=&limit=&cursor= → {"items", "cursor"}, newest first."""
    c = ctx(request)
    flt = DeadFilter(
        queue=query_str(request, "queue"),
        task=query_str(request, "task"),
        error=query_str(request, "error"),
    )
    limit = query_limit(request)
    try:
        page = await dead_ops.list_dead(c.broker, flt, limit, query_str(request, "cursor"))
    except ValueError as exc:  # invalid queue name or cursor
        raise _invalid(exc) from None
    return json_response({"items": [i.to_dict() for i in page.items], "cursor": page.cursor})


async def dead_groups(request: web.Request) -> web.Response:
    """GET /v1/dead/groups[?queue=&task=&error=] → dead letters grouped by error fingerprint."""
    c = ctx(request)
    flt = DeadFilter(
        queue=query_str(request, "queue"),
        task=query_str(request, "task"),
        error=query_str(request, "error"),
    )
    try:
        groups = await dead_ops.dead_groups(c.broker, flt)
    except ValueError as exc:
        raise _invalid(exc) from None
    out: list[dict[str, Any]] = []
    for g in groups:
        d = asdict(g)
        d["tasks"], d["queues"] = list(g.tasks), list(g.queues)
        out.append(d)
    return json_response({"groups": out})


async def requeue(request: web.Request) -> web.Response:
    """POST /v1/dead/requeue {"ids", "queue"?} | {"all": true, "queue", "task"?, "error"?}."""
    c = ctx(request)
    req = requeue_request(await read_json(request, c.max_body_bytes), c.max_batch)
    try:
        if req.ids is None:
            flt = DeadFilter(queue=req.queue, task=req.task, error=req.error)
            return json_response({"requeued": await dead_ops.requeue_matching(c.broker, flt)})
        by_queue: dict[str, list[str]] = {}
        if req.queue is not None:
            c.broker.keys(req.queue)  # validate before the script call
            by_queue[req.queue] = list(dict.fromkeys(req.ids))
        else:
            by_queue = await _locate_dead(c.broker, list(dict.fromkeys(req.ids)))
        n = 0
        for queue, ids in by_queue.items():
            n += await dead_ops.requeue_dead(c.broker, queue, ids)
    except ValueError as exc:
        raise _invalid(exc) from None
    return json_response({"requeued": n})


async def _locate_dead(broker: Broker, ids: list[str]) -> dict[str, list[str]]:
    """The queue of each dead id, in one pipelined round trip rather than find_dead per id.

    An id found in no dead set (unknown, or requeued meanwhile) is simply left out.
    """
    queues = await broker.known_queues()
    if not queues:
        return {}
    async with broker.redis.pipeline(transaction=False) as pipe:
        for q in queues:
            dead_key = broker.keys(q).dead
            for task_id in ids:
                pipe.zscore(dead_key, task_id)
        scores = await pipe.execute()
    out: dict[str, list[str]] = {}
    placed: set[str] = set()
    for qi, q in enumerate(queues):
        for ii, task_id in enumerate(ids):
            if scores[qi * len(ids) + ii] is not None and task_id not in placed:
                placed.add(task_id)
                out.setdefault(q, []).append(task_id)
    return out


async def delete_dead(request: web.Request) -> web.Response:
    """DELETE /v1/dead/{id}[?queue=] → {"deleted": 1}; 404 when no such dead letter."""
    c = ctx(request)
    task_id = request.match_info["id"]
    queue = query_str(request, "queue")
    try:
        if queue is None:
            item = await dead_ops.find_dead(c.broker, task_id)
            queue = item.queue if item is not None else None
        n = await dead_ops.delete_dead(c.broker, queue, [task_id]) if queue else 0
    except ValueError as exc:
        raise _invalid(exc) from None
    if not n:
        raise ApiError(404, "not_found", f"no dead letter {task_id!r}")
    return json_response({"deleted": n})
