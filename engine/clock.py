"""The server's clock, read locally: one time base for stamps made here and in Lua scripts.

Scripts stamp enqueue and fetch times from the server's `TIME`; a worker stamps when a handler
started and finished. Subtracting one from the other mixes two clocks, so a worker whose clock
is 120 s off reported an end-to-end p50 of 120,600 ms. `ServerClock` measures the offset to the
server (half the round trip either side of a `TIME` call) and adds it to every local stamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis


class ServerClock:
    """`now()` is the server's time in epoch seconds, from the local wall clock plus an offset.

    `sync()` measures the offset; call it at start and every so often (clocks drift, and NTP
    may step the local one). Until the first sync the offset is 0 (the local clock).
    """

    def __init__(self, redis: Redis, wall: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self._wall = wall
        self.offset_s = 0.0
        self.rtt_s: float | None = None

    def now(self) -> float:
        """The server's time now, in epoch seconds."""
        return self._wall() + self.offset_s

    async def sync(self, samples: int = 3) -> float:
        """Measure the offset (the sample with the shortest round trip wins); return it."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            before = self._wall()
            secs, micros = await self.redis.time()
            after = self._wall()
            rtt = after - before
            offset = (int(secs) + int(micros) / 1e6) - (before + rtt / 2)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        self.rtt_s, self.offset_s = best
        return self.offset_s
