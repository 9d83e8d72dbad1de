"""One frozen settings object: command line over `SPOOL_*` environment over defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import EngineConfig
from engine.worker.pool import PoolSettings


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one `spool-console` run."""

    redis_url: str | None
    prefix: str
    queues: tuple[str, ...]
    task_modules: tuple[str, ...]
    concurrency: int | None
    min_workers: int
    max_workers: int
    workers: int | None
    lease_s: float
    grace_s: float
    log_format: str
    http: str | None
    api_token: str | None
    no_ui: bool
    demo: bool
    read_only: bool
    connect_deadline_s: float
    status_interval_s: float

    def engine_config(self) -> EngineConfig:
        """The engine's view of these settings."""
        return EngineConfig(prefix=self.prefix, lease_s=self.lease_s)

    def pool_settings(self) -> PoolSettings:
        """The worker pool's view of these settings."""
        return PoolSettings(
            queues=self.queues,
            concurrency=self.concurrency,
            min_concurrency=min(self.min_workers, self.max_workers),
            max_concurrency=self.max_workers,
            grace_s=self.grace_s,
        )

    def http_address(self) -> tuple[str, int] | None:
        """(host, port) of `--http`, or None."""
        if not self.http:
            return None
        host, _, port = self.http.rpartition(":")
        return (host.strip("[]") or "127.0.0.1", int(port))


def _env_list(env: Mapping[str, str], name: str) -> list[str] | None:
    value = env.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by every mode (UI, `--no-ui`)."""
    parser.add_argument(
        "--redis-url",
        help="redis://, rediss:// or unix:// URL (env SPOOL_REDIS_URL;"
        " default: an embedded server)",
    )
    parser.add_argument("--prefix", help="key prefix (env SPOOL_PREFIX; default spool)")
    parser.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="Q",
        help="queue to work on, repeatable (env SPOOL_QUEUES; default: default)",
    )
    parser.add_argument(
        "--tasks",
        action="append",
        dest="task_modules",
        metavar="MODULE",
        help="module declaring @task handlers, repeatable (env SPOOL_TASKS)",
    )
    parser.add_argument("--concurrency", type=int, help="fixed concurrency (pins the auto-scaler)")
    parser.add_argument("--min-workers", type=int, help="auto-scaler minimum (default 5)")
    parser.add_argument("--max-workers", type=int, help="auto-scaler maximum (default 30)")
    parser.add_argument(
        "--workers", type=int, help="console only: 0 observes without running a local pool"
    )
    parser.add_argument("--lease", type=float, dest="lease_s", help="lease seconds (default 10)")
    parser.add_argument(
        "--grace",
        type=float,
        dest="grace_s",
        help="seconds in-flight tasks get on shutdown (default 30)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), help="log format on stderr")
    parser.add_argument("--http", metavar="HOST:PORT", help="serve the HTTP API (env SPOOL_HTTP)")
    parser.add_argument(
        "--api-token-file", help="file holding the HTTP bearer token (or env SPOOL_API_TOKEN)"
    )
    parser.add_argument("--demo", action="store_true", help="feed a mixed synthetic load")
    parser.add_argument(
        "--read-only", action="store_true", help="console: hide destructive actions"
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        dest="connect_deadline_s",
        help="seconds to keep trying Redis at start (default 30)",
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        dest="status_interval_s",
        help="--no-ui: seconds between status lines (default 5)",
    )


def resolve(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Merge parsed flags, the environment and defaults into one `Settings`."""
    env = os.environ if env is None else env

    def pick(flag: object, name: str, default: object, cast: type = str) -> object:
        if flag is not None:
            return flag
        if env.get(name):
            try:
                return cast(env[name])
            except ValueError:
                raise SystemExit(
                    f"spool: {name}={env[name]!r} is not a valid {cast.__name__}"
                ) from None
        return default

    token = env.get("SPOOL_API_TOKEN") or None
    token_file = args.api_token_file or env.get("SPOOL_API_TOKEN_FILE")
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip() or None
        except OSError as exc:
            raise SystemExit(f"spool: cannot read the API token file: {exc}") from None
    concurrency = pick(args.concurrency, "SPOOL_CONCURRENCY", None, int)
    return Settings(
        redis_url=pick(args.redis_url, "SPOOL_REDIS_URL", None),  # type: ignore[arg-type]
        prefix=pick(args.prefix, "SPOOL_PREFIX", "spool"),  # type: ignore[arg-type]
        queues=tuple(args.queues or _env_list(env, "SPOOL_QUEUES") or ["default"]),
        task_modules=tuple(args.task_modules or _env_list(env, "SPOOL_TASKS") or []),
        concurrency=concurrency,  # type: ignore[arg-type]
        min_workers=pick(args.min_workers, "SPOOL_MIN_WORKERS", 5, int),  # type: ignore[arg-type]
        max_workers=pick(args.max_workers, "SPOOL_MAX_WORKERS", 30, int),  # type: ignore[arg-type]
        workers=pick(args.workers, "SPOOL_WORKERS", None, int),  # type: ignore[arg-type]
        lease_s=pick(args.lease_s, "SPOOL_LEASE_S", 10.0, float),  # type: ignore[arg-type]
        grace_s=pick(args.grace_s, "SPOOL_GRACE_S", 30.0, float),  # type: ignore[arg-type]
        log_format=pick(args.log_format, "SPOOL_LOG_FORMAT", "text"),  # type: ignore[arg-type]
        http=pick(args.http, "SPOOL_HTTP", None),  # type: ignore[arg-type]
        api_token=token,
        no_ui=bool(getattr(args, "no_ui", False)),
        demo=bool(args.demo),
        read_only=bool(args.read_only),
        connect_deadline_s=pick(args.connect_deadline_s, "SPOOL_CONNECT_TIMEOUT_S", 30.0, float),  # type: ignore[arg-type]
        status_interval_s=pick(args.status_interval_s, "SPOOL_STATUS_INTERVAL_S", 5.0, float),  # type: ignore[arg-type]
    )
