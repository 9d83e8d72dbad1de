"""`spool-console bench`: run a benchmark from the command line and print its report.

The report goes to stdout (text, or JSON with --json) so `> before.txt` / `diff` work; the
progress bar goes to stderr, plain text updated with `\\r`, only once a run has lasted a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from spool_console.options import non_negative_int, positive_float, positive_int

if TYPE_CHECKING:  # engine.bench is imported when a benchmark runs, not to build `--help`
    from engine.bench import BenchParams, BenchProgress, BenchReport

#: The benchmark types (engine.bench.params.TYPES, which checks them again).
TYPES = ("quick", "scalability", "profiled", "custom", "burst", "sustained", "latency")


def build_parser() -> argparse.ArgumentParser:
    """A parser of the `bench` options alone (`spool-console bench` adds the global ones)."""
    p = argparse.ArgumentParser(
        prog="spool-console bench",
        description="Benchmark Spool under a private key prefix (cleaned up afterwards).",
    )
    add_bench_arguments(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--redis-url", help="server to use (env SPOOL_REDIS_URL; default: embedded)")
    return p


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's own options (the server and --json are global options)."""
    p.add_argument(
        "--type",
        choices=(*TYPES, "soak"),
        default="quick",
        help="benchmark type (default quick); soak: --rate for --duration, watching memory",
    )
    count, seconds = positive_int, positive_float
    p.add_argument("--tasks", type=count, help="tasks to drain (drain mode) or to offer (burst)")
    p.add_argument("--workers", type=count, help="concurrency per process (pins the auto-scaler)")
    p.add_argument("--min-workers", type=count, help="auto-scaler minimum (when --workers unset)")
    p.add_argument("--max-workers", type=count, help="auto-scaler maximum (when --workers unset)")
    p.add_argument("--autoscale", action="store_true", help="custom: run the auto-scaler")
    p.add_argument("--rate", type=seconds, help="offered tasks/s (open loop); unset = drain mode")
    p.add_argument("--duration", type=seconds, dest="duration_s", help="seconds to offer --rate")
    p.add_argument("--task", help="spool.noop | spool.sleep:MS | spool.cpu:N")
    p.add_argument(
        "--processes", type=positive_int, help="processes in all (in-process pool + P-1 children)"
    )
    p.add_argument("--priority", help="priority level of the offered tasks (high|default|low)")
    p.add_argument("--rate-limit", help="declare a fleet-wide rate limit on the task (N/s|m|h)")
    p.add_argument(
        "--concurrency-limit", type=count, help="declare a fleet-wide concurrency limit on the task"
    )
    p.add_argument(
        "--backlog-low",
        type=non_negative_int,
        dest="backlog_low",
        help="low-priority tasks queued before the run (priority check)",
    )
    p.add_argument("--levels", help="scalability: comma list of concurrencies")
    p.add_argument(
        "--timeout",
        type=positive_float,
        dest="settle_timeout_s",
        help="seconds to wait for tasks to settle (default 120)",
    )
    p.add_argument("--out", metavar="DIR", help="write report.txt and report.json (and profiles)")
    p.add_argument("--compare", metavar="OLD.json", help="also print deltas against a report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--sample-every",
        type=positive_float,
        dest="sample_every_s",
        help="soak: seconds between samples (default 30)",
    )
    p.add_argument(
        "--console",
        action="store_true",
        help="soak: the worker is the console itself (UI on a 160x45 pseudo-terminal)",
    )


def params_from_args(args: argparse.Namespace) -> BenchParams:
    """BenchParams of the parsed flags (unset flags keep the type's defaults)."""
    from engine.bench import BenchParams

    if args.console:
        raise ValueError("--console applies only to --type soak")
    overrides = {
        name: getattr(args, name)
        for name in (
            "tasks",
            "workers",
            "min_workers",
            "max_workers",
            "rate",
            "duration_s",
            "task",
            "processes",
            "priority",
            "backlog_low",
            "settle_timeout_s",
            "rate_limit",
            "concurrency_limit",
            "sample_every_s",
        )
    }
    if args.levels:
        overrides["levels"] = tuple(int(x) for x in args.levels.split(",") if x.strip())
    if args.out:
        overrides["out_dir"] = args.out
    params = BenchParams.for_type(args.type, **overrides)
    if args.autoscale and args.workers is None:
        params = params.replace(workers=None)
    return params


class ProgressBar:
    """Prints `render_bar` lines on a terminal stream with `\\r`, after the first second."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, p: BenchProgress) -> None:
        from engine.bench.progress import render_bar

        if not self.enabled or time.monotonic() - self.started < 1.0:
            return
        self.stream.write("\r" + render_bar(p))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the bar's line so the next output starts clean."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


async def _run(url: str, params: BenchParams, bar: ProgressBar) -> BenchReport:
    from engine.bench import run_benchmark

    return await run_benchmark(url, params, progress=bar)


def _run_sync(url: str, params: BenchParams, bar: ProgressBar) -> BenchReport:
    try:
        import uvloop  # the loop `spool-console --no-ui` runs on, so numbers match production

        return uvloop.run(_run(url, params, bar))
    except ImportError:
        return asyncio.run(_run(url, params, bar))


@contextlib.contextmanager
def redis_target(url: str | None, prefix: str) -> Iterator[str]:
    """`url`; without one, the URL of an embedded server (persistence off, in a temp dir named
    `prefix`...) that is stopped and deleted when the block ends."""
    if url:
        yield url
        return
    from engine.embedded import EmbeddedServer

    # A short path: unix socket paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as tmp:
        server = EmbeddedServer(tmp, persistence=False).start()
        try:
            yield server.url
        finally:
            server.stop()


def main(argv: list[str]) -> int:
    """Run `bench` from its own parser; returns the exit code."""
    args = build_parser().parse_args(argv)
    return run(args, args.redis_url or os.environ.get("SPOOL_REDIS_URL"), args.json)


def run(args: argparse.Namespace, url: str | None, as_json: bool) -> int:
    """Run the benchmark the parsed `args` describe; returns the exit code."""
    if args.type == "soak":
        from spool_console.soak_cmd import run_soak_cmd

        return run_soak_cmd(args, url, as_json)
    try:
        params = params_from_args(args)
    except ValueError as exc:
        print(f"spool bench: {exc}", file=sys.stderr)
        return 2
    from engine.bench import BenchReport

    old = None
    if args.compare:
        try:
            old = BenchReport.from_dict(json.loads(Path(args.compare).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            print(f"spool bench: cannot read {args.compare}: {exc}", file=sys.stderr)
            return 2
    embedded = not url
    bar = ProgressBar(sys.stderr, enabled=not args.no_progress)
    try:
        with redis_target(url, "spoolbench-") as target:
            report = _run_sync(target, params, bar)
    except KeyboardInterrupt:
        bar.close()
        print("spool bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        bar.close()
        print(f"spool bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    bar.close()
    if embedded:
        report = dataclasses.replace(
            report, redis="embedded valkey (unix socket in a temp dir, persistence off)"
        )
    text, doc = report.to_text(), json.dumps(report.to_dict(), indent=2)
    sys.stdout.write(doc + "\n" if as_json else text)
    if old is not None:
        sys.stdout.write("\n" + report.compare(old))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.txt").write_text(text)
        (out / "report.json").write_text(doc + "\n")
    return 1 if report.timed_out else 0
