"""Wait for a condition by polling it with a deadline: the tests' only way to synchronise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(fn: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    """Call `fn` (sync or async) until it returns something truthy, and return that.

    Fails the test with the last value seen when `timeout_s` passes first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what} (last: {value!r})")
        await asyncio.sleep(0.005)
