"""engine.resp: the fast packer builds exactly redis-py's bytes, and the clients open_redis
makes use it against a real server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from engine.connection import open_redis
from engine.resp import FastPackingMixin, fast_packing

FAST = fast_packing(Connection)
ARG = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=80),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.binary(min_size=6001, max_size=6100),  # past redis-py's buffer cutoff
    st.builds(bytearray, st.binary(max_size=10)),
    st.builds(memoryview, st.binary(max_size=10)),
)


def _joined(chunks: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


@given(st.sampled_from(["FCALL", "SET", "CLIENT SETNAME", b"HSET", b"CONFIG GET"]), st.lists(ARG))
def test_same_bytes_as_redis_py(command: str | bytes, args: list[Any]) -> None:
    """Any command name and mix of argument types packs to redis-py's bytes."""
    assert _joined(FAST().pack_command(command, *args)) == _joined(
        Connection().pack_command(command, *args)
    )


def test_refuses_what_redis_py_refuses() -> None:
    """A bool or an unknown type is redis-py's DataError, not silently sent."""
    with pytest.raises(DataError):
        FAST().pack_command("SET", "k", True)
    with pytest.raises(DataError):
        FAST().pack_command("SET", "k", object())


def test_one_class_per_base() -> None:
    """The class is made once per base, keeps the base's behaviour, and is not stacked."""
    assert fast_packing(Connection) is FAST
    assert fast_packing(FAST) is FAST
    unix = fast_packing(UnixDomainSocketConnection)
    assert issubclass(unix, UnixDomainSocketConnection) and issubclass(unix, FastPackingMixin)


async def test_open_redis_packs_fast_against_a_real_server(redis_url: str, prefix: str) -> None:
    """Clients from open_redis use the fast packer, and values of every type round-trip."""
    client: Redis = await open_redis(redis_url)
    try:
        assert issubclass(client.connection_pool.connection_class, FastPackingMixin)
        key = f"{prefix}:resp"
        values: dict[str, Any] = {
            "text": "ünïcode ✓",
            "int": -12345678901234567890,
            "float": 0.1,
            "big": b"x" * 70_000,
            "raw": b"\r\n\x00",
        }
        async with client.pipeline(transaction=False) as pipe:
            for field, value in values.items():
                pipe.hset(key, field, value)
            pipe.hgetall(key)
            *_, got = await pipe.execute()
        assert got == {
            b"text": "ünïcode ✓".encode(),
            b"int": b"-12345678901234567890",
            b"float": b"0.1",
            b"big": b"x" * 70_000,
            b"raw": b"\r\n\x00",
        }
        await client.delete(key)
    finally:
        await client.aclose()
