"""engine.codec: payload round trips, refusals that name the argument, decode errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest

from engine import codec


def encode(args: Any = (), kwargs: Any = None, **kw: Any) -> bytes:
    return codec.encode_payload(
        level=kw.pop("level", "default"),
        name=kw.pop("name", "resize"),
        args=args,
        kwargs={} if kwargs is None else kwargs,
        max_retries=kw.pop("max_retries", 3),
        timeout_s=kw.pop("timeout_s", None),
        **kw,
    )


def test_round_trip_and_field_order_the_lua_relies_on() -> None:
    raw = encode(
        [1, "a", [2.5, None]],
        {"k": {"x": True}},
        level="high",
        max_retries=12,
        timeout_s=3.5,
        received_at_ms=1234,
    )
    assert raw.startswith(b'{"l":"high","n":"resize","r":12,')
    doc = codec.decode_payload(raw)
    assert doc["a"] == [1, "a", [2.5, None]] and doc["k"] == {"k": {"x": True}}
    assert (doc["t"], doc["ra"], doc["r"]) == (3.5, 1234, 12)
    assert codec.decode_payload(raw.decode()) == doc


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ([1, object()], {}, "argument 1 of task 'resize'"),
        ([{1, 2}], {}, "argument 0 of task 'resize'"),
        ([[1, [b"raw"]]], {}, "argument 0 of task 'resize'"),
        ([Decimal("1.5")], {}, "argument 0 of task 'resize'"),
        ([2**70], {}, "argument 0 of task 'resize'"),
        ([1], {"ok": 1, "when": complex(1, 2)}, "keyword argument 'when' of task 'resize'"),
        ([], {"m": {1: "non-str key"}}, "keyword argument 'm' of task 'resize'"),
    ],
)
def test_unencodable_arguments_are_named(args: Any, kwargs: Any, where: str) -> None:
    with pytest.raises(TypeError) as info:
        encode(args, kwargs)
    assert where in str(info.value)


def test_non_string_keyword_names_are_refused() -> None:
    with pytest.raises(TypeError, match="keyword argument names"):
        encode([], {1: "x"})


@pytest.mark.parametrize("args", ["a.png", b"a.png", {"a": 1}])
def test_args_must_be_a_sequence_not_a_string(args: Any) -> None:
    with pytest.raises(TypeError, match="args of task 'resize' must be a list or tuple"):
        encode(args)


def test_kwargs_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="kwargs of task 'resize' must be a mapping"):
        encode([], [("a", 1)])


def test_tuple_args_become_a_list() -> None:
    assert codec.decode_payload(encode((1, 2)))["a"] == [1, 2]


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1,2]", b'{"a":[]}', b'{"n":"x","a":{}}', b'{"n":"x","k":[]}', b"{"],
)
def test_decode_refuses_what_is_not_a_task(raw: bytes) -> None:
    with pytest.raises(codec.PayloadDecodeError, match="undecodable payload"):
        codec.decode_payload(raw)


def test_dumps_loads() -> None:
    value = {"a": [1, 2.5, "é", None], "t": dt.datetime(2024, 1, 2, tzinfo=dt.UTC).isoformat()}
    assert codec.loads(codec.dumps(value)) == value
    assert codec.dumps(value) == orjson.dumps(value)


def test_read_payload_is_the_one_reader_of_the_field_names() -> None:
    raw = codec.encode_payload(
        level="high",
        name="t",
        args=[1],
        kwargs={"k": 2},
        max_retries=4,
        timeout_s=1.5,
        received_at_ms=7,
        trace_parent="00-ab-cd-01",
    )
    p = codec.read_payload(raw)
    assert p == codec.Payload("t", "high", [1], {"k": 2}, 4, 1.5, 7, "00-ab-cd-01")
    assert p.error is None
    for bad in (b"not json", b"[1, 2]", None):
        unreadable = codec.read_payload(bad)
        assert unreadable.error and unreadable.name == "?" and unreadable.args == []
