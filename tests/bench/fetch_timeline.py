"""A `spool-console` worker that timestamps each task along the fetch path (a bench harness).

Run as the worker of `bench_trickle.py --timeline` (or by hand, with the CLI's arguments):

    SPOOL_TIMELINE_OUT=out.json python tests/bench/fetch_timeline.py --no-ui --queue trickle ...

For each `spool.stamp` task it keeps, on one clock (the server's `TIME` and this process's
`time.time()` are the same machine's clock when the server is local): the producer's stamp
before its enqueue call, the enqueue script's server stamp, the fetch script's server stamp,
the moment the pipelined wait returned here with the task decoded, the moment the fetcher
handed it to the local queue, and the moment a slot started it. On exit it writes the
percentiles of each segment (ms) and how many tasks arrived while the fetcher was not parked.
The wrappers only observe; the worker is otherwise the CLI's own.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.broker.fetch import FetchCalls
from engine.task import FetchedTask
from engine.worker.fetcher import Fetcher
from engine.worker.handler import HandlerRunner
from spool_console.cli import main

#: task id -> stamps (epoch seconds)
rows: dict[str, dict[str, float]] = {}
SEGMENTS = (
    ("enqueue call -> enqueue script", "sent", "enqueued"),
    ("enqueue script -> fetch script", "enqueued", "fetched"),
    ("fetch script -> reply decoded", "fetched", "reply"),
    ("reply -> local queue", "reply", "accepted"),
    ("local queue -> handler start", "accepted", "started"),
    ("enqueue call -> handler start", "sent", "started"),
)


def _install() -> None:
    wait_pipeline = FetchCalls._wait_pipeline  # type: ignore[attr-defined]
    accept = Fetcher._accept
    run = HandlerRunner.run

    async def timed_wait(self: FetchCalls, *args: Any, **kwargs: Any) -> Any:
        sent = time.time()
        out = await wait_pipeline(self, *args, **kwargs)
        now = time.time()
        for t in out[1].tasks:
            rows[t.id] = {
                "wait_sent": sent,
                "enqueued": t.enqueued_at_ms / 1000,
                "fetched": t.fetched_at_ms / 1000,
                "reply": now,
            }
        return out

    def timed_accept(self: Fetcher, tasks: list[FetchedTask]) -> int:
        now = time.time()
        for t in tasks:
            if t.id in rows:
                rows[t.id]["accepted"] = now
        return accept(self, tasks)

    async def timed_run(self: HandlerRunner, t: FetchedTask, index: int) -> Any:
        row = rows.get(t.id)
        if row is not None and t.name == "spool.stamp":
            row["started"] = time.time()
            row["sent"] = float(t.args[0])
        return await run(self, t, index)

    FetchCalls._wait_pipeline = timed_wait  # type: ignore[attr-defined]
    Fetcher._accept = timed_accept  # type: ignore[method-assign]
    HandlerRunner.run = timed_run  # type: ignore[method-assign]


def _percentiles(values: list[float]) -> dict[str, float]:
    values.sort()
    return {
        f"p{q}": round(values[min(len(values) - 1, int(q / 100 * len(values)))] * 1000, 3)
        for q in (50, 90, 99)
    }


def summary() -> dict[str, Any]:
    """Segment percentiles (ms) over the tasks that went through the whole path."""
    full = [r for r in rows.values() if {"sent", "accepted"} <= r.keys()]
    out: dict[str, Any] = {"tasks": len(full)}
    for name, start, end in SEGMENTS:
        out[name] = _percentiles([r[end] - r[start] for r in full])
    # A task enqueued before the fetcher sent its wait found it busy (not parked).
    out["arrived while not parked"] = sum(1 for r in full if r["wait_sent"] > r["enqueued"])
    return out


def _write() -> None:
    target = os.environ.get("SPOOL_TIMELINE_OUT")
    if target:
        Path(target).write_text(json.dumps(summary()))


if __name__ == "__main__":
    _install()
    atexit.register(_write)
    sys.exit(main(sys.argv[1:]))
