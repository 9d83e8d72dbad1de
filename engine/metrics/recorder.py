"""MetricsRecorder: the never-blocking sink that workers, clients and ingress report into.

The hot path (``record_task``) only appends one tuple to a bounded list; histograms are
updated when the list is folded, which happens on ``snapshot()``/``flush()`` (the publisher
takes a snapshot every second). A full list means the process is producing samples faster
than anyone reads them: the sample is dropped and counted rather than slowing the worker.
Call the recorder from one thread (the event loop); it takes no locks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator

from .histogram import GAMMA, MAX_INDEX, LogHistogram, bucket_index
from .snapshot import (
    BreakdownStats,
    CounterStats,
    LatencyPoint,
    MetricsSnapshot,
    QueueDepth,
    StageStats,
    summarize,
)
from .window import DEFAULT_HORIZON_S, CounterRing, HistogramWindow

__all__ = [
    "ALL_STAGES",
    "BREAKDOWN_STAGES",
    "BREAKDOWN_WINDOWS_S",
    "EVENTS",
    "INGRESS",
    "STAGES",
    "WINDOWS_S",
    "MetricsRecorder",
]

STAGES = ("enqueue", "queue_wait", "fetch", "execution", "result_write", "end_to_end")
#: HTTP receive -> task stored.
INGRESS = "ingress"
ALL_STAGES = (*STAGES, INGRESS)
EVENTS = ("enqueued", "started", "succeeded", "failed", "retried", "dead", "late_rejected")
#: Windows every snapshot summarises per stage; 0 means since start.
WINDOWS_S = (10, 60, 300, 0)
#: Windows of the per queue/level/task breakdowns: fewer, because breakdowns are most of a
#: snapshot's bytes (each carries its raw histogram so the fleet view can merge exactly).
BREAKDOWN_WINDOWS_S = (60, 0)
#: Stages ``record_task`` also files per queue, level and task name (the rest: overall only,
#: which keeps the fold at ~12 histogram updates per task instead of ~24).
BREAKDOWN_STAGES = ("end_to_end", "queue_wait")
DIMENSIONS = ("queue", "level", "task")
#: Step of the end-to-end latency time series, in seconds.
LATENCY_STEP_S = 5
#: Distinct keys kept per dimension (and queues in the per-queue counters and depths); the
#: rest are filed under OTHER_KEY (depths: dropped) so a producer that invents queue or task
#: names cannot grow memory without bound.
MAX_KEYS_PER_DIMENSION = 200
OTHER_KEY = "_other"

_ALL = ("all", "")
_log = math.log
_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)


def _merge_tally(h: LogHistogram, acc: list) -> None:
    """Add a tally ``[buckets, count, sum_us, min_us, max_us]`` into histogram ``h``."""
    if not acc[1]:
        return
    b = h.buckets
    for i, n in acc[0].items():
        b[i] = b.get(i, 0) + n
    h.count += acc[1]
    h.sum_us += acc[2]
    if acc[3] < h.min_us:
        h.min_us = acc[3]
    if acc[4] > h.max_us:
        h.max_us = acc[4]


# record_task's targets per (second, queue, level, task): the overall slot of each stage it
# derives, then the per-dimension slots of BREAKDOWN_STAGES in this order.
_TASK_STAGES = ("queue_wait", "fetch", "execution", "result_write", "end_to_end")


class MetricsRecorder:
    """Collects stage durations, event counters and queue depths for one process."""

    def __init__(
        self,
        worker_id: str = "local",
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        horizon_s: int = DEFAULT_HORIZON_S,
        max_buffer: int = 100_000,
        max_keys_per_dimension: int = MAX_KEYS_PER_DIMENSION,
        sample_budget_per_s: int = 5000,
    ) -> None:
        """``clock`` drives the windows (monotonic seconds); ``wall_clock`` stamps snapshots."""
        self.worker_id = worker_id
        self._clock = clock
        self._wall_clock = wall_clock
        self._horizon_s = horizon_s
        self._max_buffer = max_buffer
        self._max_keys = max_keys_per_dimension
        self._sample_budget = max(1, sample_budget_per_s)
        self._rate_sec = -1
        self._rate_count = 0
        self._last_rate = 0
        self._started_mono = clock()
        self._task_buf: list[tuple] = []
        self._stage_buf: list[tuple] = []
        self._dropped = 0
        self._series: dict[tuple[str, str, str], HistogramWindow] = {}
        self._keys: dict[str, set[str]] = {d: set() for d in DIMENSIONS}
        self._counters = CounterRing(horizon_s)
        self._per_queue: dict[tuple[str, str], int] = {}
        self._depths: dict[tuple[str, str], tuple[int, float]] = {}

    # -- hot path: append only ------------------------------------------------------------------
    def record_task(
        self,
        queue: str,
        level: str,
        task: str,
        enqueued_at_s: float,
        fetched_at_s: float,
        started_at_s: float,
        finished_at_s: float,
        written_at_s: float,
        received_at_s: float | None = None,
        ok: bool = True,
        ready_at_s: float | None = None,
    ) -> None:
        """Record a finished task's stages from its timestamps (wall-clock seconds).

        ``ready_at_s`` is when a delayed or retried task became runnable: its queue wait
        starts there rather than at the first enqueue (end to end still starts at enqueue).
        Derives queue_wait (fetched - ready, else enqueued), fetch (started - fetched), execution
        (finished - started), result_write (written - finished), end_to_end (written -
        enqueued) and, when ``received_at_s`` is given, ingress (enqueued - received).
        Also counts the outcome: ``succeeded`` when ``ok`` else ``failed`` -- callers must
        not count those two events again with :meth:`count`.
        """
        buf = self._task_buf
        if len(buf) < self._max_buffer:
            buf.append(
                (
                    self._clock(),
                    queue,
                    level,
                    task,
                    enqueued_at_s,
                    fetched_at_s,
                    started_at_s,
                    finished_at_s,
                    written_at_s,
                    received_at_s,
                    ok,
                    enqueued_at_s if ready_at_s is None else ready_at_s,
                )
            )
        else:
            self._dropped += 1

    def record_stage(
        self,
        stage: str,
        duration_s: float,
        *,
        queue: str = "default",
        level: str = "default",
        task: str = "",
    ) -> None:
        """Record one stage duration (seconds), overall and per queue, level and task."""
        buf = self._stage_buf
        if len(buf) < self._max_buffer:
            buf.append((self._clock(), stage, duration_s, queue, level, task))
        else:
            self._dropped += 1

    def count(self, event: str, n: int = 1, *, queue: str = "default") -> None:
        """Add ``n`` to counter ``event`` (see ``EVENTS``) for ``queue``."""
        self._counters.add(event, n, int(self._clock()))
        key = (event, self._key("queue", queue))
        self._per_queue[key] = self._per_queue.get(key, 0) + n

    def set_depth(self, queue: str, level: str, depth: int) -> None:
        """Remember the latest sampled depth of one queue level."""
        if (queue, level) in self._depths or len(self._depths) < self._max_keys:
            self._depths[(queue, level)] = (depth, self._wall_clock())

    @property
    def dropped_samples(self) -> int:
        """Samples dropped because the buffer was full."""
        return self._dropped

    # -- folding ---------------------------------------------------------------------------------
    def _key(self, dimension: str, key: str) -> str:
        seen = self._keys[dimension]
        if key in seen:
            return key
        if len(seen) >= self._max_keys:
            return OTHER_KEY
        seen.add(key)
        return key

    def _window(self, stage: str, dimension: str, key: str) -> HistogramWindow:
        k = (stage, dimension, key)
        w = self._series.get(k)
        if w is None:
            w = self._series[k] = HistogramWindow(self._horizon_s)
        return w

    def _task_targets(self, sec: int, queue: str, level: str, task: str) -> list[LogHistogram]:
        out = [self._window(s, *_ALL).slot(sec) for s in _TASK_STAGES]
        dims = (("queue", queue), ("level", level), ("task", task))
        for stage in BREAKDOWN_STAGES:
            for dim, key in dims:
                out.append(self._window(stage, dim, self._key(dim, key)).slot(sec))
        return out

    def flush(self) -> None:
        """Fold buffered samples into the histograms (``snapshot`` does this itself)."""
        if self._stage_buf:
            self._fold_stages()
        if self._task_buf:
            self._fold_tasks()

    def _fold_stages(self) -> None:
        buf, self._stage_buf = self._stage_buf, []
        for t, stage, duration_s, queue, level, task in buf:
            sec = int(t)
            v = duration_s * 1e6
            i = bucket_index(v)
            self._window(stage, *_ALL).slot(sec).record_indexed(i, v if v > 0.0 else 0.0)
            for dim, key in (("queue", queue), ("level", level), ("task", task)):
                if dim == "task" and not key:
                    continue
                w = self._window(stage, dim, self._key(dim, key))
                w.slot(sec).record_indexed(i, v if v > 0.0 else 0.0)

    def _fold_tasks(self) -> None:
        # Values are first tallied per (second, queue, level, task) group and stage in plain
        # dicts, then merged once into each target histogram: one bucket update per task and
        # stage instead of one per target histogram (each value lands in up to 4 of them).
        buf, self._task_buf = self._task_buf, []
        outcomes: dict[tuple[str, str, int], int] = {}
        for item in buf:  # counters stay exact whatever the sampling below
            ok_key = ("succeeded" if item[10] else "failed", item[1], int(item[0]))
            outcomes[ok_key] = outcomes.get(ok_key, 0) + 1
        for (event, queue, sec), n in outcomes.items():
            self._counters.add(event, n, sec)
            key = (event, self._key("queue", queue))
            self._per_queue[key] = self._per_queue.get(key, 0) + n
        # Above `sample_budget_per_s` tasks a second, histograms take every k-th task with
        # weight k: percentiles stay accurate (thousands of samples a second) while the fold
        # stops growing with throughput. Counts and counters are not sampled.
        now_sec = int(self._clock())
        if now_sec != self._rate_sec:
            self._last_rate = self._rate_count if now_sec == self._rate_sec + 1 else 0
            self._rate_sec, self._rate_count = now_sec, 0
        self._rate_count += len(buf)
        stride = max(1, self._last_rate // self._sample_budget)
        log = _log
        inv = _INV_LOG_GAMMA
        top = MAX_INDEX
        groups: dict[tuple[int, str, str, str], list[list]] = {}
        ingress: dict[int, list] = {}
        n_buf = len(buf)
        for j in range(0, n_buf, stride):
            t, queue, level, task, ea, fa, sa, fi, wr, ra, _ok, rdy = buf[j]
            w = stride if j + stride <= n_buf else n_buf - j
            sec = int(t)
            gk = (sec, queue, level, task)
            accs = groups.get(gk)
            if accs is None:
                accs = groups[gk] = [[{}, 0, 0.0, math.inf, 0.0] for _ in range(5)]
            for acc, v in zip(
                accs,
                (
                    (fa - rdy) * 1e6,
                    (sa - fa) * 1e6,
                    (fi - sa) * 1e6,
                    (wr - fi) * 1e6,
                    (wr - ea) * 1e6,
                ),
                strict=True,
            ):
                if v < 1.0:
                    if v < 0.0:
                        v = 0.0  # clocks of different hosts can disagree: clamp, don't fail
                    i = 0
                else:
                    i = int(log(v) * inv) + 1
                    if i > top:
                        i = top
                b = acc[0]
                b[i] = b.get(i, 0) + w
                acc[1] += w
                acc[2] += v * w
                if v < acc[3]:
                    acc[3] = v
                if v > acc[4]:
                    acc[4] = v
            if ra is not None:
                ing = ingress.get(sec)
                if ing is None:
                    ing = ingress[sec] = []
                ing.append(((ea - ra) * 1e6, w))
        for (sec, queue, level, task), accs in groups.items():
            targets = self._task_targets(sec, queue, level, task)
            qw_h, fe_h, ex_h, rw_h, e2e_h, e2q, e2l, e2t, qwq, qwl, qwt = targets
            for acc, hists in (
                (accs[0], (qw_h, qwq, qwl, qwt)),
                (accs[1], (fe_h,)),
                (accs[2], (ex_h,)),
                (accs[3], (rw_h,)),
                (accs[4], (e2e_h, e2q, e2l, e2t)),
            ):
                for h in hists:
                    _merge_tally(h, acc)
        for sec, values in ingress.items():
            h = self._window(INGRESS, *_ALL).slot(sec)
            for v, w in values:
                for _ in range(w):
                    h.record(v)

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self, now_s: float | None = None) -> MetricsSnapshot:
        """Fold buffered samples and summarise everything; ``now_s`` is on the injected clock."""
        for step in self._snapshot_steps(now_s):
            if step is not None:
                return step
        raise AssertionError("_snapshot_steps ends with the snapshot")

    async def snapshot_async(self) -> MetricsSnapshot:
        """`snapshot`, letting the event loop run between its series. The publisher takes one
        every second on a worker's loop, where one piece held the loop 2-15 ms at 500
        tasks/s (the tasks arriving meanwhile waited that much longer: their p99)."""
        for step in self._snapshot_steps(None):
            if step is not None:
                return step
            await asyncio.sleep(0)
        raise AssertionError("_snapshot_steps ends with the snapshot")

    def _snapshot_steps(self, now_s: float | None) -> Iterator[MetricsSnapshot | None]:
        """The snapshot in steps: None after each series and counter it summarises (a place
        to pause), then the snapshot itself."""
        self.flush()
        mono = self._clock()
        if now_s is None:
            now_s = mono
        wall = self._wall_clock()
        # Whole-second shift from the monotonic timeline onto wall-clock seconds, so snapshots
        # from different processes line up per second when merged.
        offset_s = math.floor(wall - mono)
        now_sec = int(now_s)

        stages: list[StageStats] = []
        breakdowns: list[BreakdownStats] = []
        for (stage, dim, key), window in sorted(self._series.items()):
            wins = WINDOWS_S if dim == "all" else BREAKDOWN_WINDOWS_S
            for w, h in sorted(window.windows(now_sec, wins).items()):
                if dim == "all":
                    stages.append(StageStats(stage, w, summarize(h), h.to_dict()))
                else:
                    breakdowns.append(BreakdownStats(dim, key, stage, w, summarize(h), h.to_dict()))
            yield

        latency: list[LatencyPoint] = []
        e2e = self._series.get(("end_to_end", *_ALL))
        if e2e is not None:
            for start, h in e2e.steps(now_sec, self._horizon_s, LATENCY_STEP_S, offset_s):
                latency.append(LatencyPoint(start, LATENCY_STEP_S, summarize(h), h.to_dict()))
            yield

        counters: list[CounterStats] = []
        names = list(EVENTS) + [n for n in self._counters.names() if n not in EVENTS]
        for event in names:
            per_queue = tuple(sorted((q, n) for (e, q), n in self._per_queue.items() if e == event))
            series = tuple(
                (sec + offset_s, n)
                for sec, n in self._counters.series(event, now_sec, self._horizon_s)
            )
            counters.append(
                CounterStats(event, self._counters.totals.get(event, 0), per_queue, series)
            )
            yield

        depths = tuple(
            QueueDepth(q, lv, d, at) for (q, lv), (d, at) in sorted(self._depths.items())
        )
        yield MetricsSnapshot(
            worker_id=self.worker_id,
            taken_at_s=now_s + (wall - mono),
            uptime_s=max(0.0, now_s - self._started_mono),
            stages=tuple(stages),
            breakdowns=tuple(breakdowns),
            counters=tuple(counters),
            latency_series=tuple(latency),
            depths=depths,
            dropped_samples=self._dropped,
        )
