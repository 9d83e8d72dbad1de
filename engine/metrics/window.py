"""Sliding time windows: rings of per-second histograms and per-second counters."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from .histogram import LogHistogram

__all__ = ["DEFAULT_HORIZON_S", "CounterRing", "HistogramWindow"]

#: How many one-second slots a ring keeps: enough for the longest window (300 s).
DEFAULT_HORIZON_S = 300
_NEVER = -(1 << 62)  # "no second yet" marker for ring slots


class HistogramWindow:
    """A ring of one-second :class:`LogHistogram` slots with running window sums.

    Seconds are integer seconds of the caller's (monotonic) clock; the caller passes them in,
    so the window never reads a clock and tests drive time by passing numbers.

    Reading is incremental: for each window length in ``windows_s`` a running histogram holds
    the *closed* seconds (older than the one being read at); advancing a second adds the
    newest closed slot and subtracts the one leaving, so a read costs a few merges instead of
    re-merging 300 slots. A running sum cannot un-merge an extreme, so each window also keeps
    the closed seconds' maxima and minima in monotonic queues (the largest and smallest in the
    window are at their fronts). Anything that would invalidate the running sums (a sample
    for an already-closed second, a slot reused before it was closed, time going backwards)
    marks the window dirty and the next read rebuilds from the slots.
    """

    __slots__ = (
        "_closed",
        "_dirty",
        "_highs",
        "_latest",
        "_lows",
        "_older",
        "_run",
        "_seconds",
        "_slots",
        "_step_cache",
        "_step_key",
        "_step_upto",
        "_upto",
        "horizon_s",
    )

    def __init__(
        self, horizon_s: int = DEFAULT_HORIZON_S, windows_s: Iterable[int] = (10, 60, 300)
    ):
        self.horizon_s = horizon_s
        self._slots: list[LogHistogram | None] = [None] * horizon_s
        self._seconds: list[int] = [_NEVER] * horizon_s
        self._older = LogHistogram()  # evicted slots: only read by a rebuild
        self._run = {w: LogHistogram() for w in sorted(set(windows_s)) if 0 < w <= horizon_s}
        self._closed = LogHistogram()  # every second <= _upto, since start
        # Per running window: (second, max) with falling maxima, (second, min) with rising
        # minima, over closed seconds; entries older than the window leave at the front.
        self._highs: dict[int, deque[tuple[int, float]]] = {w: deque() for w in self._run}
        self._lows: dict[int, deque[tuple[int, float]]] = {w: deque() for w in self._run}
        self._latest = _NEVER  # the newest second any slot holds
        self._upto: int | None = None
        self._dirty = True
        # steps(): merged histograms of steps whose seconds are all closed, by shifted start.
        self._step_cache: dict[int, LogHistogram] = {}
        self._step_key: tuple[int, int] | None = None
        self._step_upto = _NEVER

    def slot(self, second: int) -> LogHistogram:
        """The histogram collecting values for ``second`` (rolling the ring as needed).

        A second already pushed out of the ring gets the "older" histogram, so late samples
        still count since start even though no window shows them.
        """
        if second <= self._step_upto and self._step_cache:
            self._step_cache.clear()  # a late sample for a step steps() already merged
        i = second % self.horizon_s
        held = self._seconds[i]
        h = self._slots[i]
        if held == second and h is not None:
            if self._upto is not None and second <= self._upto:
                self._dirty = True  # a late sample for a second the running sums closed
            return h
        if held > second:
            self._dirty = True
            return self._older  # a straggler older than the ring
        if second > self._latest:
            self._latest = second
        if h is None:
            h = self._slots[i] = LogHistogram()
        elif h.count:
            if self._upto is not None and not self._dirty and self._upto < second - 1:
                # Close the seconds before this one first, so the running sums let go of the
                # slot about to be reused the ordinary way. Without this, once the horizon had
                # filled every new second forced the next read to rebuild from all 300 slots:
                # 22 % of a worker's CPU at 5,000 tasks/s (py-spy on the soak's worker).
                self._advance(second - 1)
            if self._upto is None or held >= self._upto - self.horizon_s + 2:
                self._dirty = True  # still inside a running window (or never closed)
            self._older.merge(h)
            h.reset()
        self._seconds[i] = second
        if self._upto is not None and second <= self._upto:
            self._dirty = True
        return h

    def record(self, value_us: float, second: int) -> None:
        """Record ``value_us`` (µs) as seen during ``second``."""
        self.slot(second).record(value_us)

    def _held(self, second: int) -> LogHistogram | None:
        i = second % self.horizon_s
        h = self._slots[i]
        return h if h is not None and h.count and self._seconds[i] == second else None

    def _rebuild(self, upto: int) -> None:
        self._closed = self._older.copy()
        for w in self._run:
            self._run[w] = LogHistogram()
            self._highs[w].clear()
            self._lows[w].clear()
        held = sorted(
            (sec, h)
            for sec, h in zip(self._seconds, self._slots, strict=True)
            if h is not None and h.count and sec <= upto
        )
        for sec, h in held:
            self._closed.merge(h)
            for w, run in self._run.items():
                if sec > upto - w + 1:
                    run.merge(h)
            self._push_extremes(sec, h)
        self._upto = upto
        self._dirty = False

    def _push_extremes(self, sec: int, h: LogHistogram) -> None:
        """Note a newly closed second's max and min in every window's queues."""
        high, low = h.max_us, h.min_us
        for q in self._highs.values():
            while q and q[-1][1] <= high:
                q.pop()
            q.append((sec, high))
        for q in self._lows.values():
            while q and q[-1][1] >= low:
                q.pop()
            q.append((sec, low))

    def _advance(self, upto: int) -> None:
        """Close every second up to ``upto`` into the running sums."""
        if (
            self._dirty
            or self._upto is None
            or upto < self._upto
            or upto - self._upto > self.horizon_s
        ):
            self._rebuild(upto)
            return
        held = self._held
        for sec in range(self._upto + 1, upto + 1):
            h = held(sec)
            if h is not None:
                self._closed.merge(h)
                self._push_extremes(sec, h)
            for w, run in self._run.items():
                if h is not None:
                    run.merge(h)
                # Each running sum holds w - 1 closed seconds; the open second makes w.
                gone = held(sec - w + 1)
                if gone is not None:
                    run.subtract(gone)
        self._upto = upto

    def windows(self, now_s: int, windows_s: Iterable[int]) -> dict[int, LogHistogram]:
        """Merged histograms for each window length ending at ``now_s``; 0 means since start.

        Returns fresh histograms the caller may keep or modify.
        """
        wanted = set(windows_s)
        self._advance(now_s - 1)
        # Seconds not yet closed: normally just now_s.
        if self._latest - now_s < self.horizon_s:
            opened = (self._held(sec) for sec in range(now_s, self._latest + 1))
        else:  # "now" far behind what was recorded (a test's clock): look at every slot
            opened = (h for sec, h in zip(self._seconds, self._slots, strict=True) if sec >= now_s)
        open_slots = [h for h in opened if h is not None and h.count]
        out: dict[int, LogHistogram] = {}
        for w in wanted:
            run = self._closed if w == 0 else self._run.get(w)
            if run is None:  # not a running window: merge its slots directly
                acc = LogHistogram()
                for sec, h in zip(self._seconds, self._slots, strict=True):
                    if h is not None and h.count and now_s - w < sec < now_s:
                        acc.merge(h)
            else:
                acc = run.copy()
            for h in open_slots:
                acc.merge(h)
            if w in self._highs and acc.count:
                acc.max_us, acc.min_us = self._extremes(w, now_s, open_slots)
            out[w] = acc
        return out

    def _extremes(self, w: int, now_s: int, open_slots: list[LogHistogram]) -> tuple[float, float]:
        """(max, min) over window ``w`` ending at ``now_s``: its closed seconds' queues, whose
        fronts are the extremes once seconds that left the window are dropped, and the open
        slots."""
        high, low = self._highs[w], self._lows[w]
        edge = now_s - w
        while high and high[0][0] <= edge:
            high.popleft()
        while low and low[0][0] <= edge:
            low.popleft()
        top = high[0][1] if high else 0.0
        bottom = low[0][1] if low else math.inf
        for h in open_slots:
            top = max(top, h.max_us)
            bottom = min(bottom, h.min_us)
        return top, bottom

    def merged(self, window_s: int, now_s: int) -> LogHistogram:
        """One merged histogram for the last ``window_s`` seconds (0 = since start)."""
        return self.windows(now_s, (window_s,))[window_s]

    def steps(
        self, now_s: int, span_s: int, step_s: int, offset_s: int = 0
    ) -> list[tuple[int, LogHistogram]]:
        """Histograms per ``step_s``-second step over the last ``span_s`` seconds.

        ``offset_s`` shifts slot seconds onto another timeline (monotonic -> wall clock) before
        steps are aligned to multiples of ``step_s``, so series from different processes line
        up. Each pair is (first second of the step, merged histogram); empty steps omitted.
        The histograms are shared with a cache: read them, do not modify them.

        A step whose seconds are all closed (older than ``now_s``) and inside the span is
        merged once and cached; a read then merges only the open step and the one at the
        span's edge. Merging every slot on each read cost 334 histogram merges per snapshot
        once the 300 s horizon had filled, and the snapshot runs on the worker's event loop
        every second; with the cache it is ~44.
        """
        if self._step_key != (step_s, offset_s):
            self._step_cache = {}
            self._step_key = (step_s, offset_s)
        cache = self._step_cache
        edge = now_s - span_s
        closed_upto = now_s - 1

        def complete(start: int) -> bool:
            first = start - offset_s  # the step's first second on the slot timeline
            return first > edge and first + step_s - 1 <= closed_upto

        for start in [s for s in cache if not complete(s)]:
            del cache[start]  # reached the span's edge (or "now" went backwards)
        fresh: dict[int, LogHistogram] = {}
        for sec, h in zip(self._seconds, self._slots, strict=True):
            if h is None or not h.count or sec <= edge:
                continue
            shifted = sec + offset_s
            start = shifted - shifted % step_s
            if start in cache:
                continue
            acc = fresh.get(start)
            if acc is None:
                acc = fresh[start] = LogHistogram()
            acc.merge(h)
        for start, acc in fresh.items():
            if complete(start):
                cache[start] = acc
        self._step_upto = closed_upto
        return sorted({**cache, **fresh}.items())


class _Ring:
    """One counter's ring: value and owning second per slot."""

    __slots__ = ("seconds", "values")

    def __init__(self, horizon_s: int) -> None:
        self.values = [0] * horizon_s
        self.seconds = [_NEVER] * horizon_s


