"""A mergeable log-bucket (HDR-style) histogram of durations in microseconds."""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate, chain
from operator import sub
from typing import Any

__all__ = [
    "GAMMA",
    "MAX_INDEX",
    "LogHistogram",
    "bucket_index",
    "bucket_lower_us",
    "bucket_upper_us",
    "bucket_value_us",
]

#: Ratio between consecutive bucket edges. The geometric middle of a bucket is then within
#: sqrt(1.02) - 1 = 0.995 % of any value in it, which is the accuracy promise.
GAMMA = 1.02
_LOG_GAMMA = math.log(GAMMA)
_INV_LOG_GAMMA = 1.0 / _LOG_GAMMA
_SQRT_GAMMA = math.sqrt(GAMMA)
#: Bucket 0 holds [0, 1) µs; bucket i >= 1 holds [GAMMA**(i-1), GAMMA**i) µs. The last index
#: covers ~2**37 µs (~38 h); anything larger is clamped into it (``max_us`` stays exact).
MAX_INDEX = int(math.log(2.0**37) * _INV_LOG_GAMMA) + 1

_log = math.log


def bucket_index(value_us: float) -> int:
    """Return the bucket index holding ``value_us`` (negative values count as 0)."""
    if value_us < 1.0:
        return 0
    i = int(_log(value_us) * _INV_LOG_GAMMA) + 1
    return i if i < MAX_INDEX else MAX_INDEX


def bucket_lower_us(index: int) -> float:
    """Lower edge (inclusive) of bucket ``index`` in microseconds."""
    return 0.0 if index <= 0 else GAMMA ** (index - 1)


def bucket_upper_us(index: int) -> float:
    """Upper edge (exclusive) of bucket ``index`` in microseconds."""
    return 1.0 if index <= 0 else GAMMA**index


def bucket_value_us(index: int) -> float:
    """Representative value of bucket ``index``: its geometric middle (0.5 µs for bucket 0)."""
    return 0.5 if index <= 0 else GAMMA ** (index - 1) * _SQRT_GAMMA


