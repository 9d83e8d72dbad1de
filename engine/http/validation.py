"""Request bodies and query strings: parse strictly, refuse with a 400 that says what is wrong.

Only shapes and types are checked here; queue names, priorities, task names and ids are
checked by the engine itself (`Broker.enqueue` refuses a whole batch before any write).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from engine.http.errors import ApiError
from engine.task import TaskSpec

TASK_FIELDS = (
    "name",
    "args",
    "kwargs",
    "queue",
    "priority",
    "max_retries",
    "timeout",
    "delay",
    "id",
)
_TASK_FIELD_SET = frozenset(TASK_FIELDS)
_REQUEUE_FIELDS = frozenset({"ids", "queue", "all", "task", "error"})
#: Upper bounds keep arithmetic on the values finite (a 1e308 s delay overflows int()).
MAX_RETRIES = 1000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_DELAY_S = 366 * 24 * 3600.0
MAX_DEAD_LIMIT = 1000


def bad(message: str, code: str = "invalid_request") -> ApiError:
    """A 400 with `message`."""
    return ApiError(400, code, message)


async def read_json(request: web.Request, max_body_bytes: int) -> Any:
    """The request body decoded as JSON; 413 over the limit, 400 when empty or malformed."""
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
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad(f"malformed JSON: {exc}", "invalid_json") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(f"{where} must be a JSON object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _unknown(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = [k for k in obj if k not in allowed]
    if extra:
        raise bad(
            f"{where}: unknown field(s) {', '.join(map(repr, sorted(extra)))};"
            f" allowed: {', '.join(sorted(allowed))}",
            "unknown_field",
        )


def _str(obj: Mapping[str, Any], key: str, where: str, default: str | None) -> str | None:
    value = obj.get(key, default)
    if value is not None and not isinstance(value, str):
        raise bad(f"{where}.{key} must be a string, not {_kind(value)}")
    return value


def _number(
    obj: Mapping[str, Any], key: str, where: str, low: float, high: float, *, positive: bool = False
) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    # bool is an int subclass; true as a timeout is a client bug, not one second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"{where}.{key} must be a number of seconds, not {_kind(value)}")
    if value < low or value > high or (positive and value <= 0):
        op = ">" if positive else ">="
        raise bad(f"{where}.{key} must be {op} {low:g} and <= {high:g} seconds, got {value!r}")
    return float(value)


def _or_default(value: str | None) -> str:
    return "default" if value is None else value


def task_spec(obj: Any, where: str, received_at_ms: int) -> TaskSpec:
    """One task of a request body as a `TaskSpec`, stamped with the request's arrival time."""
    obj = _object(obj, where)
    _unknown(obj, _TASK_FIELD_SET, where)
    name = obj.get("name")
    if not isinstance(name, str):
        raise bad(
            f"{where}.name is required and must be a string"
            + ("" if name is None else f", not {_kind(name)}")
        )
    args = obj.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list):
        raise bad(f"{where}.args must be an array, not {_kind(args)}")
    kwargs = obj.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise bad(f"{where}.kwargs must be an object, not {_kind(kwargs)}")
    max_retries = obj.get("max_retries")
    if max_retries is not None and (
        isinstance(max_retries, bool)
        or not isinstance(max_retries, int)
        or not 0 <= max_retries <= MAX_RETRIES
    ):
        raise bad(f"{where}.max_retries must be an integer from 0 to {MAX_RETRIES}")
    return TaskSpec(
        name=name,
        args=args,
        kwargs=kwargs,
        # null means the default; "" is passed on for the engine to refuse as a name.
        queue=_or_default(_str(obj, "queue", where, None)),
        priority=_or_default(_str(obj, "priority", where, None)),
        max_retries=max_retries,
        timeout_s=_number(obj, "timeout", where, 0, MAX_TIMEOUT_S, positive=True),
        delay_s=_number(obj, "delay", where, 0, MAX_DELAY_S),
        id=_str(obj, "id", where, None),
        received_at_ms=received_at_ms,
    )


def batch_specs(body: Any, max_batch: int, received_at_ms: int) -> list[TaskSpec]:
    """`{"tasks": [...]}` as specs; 413 over `max_batch` items (checked before parsing items)."""
    body = _object(body, "body")
    _unknown(body, frozenset({"tasks"}), "body")
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise bad("body.tasks is required and must be an array of tasks")
    if len(tasks) > max_batch:
        raise ApiError(
            413, "batch_too_large", f"batch of {len(tasks)} tasks exceeds the limit of {max_batch}"
        )
    return [task_spec(t, f"tasks[{i}]", received_at_ms) for i, t in enumerate(tasks)]


@dataclass(frozen=True, slots=True)
class RequeueRequest:
    """Either explicit `ids` (queue optional) or `all` matching a queue and filters."""

    ids: tuple[str, ...] | None
    queue: str | None
    task: str | None
    error: str | None


def requeue_request(body: Any, max_batch: int) -> RequeueRequest:
    """Parse `POST /v1/dead/requeue`."""
    body = _object(body, "body")
    _unknown(body, _REQUEUE_FIELDS, "body")
    queue = _str(body, "queue", "body", None)
    task = _str(body, "task", "body", None)
    error = _str(body, "error", "body", None)
    has_all = "all" in body
    if "ids" in body:
        if has_all:
            raise bad("give either ids or all, not both")
        if task is not None or error is not None:
            raise bad("task and error filter `all`; with ids, give only queue")
        ids = body["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise bad("body.ids must be an array of non-empty strings")
        if not ids:
            raise bad("body.ids must not be empty")
        if len(ids) > max_batch:
            raise ApiError(
                413,
                "batch_too_large",
                f"{len(ids)} ids exceed the limit of {max_batch} per request",
            )
        return RequeueRequest(tuple(ids), queue, None, None)
    if not has_all:
        raise bad('give {"ids": [...]} or {"all": true, "queue": ...}')
    if body["all"] is not True:
        raise bad("body.all must be true")
    if queue is None:
        raise bad("body.queue is required with all (requeue one queue at a time)")
    return RequeueRequest(None, queue, task, error)


def query_limit(request: web.Request, default: int = 50) -> int:
    """The `limit` query parameter, 1..MAX_DEAD_LIMIT."""
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"limit must be an integer, got {raw!r}") from None
    if not 1 <= value <= MAX_DEAD_LIMIT:
        raise bad(f"limit must be from 1 to {MAX_DEAD_LIMIT}, got {value}")
    return value


def query_str(request: web.Request, key: str) -> str | None:
    """An optional query parameter; empty means absent."""
    value = request.query.get(key)
    return value or None
