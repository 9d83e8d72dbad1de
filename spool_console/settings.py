"""One frozen settings object: command line over `SPOOL_*` environment over defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import EngineConfig
from engine.worker.pool import PoolSettings
from engine.worker.weights import split_weights
from spool_console.options import BY_DEST, OPTIONS, UsageError, value_of

#: Connect timeout of the one-shot commands (queues, dead …) when none is given: a script
#: should hear about a missing Redis in seconds, not after the worker's 30 s of retries.
OPS_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one `spool-console` run."""

    redis_url: str | None
    prefix: str
    log_level: str
    log_format: str
    connect_deadline_s: float
    json: bool
    queues: tuple[str, ...]
    task_modules: tuple[str, ...]
    concurrency: int | None
    min_workers: int
    max_workers: int
    workers: int | None
    lease_s: float
    grace_s: float
    http: str | None
    metrics_port: int | None
    status_interval_s: float
    otel: bool
    demo: bool
    read_only: bool
    api_token: str | None
    no_ui: bool
    max_wait_s: float | None = None
    queue_weights: tuple[int, ...] = ()  # one per queue, from `--queue NAME:WEIGHT`
    # False when --queue/SPOOL_QUEUES was left out: the pool then also works on the queues
    # its tasks declare (`@task(queue=...)`).
    queues_given: bool = True
    request_timeout_s: float = 2.0  # HTTP: one deadline per request's Redis work
    restore_window_s: float = 600.0  # how long a deleted dead letter can be restored

    def engine_config(self) -> EngineConfig:
        """The engine's view of these settings."""
        return EngineConfig(
            prefix=self.prefix, lease_s=self.lease_s, restore_window_s=self.restore_window_s
        )

    def pool_settings(self) -> PoolSettings:
        """The worker pool's view of these settings."""
        return PoolSettings(
            queues=self.queues,
            queue_weights=self.queue_weights,
            max_wait_s=self.max_wait_s,
            concurrency=self.concurrency,
            min_concurrency=self.min_workers,
            max_concurrency=self.max_workers,
            grace_s=self.grace_s,
        )

    def http_address(self) -> tuple[str, int] | None:
        """(host, port) of `--http`, or None."""
        if not self.http:
            return None
        host, _, port = self.http.rpartition(":")
        return (host.strip("[]") or "127.0.0.1", int(port))


def mode_of(args: argparse.Namespace) -> str:
    """"console" (no command), "worker" (`worker` or `--no-ui`) or "ops" (any other command)."""
    command = getattr(args, "command", None)
    if command == "worker" or (command is None and getattr(args, "no_ui", False)):
        return "worker"
    return "console" if command is None else "ops"


def _given(args: argparse.Namespace, env: Mapping[str, str], dest: str) -> bool:
    """True when the user set this option (flag or environment), not its default."""
    return getattr(args, dest, None) is not None or bool(env.get(BY_DEST[dest].env))


def resolve(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, *, mode: str | None = None
) -> Settings:
    """Merge parsed flags, the environment and defaults (`OPTIONS`) into one `Settings`.

    Raises `UsageError` (one line, exit 2) for a bad environment value or an impossible
    combination. `mode` is "console", "worker" or "ops" (short connect timeout by default);
    by default it follows the parsed command.
    """
    env = os.environ if env is None else env
    mode = mode or mode_of(args)
    values = {o.dest: value_of(o, getattr(args, o.dest, None), env) for o in OPTIONS}
    if mode == "ops" and not _given(args, env, "connect_deadline_s"):
        values["connect_deadline_s"] = OPS_CONNECT_TIMEOUT_S
    if values["min_workers"] > values["max_workers"]:
        if not _given(args, env, "min_workers"):  # only the default is above: lower it
            values["min_workers"] = values["max_workers"]
        else:
            raise UsageError(
                f"--min-workers ({values['min_workers']}) must be <= --max-workers"
                f" ({values['max_workers']})"
            )
    token = env.get("SPOOL_API_TOKEN") or None
    token_file = values.pop("api_token_file")
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip() or None
        except OSError as exc:
            raise UsageError(
                f"--api-token-file: cannot read {token_file}: {exc.strerror}"
            ) from None
    values["json"] = bool(values["json"])
    try:
        values["queues"], weights = split_weights(values["queues"])
    except ValueError as exc:
        raise UsageError(f"--queue: {exc}") from None
    return Settings(
        **values,
        api_token=token,
        no_ui=mode == "worker",
        queue_weights=weights,
        queues_given=_given(args, env, "queues"),
    )
