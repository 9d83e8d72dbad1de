"""Shares between a worker's queues: `--queue images:3 --queue mail:1`."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_WEIGHTED = re.compile(r"(.+):(\d+)")


def split_weights(specs: Sequence[str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """`("images:3", "mail")` -> `(("images", "mail"), (3, 1))`.

    A trailing `:N` (digits) is a weight; queue names may hold other colons. Raises
    `ValueError` for a weight of 0 or a queue named twice.
    """
    names: list[str] = []
    weights: list[int] = []
    for spec in specs:
        m = _WEIGHTED.fullmatch(spec)
        name, weight = (m.group(1), int(m.group(2))) if m else (spec, 1)
        if weight < 1:
            raise ValueError(f"queue weight must be >= 1, got {spec!r}")
        if name in names:
            raise ValueError(f"queue {name!r} given twice")
        names.append(name)
        weights.append(weight)
    return tuple(names), tuple(weights)


class WeightedSplit:
    """Splits each fetch's room between queues in proportion to their weights.

    Each queue's exact share (room × weight / total) is carried over in fractions between
    fetches, so even one free slot at a time follows the weights over a few fetches
    (3:1 → a, a, b, a, …), and a queue that had nothing builds up no debt beyond one task.
    """

    def __init__(self, weights: Sequence[int]) -> None:
        self.weights = tuple(weights)
        self._total = sum(self.weights)
        self._carry = [0.0] * len(self.weights)

    def split(self, room: int) -> list[int]:
        """How many tasks to ask each queue for, summing to `room`."""
        exact = [room * w / self._total + c for w, c in zip(self.weights, self._carry, strict=True)]
        counts = [max(0, math.floor(e)) for e in exact]
        left = room - sum(counts)
        for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True):
            if left <= 0:
                break
            counts[i] += 1
            left -= 1
        self._carry = [e - n for e, n in zip(exact, counts, strict=True)]
        return counts
