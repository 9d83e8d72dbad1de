"""Task payload and result encoding (orjson); refuses what JSON cannot carry, naming it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson


class PayloadDecodeError(ValueError):
    """A stored payload could not be decoded (corrupt, or written by something else)."""


def _check_json(value: Any, where: str) -> None:
    try:
        orjson.dumps(value)
    except TypeError as exc:
        raise TypeError(f"{where} cannot be encoded as JSON ({type(value).__name__}): {exc}") from None


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
) -> bytes:
    """Encode the immutable part of a task.

    The level comes first and `max_retries` is `"r"`: the Lua scripts read both with a pattern
    rather than decoding the whole document.
    """
    if isinstance(args, str | bytes | bytearray) or isinstance(args, Mapping):
        # list("a.png") would silently become five one-letter arguments.
        raise TypeError(
            f"args of task {name!r} must be a list or tuple, not {type(args).__name__}"
        )
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs of task {name!r} must be a mapping, not {type(kwargs).__name__}")
    doc: dict[str, Any] = {"l": level, "n": name, "r": int(max_retries), "t": timeout_s}
    if received_at_ms is not None:
        doc["ra"] = received_at_ms
    doc["a"] = list(args)
    doc["k"] = dict(kwargs)
    try:
        return orjson.dumps(doc)
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


def dumps(value: Any) -> bytes:
    """Encode any JSON value (results, records)."""
    return orjson.dumps(value)


def loads(raw: bytes | str) -> Any:
    """Decode a JSON document."""
    return orjson.loads(raw)


def encode_result(value: Any) -> bytes:
    """Encode a handler's return value; raise `TypeError` with a clear message if impossible."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise TypeError(
            f"the handler returned a {type(value).__name__}, which JSON cannot carry: {exc}"
        ) from None
