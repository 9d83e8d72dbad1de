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


def load_report(path: Path | None) -> BenchReport | None:
    """The report saved by `save_report`, or None."""
    if path is None or not path.exists():
        return None
    try:
        return BenchReport.from_dict(orjson.loads(path.read_bytes()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save_report(path: Path | None, report: BenchReport) -> None:
    """Keep the last report so the next run (even in a new session) compares against it."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(report.to_dict()))
