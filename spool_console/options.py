"""Every option of `spool-console`, declared once: flag, environment variable, rule, default.

The parsers (`spool_console.cli`), the settings resolution (`spool_console.settings`), the
`--help` text and the README's table all come from `OPTIONS`. A bad value, on the command
line or in the environment, is a usage error: one line naming the option and the rule, exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The URL schemes `engine.connection.open_redis` understands.
URL_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
)
LOG_LEVELS = ("debug", "info", "warning", "error")


def _number(kind: type, low: float, *, strict: bool = False) -> Callable[[str], Any]:
    rule = f"{'>' if strict else '>='} {low:g}"
    word = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {word} {rule}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):  # NaN, inf
            raise argparse.ArgumentTypeError(f"must be a finite number {rule}, got {text!r}")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {word} {rule}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
positive_float = _number(float, 0, strict=True)
non_negative_float = _number(float, 0)


def redis_url(text: str) -> str:
    """A URL `open_redis` accepts."""
    if not text.lower().startswith(URL_SCHEMES) or text.split("://", 1)[1] == "":
        raise argparse.ArgumentTypeError(
            f"must be a URL starting with {', '.join(URL_SCHEMES)}; got {text!r}"
        )
    return text


def host_port(text: str) -> str:
    """HOST:PORT (an IPv6 host in brackets), port 1-65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port 1-65535, got {text!r}")
    if host.startswith("[") != host.endswith("]"):
        raise argparse.ArgumentTypeError(f"an IPv6 host goes in brackets, got {text!r}")
    return text


