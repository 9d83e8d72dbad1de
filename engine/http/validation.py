"""Request bodies and query strings decoded into the contract's types; a 400 says what is wrong.

Shapes, types and ranges come from `engine.http.contract` (msgspec enforces them while
decoding). Queue names, priorities, task names and ids are checked by the engine itself
(`Broker.enqueue` refuses a whole batch before any write).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import msgspec
from aiohttp import web

from engine.http.contract import BatchRequest, Body, Query, RequeueRequest, TaskRequest
from engine.http.errors import ApiError
from engine.task import TaskSpec

B = TypeVar("B", bound=Body)
Q = TypeVar("Q", bound=Query)

#: The fields of a task in a request body, in declaration order.
TASK_FIELDS = TaskRequest.__struct_fields__

_decoders: dict[type, msgspec.json.Decoder] = {}


def bad(message: str, code: str = "invalid_request") -> ApiError:
    """A 400 with `message`."""
    return ApiError(400, code, message)


def _invalid(exc: msgspec.ValidationError) -> ApiError:
    message = str(exc)
    if "unknown field" in message:
        return bad(message, "unknown_field")
    return bad(message)


async def read_body(request: web.Request, kind: type[B], max_body_bytes: int) -> B:
    """The request body decoded as `kind`; 413 over the limit, 400 when empty or malformed."""
    length = request.content_length
    if length is not None and length > max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"request body of {length} bytes exceeds the limit of {max_body_bytes}",
        )
    # aiohttp enforces client_max_size while reading (chunked bodies have no Content-Length).
    raw = await request.read()
    if not raw:
        raise bad("request body is empty; expected a JSON object", "invalid_json")
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise bad(f"malformed JSON: {exc}", "invalid_json") from None


def read_query(request: web.Request, kind: type[Q]) -> Q:
    """The query string as `kind` (numbers converted from text); empty values mean absent."""
    params = {k: v for k, v in request.query.items() if v != ""}
    try:
        return msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def batch_specs(req: BatchRequest, max_batch: int, received_at_ms: int) -> list[TaskSpec]:
    """The batch's tasks as specs; 413 over `max_batch` items."""
    if len(req.tasks) > max_batch:
        raise ApiError(
            413,
            "batch_too_large",
            f"batch of {len(req.tasks)} tasks exceeds the limit of {max_batch}",
        )
    return [t.to_spec(received_at_ms) for t in req.tasks]


@dataclass(frozen=True, slots=True)
class RequeueScope:
    """Either explicit `ids` (queue optional) or everything matching a queue and filters."""

    ids: tuple[str, ...] | None
    queue: str | None
    task: str | None
    error: str | None
    until_ms: int | None = None


def requeue_scope(req: RequeueRequest, max_batch: int) -> RequeueScope:
    """The rules the schema cannot say alone: ids xor all, and all needs a queue."""
    if req.ids is not None:
        if req.all is not None:
            raise bad("give either ids or all, not both")
        if req.task is not None or req.error is not None or req.until_ms is not None:
            raise bad("task, error and until_ms filter `all`; with ids, give only queue")
        if not req.ids:
            raise bad("body.ids must not be empty")
        if len(req.ids) > max_batch:
            raise ApiError(
                413,
                "batch_too_large",
                f"{len(req.ids)} ids exceed the limit of {max_batch} per request",
            )
        return RequeueScope(tuple(req.ids), req.queue, None, None)
    if req.all is None:
        raise bad('give {"ids": [...]} or {"all": true, "queue": ...}')
    if req.all is not True:
        raise bad("body.all must be true")
    if req.queue is None:
        raise bad("body.queue is required with all (requeue one queue at a time)")
    return RequeueScope(None, req.queue, req.task, req.error, req.until_ms)
