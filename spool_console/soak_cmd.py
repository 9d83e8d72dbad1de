"""`spool-console bench --type soak`: the long steady-rate run that watches memory and latency.

Samples go to stderr as they come (a soak lasts half an hour); the report goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from pathlib import Path

from engine.bench.soak import SoakParams, SoakReport, SoakSample, run_soak
from spool_console.bench_cmd import redis_target

#: Bench flags that mean nothing to a soak (one worker process, open loop at --rate).
_NOT_FOR_SOAK = (
    "tasks",
    "min_workers",
    "max_workers",
    "processes",
    "priority",
    "backlog_low",
    "levels",
    "compare",
    "settle_timeout_s",
    "rate_limit",
    "concurrency_limit",
)


def soak_params(args: argparse.Namespace) -> SoakParams:
    """SoakParams of the parsed bench flags; raises ValueError on a flag a soak cannot use."""
    for name in _NOT_FOR_SOAK:
        if getattr(args, name, None) not in (None, False):
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --type soak")
    if getattr(args, "autoscale", False):
        raise ValueError("--autoscale does not apply to --type soak")
    values = {
        "rate": args.rate,
        "duration_s": args.duration_s,
        "sample_every_s": args.sample_every_s,
        "concurrency": args.workers,
        "task": args.task,
        "console": args.console,
    }
    return SoakParams(**{k: v for k, v in values.items() if v is not None})


def _print_sample(s: SoakSample) -> None:
    print(
        f"soak t={s.at_s:.0f}s done={s.completed:,} rate={s.rate:,.0f}/s"
        f" worker={s.worker_rss_mb:.1f}MB producer={s.producer_rss_mb:.1f}MB"
        f" redis={s.redis_used_mb:.1f}MB p50={s.p50_ms:.2f}ms p99={s.p99_ms:.2f}ms",
        file=sys.stderr,
        flush=True,
    )


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so `finally` stops the worker child and deletes the prefix


def _run(url: str, params: SoakParams, show: bool) -> SoakReport:
    if threading.current_thread() is threading.main_thread():  # signal() works only there
        signal.signal(signal.SIGTERM, _interrupt)
    coro = run_soak(url, params, on_sample=_print_sample if show else None)
    try:
        import uvloop  # the loop `spool-console --no-ui` runs on

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def run_soak_cmd(args: argparse.Namespace, url: str | None, as_json: bool) -> int:
    """Run the soak the parsed bench `args` describe; returns the exit code."""
    try:
        params = soak_params(args)
    except (TypeError, ValueError) as exc:
        print(f"spool bench: {exc}", file=sys.stderr)
        return 2
    try:
        with redis_target(url, "spoolsoak-") as target:
            report = _run(target, params, not args.no_progress)
    except KeyboardInterrupt:
        print("spool bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"spool bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    text, doc = report.to_text(), json.dumps(report.to_dict(), indent=2)
    sys.stdout.write(doc + "\n" if as_json else text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "soak.txt").write_text(text)
        (out / "soak.json").write_text(doc + "\n")
    return 1 if report.dead else 0
