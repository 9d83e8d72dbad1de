"""`spool-console`: the console (default), `--no-ui` headless worker, and `bench`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from spool_console.settings import Settings, add_arguments, resolve


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (the `bench` subcommand has its own)."""
    parser = argparse.ArgumentParser(
        prog="spool-console",
        description="Spool: a Redis-backed task queue and its operations console.",
        epilog="Subcommand: `spool-console bench --help` for the benchmark suite.",
    )
    parser.add_argument("--no-ui", action="store_true", help="run the engine headless, as a worker")
    add_arguments(parser)
    return parser


def _run_headless(settings: Settings) -> int:
    from engine.logs import setup_logging
    from engine.worker.runner import RunnerOptions, run_headless

    setup_logging(settings.log_format)
    address = settings.http_address()
    opts = RunnerOptions(
        redis_url=settings.redis_url,
        config=settings.engine_config(),
        pool=settings.pool_settings(),
        task_modules=settings.task_modules,
        status_interval_s=settings.status_interval_s,
        connect_deadline_s=settings.connect_deadline_s,
        http_host=address[0] if address else None,
        http_port=address[1] if address else None,
        api_token=settings.api_token,
        demo=settings.demo,
    )
    try:
        import uvloop

        return uvloop.run(run_headless(opts))
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.run(run_headless(opts))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from spool_console.bench_cmd import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = resolve(args)
    if settings.no_ui:
        return _run_headless(settings)
    from spool_console.app import run_app  # Textual is imported only on this branch

    return run_app(settings)


if __name__ == "__main__":
    raise SystemExit(main())