def port_number(text: str) -> int:
    """A TCP port, 1-65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return int(text)


def choice(*allowed: str) -> Callable[[str], str]:
    """One of `allowed` (case-insensitive)."""

    def parse(text: str) -> str:
        if text.lower() not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}; got {text!r}")
        return text.lower()

    return parse


def name_list(text: str) -> list[str]:
    """Comma-separated names (the environment form of a repeatable flag)."""
    return [v.strip() for v in text.split(",") if v.strip()]


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def boolean(text: str) -> bool:
    """1/true/yes/on or 0/false/no/off (environment form of a switch)."""
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"must be 1/true/yes/on or 0/false/no/off, got {text!r}")


@dataclass(frozen=True, slots=True)
class Option:
    """One option. `scope` is where it applies: every command, or the processes that run work.

    `parse` turns text into the value (raising `ArgumentTypeError` with the rule); `kind` is
    "value", "list" (repeatable flag, comma list in the environment) or "switch".
    """

    flag: str
    env: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] = str
    kind: str = "value"
    scope: str = "worker"
    metavar: str | None = None
    name: str | None = None

    @property
    def dest(self) -> str:
        """The attribute name in the parsed namespace and in `Settings`."""
        return self.name or self.flag.lstrip("-").replace("-", "_")

    def help_text(self) -> str:
        """The help line, with its environment variable and default."""
        default = "" if self.default in (None, False, ()) else f"; default {_shown(self.default)}"
        return f"{self.help} (env {self.env}{default})"


def _shown(default: Any) -> str:
    return ",".join(default) if isinstance(default, tuple) else str(default)


GLOBAL, WORKER = "global", "worker"

OPTIONS: tuple[Option, ...] = (
    # -- every command ------------------------------------------------------------------------
    Option("--redis-url", "SPOOL_REDIS_URL", "redis://, rediss://, unix:// or redis+cluster:// "
           "URL; without it, the embedded server", parse=redis_url, scope=GLOBAL, metavar="URL"),
    Option("--prefix", "SPOOL_PREFIX", "key prefix", "spool", scope=GLOBAL),
    Option("--log-level", "SPOOL_LOG_LEVEL", "log level: " + ", ".join(LOG_LEVELS), "info",
           parse=choice(*LOG_LEVELS), scope=GLOBAL),
    Option("--log-format", "SPOOL_LOG_FORMAT", "log format on stderr: text or json", "text",
           parse=choice("text", "json"), scope=GLOBAL),
    Option("--connect-timeout", "SPOOL_CONNECT_TIMEOUT_S", "seconds to keep trying Redis at "
           "start (commands other than the console and worker: 5)", 30.0,
           parse=positive_float, scope=GLOBAL, metavar="S", name="connect_deadline_s"),
    Option("--restore-window", "SPOOL_RESTORE_WINDOW_S", "seconds a deleted dead letter can "
           "be restored (0: deletes are final)", 600.0, parse=non_negative_float, scope=GLOBAL,
           metavar="S", name="restore_window_s"),
    Option("--json", "SPOOL_JSON", "print results as JSON, for scripts", False,
           parse=boolean, kind="switch", scope=GLOBAL),
    # -- the console and `worker` ------------------------------------------------------------
    Option("--queue", "SPOOL_QUEUES", "queue to work on, repeatable; NAME:WEIGHT shares the "
           "worker between queues by weight (images:3 mail:1)", ("default",),
           parse=name_list, kind="list", metavar="Q", name="queues"),
    Option("--max-wait", "SPOOL_MAX_WAIT_S", "seconds after which a lower-priority task is "
           "served before newer higher ones, set on the worker's queues (0: off)",
           parse=non_negative_float, metavar="S", name="max_wait_s"),
    Option("--tasks", "SPOOL_TASKS", "module declaring @task handlers, repeatable", (),
           parse=name_list, kind="list", metavar="MODULE", name="task_modules"),
    Option("--concurrency", "SPOOL_CONCURRENCY", "fixed concurrency (pins the auto-scaler)",
           parse=positive_int, metavar="N"),
    Option("--min-workers", "SPOOL_MIN_WORKERS", "auto-scaler minimum", 5,
           parse=positive_int, metavar="N"),
    Option("--max-workers", "SPOOL_MAX_WORKERS", "auto-scaler maximum", 30,
           parse=positive_int, metavar="N"),
    Option("--workers", "SPOOL_WORKERS", "console: local pool size; 0 only observes",
           parse=non_negative_int, metavar="N"),
    Option("--lease", "SPOOL_LEASE_S", "lease seconds", 10.0, parse=positive_float,
           metavar="S", name="lease_s"),
    Option("--grace", "SPOOL_GRACE_S", "seconds in-flight tasks get on shutdown", 30.0,
           parse=non_negative_float, metavar="S", name="grace_s"),
    Option("--http", "SPOOL_HTTP", "serve the HTTP API on HOST:PORT", parse=host_port,
           metavar="HOST:PORT"),
    Option("--api-token-file", "SPOOL_API_TOKEN_FILE", "file holding the HTTP bearer token "
           "(or the token itself in SPOOL_API_TOKEN)", metavar="FILE"),
    Option("--metrics-port", "SPOOL_METRICS_PORT", "worker: serve Prometheus /metrics on "
           "127.0.0.1:PORT (without the HTTP API)", parse=port_number, metavar="PORT"),
    Option("--request-timeout", "SPOOL_REQUEST_TIMEOUT_S", "HTTP: seconds a request's Redis "
           "work may take before it is answered 503", 2.0, parse=positive_float, metavar="S",
           name="request_timeout_s"),
    Option("--status-interval", "SPOOL_STATUS_INTERVAL_S", "worker: seconds between status "
           "lines", 5.0, parse=positive_float, metavar="S", name="status_interval_s"),
    Option("--otel", "SPOOL_OTEL", "worker: trace enqueue → handler with OpenTelemetry (the "
           "otel extra; the process's tracer provider)", False, parse=boolean, kind="switch"),
    Option("--demo", "SPOOL_DEMO", "feed a mixed synthetic load", False, parse=boolean,
           kind="switch"),
    Option("--read-only", "SPOOL_READ_ONLY", "console: hide every action that changes "
           "something", False, parse=boolean, kind="switch"),
)

BY_DEST = {o.dest: o for o in OPTIONS}


def add_options(parser: argparse.ArgumentParser, scope: str, *, suppress: bool) -> None:
    """Add the options of `scope` to `parser`.

    With `suppress` an option left out does not appear in the namespace at all, so a value
    given before a subcommand is not overwritten by the subcommand's default (this is what
    lets global options go before or after the subcommand).
    """
    for opt in OPTIONS:
        if opt.scope != scope:
            continue
        default = argparse.SUPPRESS if suppress else None
        if opt.kind == "switch":
            parser.add_argument(opt.flag, action="store_true", default=default,
                                help=opt.help_text())
        elif opt.kind == "list":
            parser.add_argument(opt.flag, action="append", default=default, dest=opt.dest,
                                metavar=opt.metavar, help=opt.help_text())
        else:
            parser.add_argument(opt.flag, type=opt.parse, default=default, dest=opt.dest,
                                metavar=opt.metavar, help=opt.help_text())


class UsageError(Exception):
    """A bad option value: the message is the whole line shown to the user (exit 2)."""


def value_of(opt: Option, flag_value: Any, env: Mapping[str, str]) -> Any:
    """The option's value: the command line, else the environment, else the default."""
    if flag_value is not None:
        return tuple(flag_value) if opt.kind == "list" else flag_value
    text = env.get(opt.env)
    if text is None or (text == "" and opt.kind != "switch"):
        return opt.default
    try:
        value = opt.parse(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{opt.env} (for {opt.flag}) {exc}") from None
    if opt.kind == "list":
        return tuple(value) or opt.default
    return value


def options_table() -> str:
    """The options as a Markdown table (the README's copy is checked against this)."""
    rows = ["| option | environment | default | what |", "| --- | --- | --- | --- |"]
    for o in OPTIONS:
        default = "" if o.default in (None, False, ()) else _shown(o.default)
        rows.append(f"| `{o.flag}` | `{o.env}` | {default} | {o.help} |")
    return "\n".join(rows)
