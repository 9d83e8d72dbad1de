"""Task routes: enqueue one, enqueue a batch, read one task's state."""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from aiohttp import web

from engine import cancel as cancel_ops
from engine import queues as queue_ops
from engine import schedule as schedule_ops
from engine.declared import TaskArgumentsError
from engine.durable import enqueue_durably
from engine.errors import DurabilityError
from engine.http import audit
from engine.http.context import HttpContext, ctx
from engine.http.contract import (
    BatchRequest,
    CancelReply,
    Created,
    CreatedBatch,
    ScheduleList,
    ScheduleView,
    TaskQuery,
    TaskRequest,
    TaskView,
    TaskWaitQuery,
)
from engine.http.errors import ApiError, reply, unavailable
from engine.http.validation import batch_specs, read_body, read_query
from engine.results import ENDED_STATES
from engine.task import TaskInfo, TaskSpec


def _arrival_ms() -> int:
    """Wall-clock ms now: the ingress stage runs from here to the server's enqueue time."""
    return time.time_ns() // 1_000_000


def resolve(c: HttpContext, spec: TaskSpec, where: str = "body") -> TaskSpec:
    """The spec with the task's declared options as defaults (when this process has the
    handler registered); 422 when the arguments do not fit its signature."""
    try:
        return c.broker.resolve(spec)
    except TaskArgumentsError as exc:
        raise ApiError(422, "invalid_arguments", f"{where}: {exc}") from None


async def enqueue(c: HttpContext, specs: Sequence[TaskSpec]) -> list[str]:
    """Store `specs` (one script call per queue, all validated before any write) and record it."""
    specs = [resolve(c, s, f"tasks[{i}]") for i, s in enumerate(specs)]
    t0 = time.perf_counter()
    try:
        ids = await c.broker.enqueue(specs)
    except (ValueError, TypeError) as exc:
        # The engine's refusals (queue name, priority, task name, id, unencodable arguments)
        # name the offending value; they are raised before any write, so nothing was stored.
        raise ApiError(400, "invalid_task", str(exc)) from None
    elapsed_s = time.perf_counter() - t0
    rec = c.recorder
    per_queue: dict[str, int] = {}
    for s in specs:
        queue = s.queue or "default"
        per_queue[queue] = per_queue.get(queue, 0) + 1
    for q, n in per_queue.items():
        rec.count("enqueued", n, queue=q)
        # One Redis write covered the whole batch: one sample of its duration per queue.
        rec.record_stage("enqueue", elapsed_s, queue=q)
    return ids


async def post_task(request: web.Request) -> web.Response:
    """POST /v1/tasks → 201 {"id"}."""
    arrived = _arrival_ms()
    c = ctx(request)
    body = await read_body(request, TaskRequest, c.max_body_bytes)
    spec = resolve(c, body.to_spec(arrived))
    try:
        if body.durable:
            task_id = (await _durably(c, [spec]))[0]
        else:
            task_id = await c.coalescer.submit(spec)
    except (ValueError, TypeError) as exc:  # the engine refused this spec; nothing was stored
        raise ApiError(400, "invalid_task", str(exc)) from None
    return reply(Created(id=task_id), 201)


async def _durably(c: HttpContext, specs: list[TaskSpec]) -> list[str]:
    """A durable enqueue; an unconfirmed one is a 503 saying what is known."""
    try:
        return await enqueue_durably(c.broker, specs)
    except DurabilityError as exc:
        raise unavailable(f"written but not confirmed durable: {exc}") from None


async def post_batch(request: web.Request) -> web.Response:
    """POST /v1/tasks/batch → 201 {"ids"}, all or nothing."""
    arrived = _arrival_ms()
    c = ctx(request)
    body = await read_body(request, BatchRequest, c.max_body_bytes)
    specs = batch_specs(body, c.max_batch, arrived)
    if specs and any(t.durable for t in body.tasks):
        try:
            ids = await _durably(c, list(specs))
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "invalid_task", str(exc)) from None
    else:
        ids = await enqueue(c, specs) if specs else []
    return reply(CreatedBatch(ids=ids), 201)


def _check_queue(c: HttpContext, queue: str | None) -> None:
    """A 400 for an invalid queue name, before anything is read."""
    if queue is None:
        return
    try:
        c.broker.keys(queue)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None


async def _status(c: HttpContext, task_id: str, queue: str | None) -> TaskInfo | None:
    """The task's record (`queue_ops.task_status`); an invalid queue name is a 400."""
    _check_queue(c, queue)
    return await queue_ops.task_status(c.broker, task_id, queue)


def _missing(task_id: str) -> ApiError:
    """The 404 for a task that is unknown or whose result expired."""
    return ApiError(404, "not_found", f"no task {task_id!r} (unknown, or its result expired)")


def _found(task_id: str, info: TaskInfo | None) -> TaskInfo:
    """`info`, or a 404 when there is none."""
    if info is None:
        raise _missing(task_id)
    return info


async def cancel_task(request: web.Request) -> web.Response:
    """POST /v1/tasks/{id}/cancel[?queue=] → {"id", "cancelled", "state"}; 404 unknown."""
    c = ctx(request)
    task_id = request.match_info["id"]
    query = read_query(request, TaskQuery)
    _check_queue(c, query.queue)
    outcome = await cancel_ops.cancel_and_report(c.broker, task_id, query.queue)
    if outcome is None:
        raise _missing(task_id)
    await audit.record(request, "cancel", outcome.scope, outcome.result)
    return reply(
        CancelReply(id=task_id, cancelled=outcome.cancelled, state=outcome.state)  # type: ignore[arg-type]
    )


async def list_schedules(request: web.Request) -> web.Response:
    """GET /v1/schedules → {"schedules": [...]}."""
    items = await schedule_ops.list_schedules(ctx(request).broker)
    views = [msgspec.convert(i.to_dict(), ScheduleView) for i in items]
    return reply(ScheduleList(schedules=views))


async def get_task(request: web.Request) -> web.Response:
    """GET /v1/tasks/{id}[?queue=] → the task's record; 404 unknown or expired."""
    c = ctx(request)
    task_id = request.match_info["id"]
    query = read_query(request, TaskWaitQuery)
    info = await _status(c, task_id, query.queue)
    if info is not None and query.wait and info.state not in ENDED_STATES:
        # Woken by the task's end (the settle script's notification), not by polling.
        try:
            info = await c.ends.wait(task_id, info.queue, query.wait)
        except TimeoutError:  # not ended in time: answer with its state now
            info = await queue_ops.task_status(c.broker, task_id, info.queue)
    return reply(msgspec.convert(_found(task_id, info).to_dict(), TaskView))
