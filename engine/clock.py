"""The server's clock, read locally: one time base for stamps made here and in Lua scripts.

Scripts stamp enqueue and fetch times from the server's `TIME`; a worker stamps when a handler
started and finished. Subtracting one from the other mixes two clocks, so a worker whose clock
is 120 s off reported an end-to-end p50 of 120,600 ms. `ServerClock` measures the offset to the
server (half the round trip either side of a `TIME` call) and adds it to every local stamp.

A round trip measured in a busy process is long: the reply waits for the event loop, and the
midpoint lands late by up to half of it. The console's pool, syncing while its screens were
built, took an offset some tens of ms off and stamped a tenth of its first 300,000 tasks as
finished before they were enqueued (end-to-end 0 in the 5,000/s console soak). So an estimate
carries its error bound (half its round trip, plus what the clocks may have drifted since), and
a new measurement replaces the held one only when its bound is smaller, or when the two
disagree by more than both bounds (the local clock was stepped).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

#: How fast two hosts' clocks may drift apart (quartz is within ~50 ppm).
DRIFT_PER_S = 50e-6
#: `sync()` keeps sampling, up to `MAX_SAMPLES`, while its best round trip is longer than this.
GOOD_RTT_S = 0.001
MAX_SAMPLES = 10


class ServerClock:
    """`now()` is the server's time in epoch seconds, from the local wall clock plus an offset.

    `sync()` measures the offset; call it at start and every so often (clocks drift, and NTP
    may step the local one). Until the first sync the offset is 0 (the local clock).
    """

    def __init__(
        self,
        redis: Redis,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self._wall = wall
        self._monotonic = monotonic
        self.offset_s = 0.0
        self.rtt_s: float | None = None
        self._measured_at = 0.0

    def now(self) -> float:
        """The server's time now, in epoch seconds."""
        return self._wall() + self.offset_s

    def error_bound_s(self) -> float:
        """How far the held offset may be off now (infinite before the first sync)."""
        if self.rtt_s is None:
            return float("inf")
        return self.rtt_s / 2 + (self._monotonic() - self._measured_at) * DRIFT_PER_S

    async def sync(self, samples: int = 3) -> float:
        """Measure the offset and keep the better-bounded estimate; return the held offset.

        Takes `samples` readings (more, up to `MAX_SAMPLES`, while every round trip was
        slow); the one with the shortest round trip is the measurement.
        """
        best: tuple[float, float] | None = None
        taken = 0
        while taken < samples or (
            taken < MAX_SAMPLES and best is not None and best[0] > GOOD_RTT_S
        ):
            before = self._wall()
            secs, micros = await self.redis.time()
            after = self._wall()
            taken += 1
            rtt = max(0.0, after - before)
            offset = (int(secs) + int(micros) / 1e6) - (before + rtt / 2)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        rtt, offset = best
        held = self.error_bound_s()
        stepped = abs(offset - self.offset_s) > rtt / 2 + held
        if rtt / 2 <= held or stepped:
            self.rtt_s, self.offset_s = rtt, offset
            self._measured_at = self._monotonic()
        return self.offset_s
