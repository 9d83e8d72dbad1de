"""`BenchJob`: one benchmark run on its own thread and event loop (no Textual here).

A benchmark measures the engine flat out; sharing a loop with the console's pool or its UI
would measure them too. The UI polls `latest`/`history` and awaits `future`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from pathlib import Path

import orjson

from engine.bench.params import BenchParams
from engine.bench.progress import BenchProgress
from engine.bench.report import BenchReport


class BenchJob:
    """Runs `engine.bench.runner.run_benchmark(url, params)`; `cancel()` stops it early."""

    def __init__(self, redis_url: str, params: BenchParams) -> None:
        self.redis_url = redis_url
        self.params = params
        self.future: Future[BenchReport] = Future()
        self.history: list[BenchProgress] = []
        self.latest: BenchProgress | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel: asyncio.Event | None = None
        self._cancel_requested = False
        self._thread = threading.Thread(target=self._main, name="spool-bench", daemon=True)

    def start(self) -> BenchJob:
        """Start the run in the background."""
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the run to stop at its next poll (it still reports what it measured)."""
        self._cancel_requested = True
        loop, event = self._loop, self._cancel
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancel_requested

    def _progress(self, p: BenchProgress) -> None:
        self.latest = p
        self.history.append(p)

    def _main(self) -> None:
        from engine.bench.runner import run_benchmark

        async def run() -> BenchReport:
            self._loop = asyncio.get_running_loop()
            self._cancel = asyncio.Event()
            if self._cancel_requested:
                self._cancel.set()
            return await run_benchmark(
                self.redis_url, self.params, progress=self._progress, cancel=self._cancel
            )

        try:
            self.future.set_result(asyncio.run(run()))
        except BaseException as exc:  # handed to the UI, which shows it
            self.future.set_exception(exc)


def load_reports(path: Path | None) -> dict[str, BenchReport]:
    """The last finished report of each benchmark type, as `save_reports` kept them."""
    if path is None or not path.exists():
        return {}
    try:
        data = orjson.loads(path.read_bytes())
        if "by_type" not in data:  # the older file: one report
            data = {"by_type": {data["type"]: data}}
        return {t: BenchReport.from_dict(d) for t, d in data["by_type"].items()}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def save_reports(path: Path | None, reports: dict[str, BenchReport]) -> None:
    """Keep the last report of each type so the next run of that type (even in a new session)
    compares against it."""
    if path is None:
        return
    data = {"by_type": {t: r.to_dict() for t, r in reports.items()}}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(data))