class LogHistogram:
    """Counts of durations (µs) in log buckets; O(1) record, exact count/sum/min/max.

    Buckets live in a dict keyed by bucket index, so a histogram that saw a handful of
    values is a handful of entries: cheap to create once per second and compact to ship.
    """

    __slots__ = ("buckets", "count", "max_us", "min_us", "sum_us")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum_us = 0.0
        self.min_us = math.inf
        self.max_us = 0.0

    # -- recording -------------------------------------------------------------------------
    def record(self, value_us: float) -> None:
        """Record one duration in microseconds."""
        if value_us < 1.0:
            if value_us < 0.0:
                value_us = 0.0  # clocks from different hosts can disagree: clamp, don't fail
            i = 0
        else:
            i = int(_log(value_us) * _INV_LOG_GAMMA) + 1
            if i > MAX_INDEX:
                i = MAX_INDEX
        b = self.buckets
        b[i] = b.get(i, 0) + 1
        self.count += 1
        self.sum_us += value_us
        if value_us > self.max_us:
            self.max_us = value_us
        if value_us < self.min_us:
            self.min_us = value_us

    def record_indexed(self, index: int, value_us: float) -> None:
        """Record ``value_us`` whose bucket ``index`` the caller already computed.

        Lets a caller that files one value under several breakdowns pay for the log once.
        """
        b = self.buckets
        b[index] = b.get(index, 0) + 1
        self.count += 1
        self.sum_us += value_us
        if value_us > self.max_us:
            self.max_us = value_us
        if value_us < self.min_us:
            self.min_us = value_us

    record_us = record

    def merge(self, other: LogHistogram) -> LogHistogram:
        """Add ``other``'s counts into this histogram; return ``self`` for chaining."""
        if not other.count:
            return self
        b = self.buckets
        get = b.get
        for i, n in other.buckets.items():
            b[i] = get(i, 0) + n
        self.count += other.count
        self.sum_us += other.sum_us
        if other.max_us > self.max_us:
            self.max_us = other.max_us
        if other.min_us < self.min_us:
            self.min_us = other.min_us
        return self

    def subtract(self, other: LogHistogram) -> LogHistogram:
        """Remove ``other``'s counts (which must have been merged in); return ``self``.

        Sliding windows use it to drop the second leaving the window. ``min_us``/``max_us``
        cannot be un-merged: the caller owns fixing them up.
        """
        if not other.count:
            return self
        b = self.buckets
        for i, n in other.buckets.items():
            left = b.get(i, 0) - n
            if left > 0:
                b[i] = left
            else:
                b.pop(i, None)
        self.count -= other.count
        self.sum_us -= other.sum_us
        if self.count <= 0:
            self.reset()  # also sheds float drift in sum_us
        return self

    def reset(self) -> None:
        """Forget every value (keeps the object so per-second slots can be reused)."""
        self.buckets.clear()
        self.count = 0
        self.sum_us = 0.0
        self.min_us = math.inf
        self.max_us = 0.0

    def copy(self) -> LogHistogram:
        """Return an independent copy."""
        h = LogHistogram()
        h.buckets = self.buckets.copy()  # a C-level copy, not a merge loop over the buckets
        h.count, h.sum_us, h.min_us, h.max_us = self.count, self.sum_us, self.min_us, self.max_us
        return h

    # -- reading ---------------------------------------------------------------------------
    @property
    def mean_us(self) -> float:
        """Arithmetic mean in µs (0 when empty)."""
        return self.sum_us / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """Value (µs) at percentile ``q`` in [0, 100], nearest-rank, within 1 %.

        The bucket's geometric middle is clamped into [min, max] so that the extremes (and a
        histogram of one value) come back exact.
        """
        return self.percentiles((q,))[0]

    def percentiles(self, qs: tuple[float, ...] | list[float]) -> list[float]:
        """Several percentiles (µs) from one cumulative pass over the sorted buckets."""
        if not self.count:
            return [0.0] * len(qs)
        buckets = self.buckets
        order = sorted(buckets)
        # Running totals in C (accumulate) and a binary search per rank: a snapshot reads
        # ~125 histograms of a few hundred buckets each, on the worker's event loop.
        cumulative = list(accumulate(map(buckets.__getitem__, order)))
        lo, hi = self.min_us, self.max_us
        out: list[float] = []
        for q in qs:
            rank = max(1, math.ceil(min(max(q, 0.0), 100.0) / 100.0 * self.count))
            i = order[min(bisect_left(cumulative, rank), len(order) - 1)]
            if rank >= self.count or i == MAX_INDEX:
                out.append(hi)  # the top rank is the max, and the clamp bucket has no middle
            else:
                v = bucket_value_us(i)
                out.append(lo if v < lo else hi if v > hi else v)
        return out

    # -- wire form -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form: only non-empty buckets.

        ``b`` is a flat list ``[index, count, gap, count, ...]``: each index after the first
        is stored as the gap from the previous one (mostly 1), which keeps the JSON short.
        """
        order = sorted(self.buckets)
        flat = list(
            chain.from_iterable(
                zip(
                    map(sub, order, [0, *order[:-1]]),
                    map(self.buckets.__getitem__, order),
                    strict=True,
                )
            )
        )
        return {
            "n": self.count,
            "s": self.sum_us,
            "lo": self.min_us if self.count else 0.0,
            "hi": self.max_us,
            "b": flat,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        """Rebuild a histogram from :meth:`to_dict` output."""
        h = cls()
        flat = data.get("b", ())
        i = 0
        for j in range(0, len(flat), 2):
            i += int(flat[j])
            h.buckets[i] = int(flat[j + 1])
        h.count = int(data.get("n", 0))
        h.sum_us = float(data.get("s", 0.0))
        h.min_us = float(data.get("lo", 0.0)) if h.count else math.inf
        h.max_us = float(data.get("hi", 0.0))
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogHistogram):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        p50_us = self.percentile(50)
        return f"LogHistogram(count={self.count}, p50_us={p50_us:.1f}, max_us={self.max_us:.1f})"
