"""Dead-letter routes: list with filters and paging, groups, requeue, delete, restore."""

from __future__ import annotations

import msgspec
from aiohttp import web

from engine import dead as dead_ops
from engine import undo
from engine.broker import Broker
from engine.dead import DeadFilter
from engine.http import audit
from engine.http.context import ctx
from engine.http.contract import (
    DeadFilterQuery,
    DeadGroups,
    DeadGroupView,
    DeadListQuery,
    DeadPage,
    DeadView,
    Deleted,
    Requeued,
    RequeueRequest,
    Restored,
    RestoreRequest,
    TaskQuery,
)
from engine.http.errors import ApiError, reply
from engine.http.validation import read_body, read_query, requeue_scope


def _invalid(exc: ValueError) -> ApiError:
    return ApiError(400, "invalid_request", str(exc))


async def list_dead(request: web.Request) -> web.Response:
    """GET /v1/dead?queue=&task=&error=&limit=&cursor= → {"items", "cursor"}, newest first."""
    c = ctx(request)
    q = read_query(request, DeadListQuery)
    flt = DeadFilter(queue=q.queue, task=q.task, error=q.error)
    try:
        page = await dead_ops.list_dead(c.broker, flt, q.limit, q.cursor)
    except ValueError as exc:  # invalid queue name or cursor
        raise _invalid(exc) from None
    items = [DeadView(**i.to_dict()) for i in page.items]
    return reply(DeadPage(items=items, cursor=page.cursor))


async def dead_groups(request: web.Request) -> web.Response:
    """GET /v1/dead/groups[?queue=&task=&error=] → dead letters grouped by error fingerprint."""
    c = ctx(request)
    q = read_query(request, DeadFilterQuery)
    try:
        groups = await dead_ops.dead_groups(
            c.broker, DeadFilter(queue=q.queue, task=q.task, error=q.error)
        )
    except ValueError as exc:
        raise _invalid(exc) from None
    return reply(DeadGroups(groups=[msgspec.convert(g, DeadGroupView, from_attributes=True)
                                    for g in groups]))


async def requeue(request: web.Request) -> web.Response:
    """POST /v1/dead/requeue {"ids", "queue"?} | {"all": true, "queue", "task"?, "error"?}."""
    c = ctx(request)
    req = requeue_scope(await read_body(request, RequeueRequest, c.max_body_bytes), c.max_batch)
    try:
        if req.ids is None:
            # Pinned to what had died when the request arrived (or by until_ms): letters dying
            # while the queue's letters are moved are newer, left alone and counted.
            flt = await dead_ops.pin(
                c.broker,
                DeadFilter(queue=req.queue, task=req.task, error=req.error, until_ms=req.until_ms),
            )
            moved = await dead_ops.requeue_matching(c.broker, flt)
            newer = await dead_ops.count_newer(c.broker, flt)
            await audit.record(request, "dead requeue", f"matching {flt.describe()}", f"{moved:,}")
            return reply(Requeued(requeued=moved, newer_left=newer))
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
    await audit.record(request, "dead requeue", f"{len(req.ids):,} id(s)", f"{n:,}")
    return reply(Requeued(requeued=n))


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
    """DELETE /v1/dead/{id}[?queue=] → {"deleted": 1, "undo", "restorable_until_ms"}; 404 when
    no such dead letter. `undo` restores it (POST /v1/dead/restore) until then."""
    c = ctx(request)
    task_id = request.match_info["id"]
    queue = read_query(request, TaskQuery).queue
    token = ""
    try:
        if queue is None:
            item = await dead_ops.find_dead(c.broker, task_id)
            queue = item.queue if item is not None else None
        if queue:
            c.broker.keys(queue)  # validate before taking a token
            token = await undo.new_undo(c.broker)
        n = await dead_ops.delete_dead(c.broker, queue, [task_id], token) if queue else 0
    except ValueError as exc:
        raise _invalid(exc) from None
    if not n:
        raise ApiError(404, "not_found", f"no dead letter {task_id!r}")
    await audit.record(request, "dead delete", f"{queue}/{task_id}", f"{n:,}", undo=token, held=n)
    if not token:  # the restore window is 0: deletes are final
        return reply(Deleted(deleted=n))
    return reply(Deleted(deleted=n, undo=token, restorable_until_ms=undo.expiry_of(token)))


async def restore(request: web.Request) -> web.Response:
    """POST /v1/dead/restore {"undo"} → {"restored", "id_in_use"}: the letters of that delete
    back in the dead set as they were; 404 when none is held, 410 when its window ended."""
    c = ctx(request)
    token = (await read_body(request, RestoreRequest, c.max_body_bytes)).undo
    try:
        undo.expiry_of(token)
    except ValueError as exc:
        raise _invalid(exc) from None
    done = await undo.restore(c.broker, token)
    if done.expired:
        raise ApiError(410, "gone", f"the restore window of {token} ended; its letters are gone")
    if not done.restored and not done.id_in_use:
        raise ApiError(404, "not_found", f"nothing held under {token} (already restored, or "
                                         "dropped to keep the holding bounded)")
    result = f"restored {done.restored:,}"
    if done.id_in_use:
        result += f" · {done.id_in_use:,} left deleted (id in use again)"
    await audit.record(request, "dead restore", f"undo {token}", result)
    return reply(Restored(restored=done.restored, id_in_use=done.id_in_use))
