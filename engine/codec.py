"""Task payload and result encoding (orjson); refuses what JSON cannot carry, naming it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


class PayloadDecodeError(ValueError):
    """A stored payload could not be decoded (corrupt, or written by something else)."""


# orjson would quietly turn datetimes into strings and dataclasses into objects, so the value a
# handler receives would not be the value enqueued: refuse them like any other non-JSON type.
STRICT_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def strict_dumps(value: Any) -> bytes:
    """orjson.dumps that also refuses NaN and infinities (orjson writes them as null)."""
    out = orjson.dumps(value, option=STRICT_OPTIONS)
    # Only walk the value when the output could hide one: NaN and inf both come out as null.
    if b"null" in out and has_nonfinite(value):
        raise TypeError("NaN and infinite floats cannot be encoded as JSON")
    return out


def has_nonfinite(value: Any) -> bool:
    """True if a NaN or an infinity hides anywhere in `value` (lists, tuples, dict values)."""
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(has_nonfinite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_nonfinite(v) for v in value)
    return False


def _check_json(value: Any, where: str) -> None:
    try:
        strict_dumps(value)
    except TypeError as exc:
        raise TypeError(
            f"{where} cannot be encoded as JSON ({type(value).__name__}): {exc}"
        ) from None


def _explain(task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Find the first argument JSON cannot carry and raise a `TypeError` naming it."""
    for i, value in enumerate(args):
        _check_json(value, f"argument {i} of task {task_name!r}")
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise TypeError(f"keyword argument names of task {task_name!r} must be strings")
        _check_json(value, f"keyword argument {key!r} of task {task_name!r}")


def encode_payload(
    *,
    level: str,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    max_retries: int,
    timeout_s: float | None,
    received_at_ms: int | None = None,
    trace_parent: str | None = None,
) -> bytes:
    """Encode the immutable part of a task.

    The level comes first and `max_retries` is `"r"`: the Lua scripts read both with a pattern
    rather than decoding the whole document.
    """
    if isinstance(args, str | bytes | bytearray | Mapping):
        # list("a.png") would silently become five one-letter arguments.
        raise TypeError(f"args of task {name!r} must be a list or tuple, not {type(args).__name__}")
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs of task {name!r} must be a mapping, not {type(kwargs).__name__}")
    # Absent fields mean their default (no timeout, no arguments): a queued no-op then holds
    # ~20 fewer bytes of Redis memory, and readers use .get with those defaults.
    doc: dict[str, Any] = {"l": level, "n": name, "r": int(max_retries)}
    if timeout_s is not None:
        doc["t"] = timeout_s
    if received_at_ms is not None:
        doc["ra"] = received_at_ms
    if trace_parent is not None:
        doc["tp"] = trace_parent
    if args:
        doc["a"] = list(args)
    if kwargs:
        doc["k"] = dict(kwargs)
    try:
        return strict_dumps(doc)
    except TypeError:
        _explain(name, args, kwargs)
        raise


def decode_payload(raw: bytes | str) -> dict[str, Any]:
    """Decode a stored payload; raise `PayloadDecodeError` when it is not one of ours."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadDecodeError(f"undecodable payload: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("n"), str):
        raise PayloadDecodeError("undecodable payload: not a task document")
    if not isinstance(doc.get("a", []), list) or not isinstance(doc.get("k", {}), dict):
        raise PayloadDecodeError("undecodable payload: args must be a list and kwargs a mapping")
    return doc


@dataclass(frozen=True, slots=True)
class Payload:
    """A stored task payload, decoded: the one reader of its short field names."""

    name: str
    level: str
    args: list[Any]
    kwargs: dict[str, Any]
    max_retries: int
    timeout_s: float | None = None
    received_at_ms: int | None = None
    trace_parent: str | None = None
    #: When the server stored the task (µs since the epoch), stamped into the payload as "e" by
    #: the script that stored it; None for a task stored before the stamp moved there (its
    #: stamp is in the queue's `ea` hash).
    enqueued_at_us: int | None = None
    #: Why the payload could not be read (the other fields are then placeholders).
    error: str | None = None


def read_payload(raw: bytes | str | None) -> Payload:
    """Decode a stored payload; one that is missing or not ours comes back with `error` set."""
    if raw is None:
        return Payload("?", "", [], {}, 0, error="no payload stored")
    try:
        doc = decode_payload(raw)
    except PayloadDecodeError as exc:
        return Payload("?", "", [], {}, 0, error=str(exc))
    return Payload(
        name=doc["n"],
        level=doc.get("l", ""),
        args=doc.get("a", []),
        kwargs=doc.get("k", {}),
        max_retries=int(doc.get("r", 0)),
        timeout_s=doc.get("t"),
        received_at_ms=doc.get("ra"),
        trace_parent=doc.get("tp"),
        enqueued_at_us=doc.get("e"),
    )


def dumps(value: Any) -> bytes:
    """Encode any JSON value (results, records)."""
    return orjson.dumps(value)


def loads(raw: bytes | str) -> Any:
    """Decode a JSON document."""
    return orjson.loads(raw)
