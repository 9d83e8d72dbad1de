"""Task limits as declared on `@task`: rate (`"50/s"`) and concurrency (per name or per key),
and the uniqueness digest of unique enqueues.

Parsing and validation only; `engine/flow.py` publishes them and `lua/flow.lua` enforces them.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_RATE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*")
_UNIT_MS = {"s": 1000, "sec": 1000, "second": 1000, "m": 60_000, "min": 60_000}
_UNIT_MS |= {"minute": 60_000, "h": 3_600_000, "hour": 3_600_000}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`count` tasks per `period_ms`, spread evenly (`burst` may run back to back)."""

    count: float
    period_ms: int
    text: str
    burst: int = 1

    @property
    def interval_ms(self) -> float:
        """Milliseconds between two tokens."""
        return self.period_ms / self.count


def parse_rate(text: str, burst: int = 1) -> RateLimit:
    """Parse `"50/s"`, `"100/m"`, `"1000/h"` or `"5/10s"`; raise `ValueError` otherwise."""
    m = _RATE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"invalid rate limit {text!r}: use N/s, N/m or N/h (e.g. '50/s')")
    count = float(m.group(1))
    multiple = int(m.group(2) or 1)
    if count <= 0 or multiple <= 0:
        raise ValueError(f"invalid rate limit {text!r}: the count and the period must be > 0")
    if burst < 1:
        raise ValueError("rate burst must be >= 1")
    return RateLimit(count, multiple * _UNIT_MS[m.group(3)], text.strip(), burst)


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """The fleet-wide limits of one task name.

    `concurrency` without `concurrency_key` bounds the task name; with it, each value of that
    argument gets `concurrency` slots.
    """

    rate: RateLimit | None = None
    concurrency: int | None = None
    concurrency_key: str | None = None
    key_position: int = -1  # the key argument's position when passed positionally
    key_default: Any = None

    def spec(self) -> bytes:
        """The JSON `lua/flow.lua` reads (see its field list)."""
        doc: dict[str, Any] = {}
        if self.rate is not None:
            doc["iv"] = self.rate.interval_ms
            doc["tau"] = self.rate.interval_ms * (self.rate.burst - 1)
            doc["rate"] = self.rate.text
        if self.concurrency is not None:
            if self.concurrency_key is None:
                doc["c"] = self.concurrency
            else:
                doc["kc"] = self.concurrency
                doc["ka"] = self.concurrency_key
                doc["kp"] = self.key_position
                if self.key_default is not None:
                    doc["kd"] = self.key_default
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    def describe(self) -> str:
        """One line for people: `50/s, 5 at once` or `1 at once per account`."""
        parts = []
        if self.rate is not None:
            parts.append(self.rate.text)
        if self.concurrency is not None:
            per = f" per {self.concurrency_key}" if self.concurrency_key else ""
            parts.append(f"{self.concurrency} at once{per}")
        return ", ".join(parts)


def limits_for(
    fn: Callable[..., Any],
    rate_limit: str | None,
    concurrency: int | None,
    concurrency_key: str | None,
    rate_burst: int = 1,
) -> FlowLimits | None:
    """Validate a task's declared limits against its signature (errors at decoration time)."""
    if rate_limit is None and concurrency is None:
        if concurrency_key is not None:
            raise ValueError("concurrency_key needs concurrency (slots per key value)")
        return None
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
    position, default = -1, None
    if concurrency_key is not None:
        if concurrency is None:
            raise ValueError("concurrency_key needs concurrency (slots per key value)")
        params = inspect.signature(fn).parameters
        if concurrency_key not in params:
            raise ValueError(
                f"concurrency_key {concurrency_key!r} is not a parameter of {fn.__qualname__}"
            )
        positional = [
            p.name
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if concurrency_key in positional:
            position = positional.index(concurrency_key)
        param_default = params[concurrency_key].default
        if param_default is not inspect.Parameter.empty:
            default = param_default
    rate = parse_rate(rate_limit, rate_burst) if rate_limit is not None else None
    return FlowLimits(rate, concurrency, concurrency_key, position, default)


def unique_digest(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], unique_key: str | None
) -> str:
    """What makes two enqueues "the same": the caller's key, or the name and arguments."""
    if unique_key is not None:
        if not isinstance(unique_key, str) or not unique_key:
            raise ValueError("unique_key must be a non-empty string")
        material = b"k\n" + unique_key.encode()
    else:
        body = orjson.dumps([list(args), dict(kwargs)], option=orjson.OPT_SORT_KEYS)
        material = b"a\n" + name.encode() + b"\n" + body
    return hashlib.sha256(material).hexdigest()[:32]