class CounterRing:
    """Per-second counts for named counters over the last ``horizon_s`` seconds, plus totals."""

    __slots__ = ("_rings", "horizon_s", "totals")

    def __init__(self, horizon_s: int = DEFAULT_HORIZON_S) -> None:
        self.horizon_s = horizon_s
        self._rings: dict[str, _Ring] = {}
        self.totals: dict[str, int] = {}

    def add(self, name: str, n: int, second: int) -> None:
        """Add ``n`` to counter ``name`` during ``second``."""
        ring = self._rings.get(name)
        if ring is None:
            ring = self._rings[name] = _Ring(self.horizon_s)
        self.totals[name] = self.totals.get(name, 0) + n
        i = second % self.horizon_s
        held = ring.seconds[i]
        if held == second:
            ring.values[i] += n
        elif held < second:
            ring.seconds[i] = second
            ring.values[i] = n
        # else: older than the ring; it is in the total but in no per-second point.

    def names(self) -> list[str]:
        """Counter names seen so far."""
        return list(self.totals)

    def series(self, name: str, now_s: int, span_s: int | None = None) -> list[tuple[int, int]]:
        """(second, count) per second of the last ``span_s`` ending at ``now_s``, zeros kept."""
        span = self.horizon_s if span_s is None else min(span_s, self.horizon_s)
        ring = self._rings.get(name)
        out: list[tuple[int, int]] = []
        for sec in range(now_s - span + 1, now_s + 1):
            v = 0
            if ring is not None:
                i = sec % self.horizon_s
                if ring.seconds[i] == sec:
                    v = ring.values[i]
            out.append((sec, v))
        return out

    def window_total(self, name: str, now_s: int, window_s: int) -> int:
        """Sum of ``name`` over the last ``window_s`` seconds."""
        return sum(v for _, v in self.series(name, now_s, window_s))
