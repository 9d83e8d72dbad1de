"""`spool-console`: the console (no subcommand), `worker`, `bench` and the operations.

argparse (standard library) rather than click/typer: no dependency, fast start-up (the CLI
must not import Textual unless it opens the console), and subparsers give `--help` per
command. Options are declared once in `spool_console.options.OPTIONS`; global ones are
accepted before or after the subcommand. Exit codes: `spool_console.cli_output`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from spool_console.cli_output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CommandError,
    Output,
)
from spool_console.commands import COMMANDS
from spool_console.options import GLOBAL, WORKER, UsageError, add_options

if TYPE_CHECKING:
    from engine.embedded import EmbeddedServer
    from spool_console.commands import Run
    from spool_console.settings import Settings

EXIT_CODES = """exit codes: 0 ok · 1 failed or not confirmed · 2 usage error ·
3 Redis unreachable · 4 no such task or dead letter · 130 interrupted"""


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the option and the rule), exit 2."""

    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit 2 (argparse prints the whole usage first)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


class _Version(argparse.Action):
    """`--version`, reading the installed version only when asked (importlib.metadata is slow
    to import, and every start would pay for it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("spool-console")
        except PackageNotFoundError:  # running from a checkout without an install
            text = "unknown"
        sys.stdout.write(f"spool-console {text}\n")
        parser.exit()


def build_parser() -> Parser:
    """The parser of every command."""
    parser = Parser(
        prog="spool-console",
        description="Spool: a Redis-backed task queue and its operations console. "
        "Without a command, opens the console.",
        epilog=EXIT_CODES,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    parser.add_argument("--no-ui", action="store_true", help="same as the worker command")
    add_options(parser, GLOBAL, suppress=False)
    add_options(parser, WORKER, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False,
                           epilog=EXIT_CODES)
        add_options(p, GLOBAL, suppress=True)
        return p

    worker = command("worker", "run a headless worker (the console's engine, no UI)")
    add_options(worker, WORKER, suppress=True)
    from spool_console.bench_cmd import add_bench_arguments

    add_bench_arguments(command("bench", "benchmark the queue under a private key prefix"))
    for cmd in COMMANDS:
        p = command(cmd.name, cmd.help)
        cmd.add_arguments(p)
        for nested in _subparsers(p):  # `dead list --json` as well as `dead --json list`
            add_options(nested, GLOBAL, suppress=True)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [p for a in actions for p in a.choices.values()]


def _normalise(argv: list[str]) -> list[str]:
    """`task ID` means `task show ID`."""
    for i, token in enumerate(argv):
        if token == "task":
            rest = argv[i + 1 :]
            if rest and not rest[0].startswith("-") and rest[0] not in ("show", "enqueue"):
                return [*argv[: i + 1], "show", *rest]
            return argv
        if not token.startswith("-") and token in {c.name for c in COMMANDS} | {"worker", "bench"}:
            return argv
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(_normalise(list(sys.argv[1:] if argv is None else argv)))
    from spool_console.settings import mode_of, resolve

    mode = mode_of(args)
    command = "worker" if mode == "worker" else args.command
    try:
        settings = resolve(args, mode=mode)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"spool-console: {exc}\n")
    if command == "bench":
        from spool_console.bench_cmd import run as run_bench

        return run_bench(args, settings.redis_url, settings.json)
    if command == "worker":
        return _run_headless(settings)
    if command is None:
        from spool_console.app import run_app  # Textual is imported only on this branch

        return run_app(settings)
    import logging

    from engine.logs import setup_logging

    setup_logging(settings.log_format, logging.WARNING)
    run = next(c for c in COMMANDS if c.name == command).run
    try:
        return _run_loop(_run_command(settings, run, args))
    except CommandError as exc:
        print(f"spool-console {command}: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"spool-console {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_loop(coro: Coroutine[Any, Any, int]) -> int:
    import asyncio

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _run_command(settings: Settings, run: Run, args: argparse.Namespace) -> int:
    """Connect (the embedded server's data when no URL is given), run one command, close."""
    import asyncio
    import logging

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from engine.broker import Broker
    from engine.connection import RedisUnavailable, mask_url, wait_for_redis

    server = None
    url = settings.redis_url
    quiet = logging.getLogger("spool.quiet")
    quiet.propagate = False  # connection retries are reported once, below, not per attempt
    try:
        if url is None:
            url, server = await asyncio.to_thread(_embedded)
        redis = await wait_for_redis(url, settings.connect_deadline_s, log=quiet)
        try:
            broker = Broker(redis, settings.engine_config())
            return await run(broker, args, Output(settings.json))
        except ValueError as exc:  # the engine refused a name (queue, id) before any write
            raise CommandError(EXIT_USAGE, str(exc)) from None
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise CommandError(EXIT_UNAVAILABLE, f"Redis went away: {exc}") from None
        except RedisError as exc:
            raise CommandError(EXIT_FAILED, f"Redis refused: {exc}") from None
        finally:
            await redis.aclose()
    except RedisUnavailable as exc:
        raise CommandError(EXIT_UNAVAILABLE, str(exc)) from None
    except RedisError as exc:  # wrong password, TLS refused: waiting does not fix these
        raise CommandError(
            EXIT_UNAVAILABLE, f"Redis at {mask_url(url or '')} refused: {exc}"
        ) from None
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


def _embedded() -> tuple[str, EmbeddedServer | None]:
    """The console's embedded server: the running one if it answers, else started for now."""
    from engine.embedded import EmbeddedServer, default_state_dir

    server = EmbeddedServer(data_dir=default_state_dir())
    if server.ping():
        return server.url, None
    return server.start().url, server


def _run_headless(settings: Settings) -> int:
    import logging

    from engine.logs import setup_logging
    from engine.worker.runner import RunnerOptions, run_headless

    setup_logging(settings.log_format, getattr(logging, settings.log_level.upper()))
    if settings.otel:
        from engine import tracing

        try:
            tracing.enable()
        except RuntimeError as exc:
            print(f"spool-console: --otel: {exc}", file=sys.stderr)
            return EXIT_USAGE
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
        request_timeout_s=settings.request_timeout_s,
        demo=settings.demo,
        metrics_port=settings.metrics_port,
        declared_queues=not settings.queues_given,
    )
    return _run_loop(run_headless(opts))


if __name__ == "__main__":
    raise SystemExit(main())
