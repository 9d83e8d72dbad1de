"""`spool-console` settings resolution and start-up failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spool_console.cli import build_parser
from spool_console.options import UsageError
from spool_console.settings import resolve

ROOT = Path(__file__).resolve().parents[1]


def settings(argv: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return resolve(build_parser().parse_args(argv), env=env or {})


def test_defaults() -> None:
    s = settings([])
    assert s.redis_url is None and s.prefix == "spool" and s.queues == ("default",)
    assert s.concurrency is None and (s.min_workers, s.max_workers) == (5, 30)
    assert s.lease_s == 10.0 and s.grace_s == 30.0 and s.connect_deadline_s == 30.0
    assert s.log_format == "text" and not s.no_ui and s.task_modules == ()
    pool = s.pool_settings()
    assert pool.concurrency is None and pool.min_concurrency == 5 and pool.max_concurrency == 30
    assert s.engine_config().lease_s == 10.0


ENV = {
    "SPOOL_REDIS_URL": "redis://env:6379/1",
    "SPOOL_PREFIX": "envp",
    "SPOOL_QUEUES": "a, b,,c",
    "SPOOL_TASKS": "env.tasks",
    "SPOOL_CONCURRENCY": "12",
    "SPOOL_MIN_WORKERS": "2",
    "SPOOL_MAX_WORKERS": "9",
    "SPOOL_LEASE_S": "4.5",
    "SPOOL_GRACE_S": "7",
    "SPOOL_LOG_FORMAT": "json",
    "SPOOL_CONNECT_TIMEOUT_S": "3",
    "SPOOL_STATUS_INTERVAL_S": "2",
}


def test_environment_over_defaults() -> None:
    s = settings(["--no-ui"], ENV)
    assert s.redis_url == "redis://env:6379/1" and s.prefix == "envp"
    assert s.queues == ("a", "b", "c") and s.task_modules == ("env.tasks",)
    assert s.concurrency == 12 and (s.min_workers, s.max_workers) == (2, 9)
    assert s.lease_s == 4.5 and s.grace_s == 7.0 and s.log_format == "json"
    assert s.connect_deadline_s == 3.0 and s.status_interval_s == 2.0 and s.no_ui
    assert s.engine_config().prefix == "envp" and s.engine_config().lease_s == 4.5
    pool = s.pool_settings()
    assert pool.queues == ("a", "b", "c") and pool.concurrency == 12 and pool.grace_s == 7.0


def test_flags_over_environment() -> None:
    argv = [
        "--redis-url", "redis://flag:1/2", "--prefix", "flagp", "--queue", "x", "--queue", "y",
        "--tasks", "m1", "--tasks", "m2", "--concurrency", "3", "--min-workers", "1",
        "--max-workers", "4", "--lease", "1.5", "--grace", "0.5", "--log-format", "text",
        "--connect-timeout", "0.25", "--status-interval", "9",
    ]
    s = settings(argv, ENV)
    assert s.redis_url == "redis://flag:1/2" and s.prefix == "flagp"
    assert s.queues == ("x", "y") and s.task_modules == ("m1", "m2")
    assert s.concurrency == 3 and (s.min_workers, s.max_workers) == (1, 4)
    assert s.lease_s == 1.5 and s.grace_s == 0.5 and s.log_format == "text"
    assert s.connect_deadline_s == 0.25 and s.status_interval_s == 9.0


def test_min_above_max_is_a_usage_error_unless_min_is_the_default() -> None:
    with pytest.raises(UsageError, match=r"--min-workers \(50\) must be <= --max-workers \(8\)"):
        settings(["--min-workers", "50", "--max-workers", "8"])
    pool = settings(["--max-workers", "2"]).pool_settings()
    assert pool.min_concurrency == 2 and pool.max_concurrency == 2


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(UsageError, match="SPOOL_LEASE_S \\(for --lease\\) must be a number > 0"):
        settings([], {"SPOOL_LEASE_S": "soon"})


def test_settings_are_frozen() -> None:
    s = settings([])
    with pytest.raises(AttributeError):
        s.prefix = "other"  # type: ignore[misc]


def _run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "spool_console.cli", "--no-ui", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_unreachable_redis_exits_nonzero_naming_the_url() -> None:
    res = _run_cli("--redis-url", "redis://127.0.0.1:1", "--connect-timeout", "1")
    assert res.returncode == 3  # documented: Redis unreachable
    assert "redis://127.0.0.1:1" in res.stderr
    assert "unavailable" in res.stderr
    assert "Traceback" not in res.stderr


def test_unreachable_redis_never_prints_the_password() -> None:
    res = _run_cli("--redis-url", "redis://:s3cret@127.0.0.1:1/0", "--connect-timeout", "1")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "s3cret" not in out
    assert "redis://:***@127.0.0.1:1/0" in res.stderr


def test_unknown_task_module_is_named() -> None:
    res = _run_cli(
        "--redis-url", "redis://127.0.0.1:1", "--connect-timeout", "1",
        "--tasks", "no_such_module_for_spool",
    )
    assert res.returncode != 0
    assert "cannot import task module 'no_such_module_for_spool'" in res.stderr
