"""Every `spool-console` subcommand against the real server: tables, `--json`, exit codes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from test_http_support import bury, make_broker

from engine import undo
from spool_console.cli import main
from spool_console.cli_output import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[1]


class Cli:
    """Runs `main()` in-process with the test's server and prefix from the environment."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return orjson.loads(out)


@pytest.fixture
def cli(
    redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    for key in [k for k in os.environ if k.startswith("SPOOL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SPOOL_REDIS_URL", redis_url)
    monkeypatch.setenv("SPOOL_PREFIX", prefix)
    return Cli(capsys)


def _bury(redis_url: str, prefix: str, name: str, error: str, queue: str = "jobs") -> str:
    async def go() -> str:
        redis = Redis.from_url(redis_url)
        try:
            return await bury(make_broker(redis, prefix), name, error, queue)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def test_queues_task_pause_resume(cli: Cli) -> None:
    assert cli("queues") == (0, "no queues yet\n", "")
    code, task_id, _ = cli("task", "enqueue", "spool.noop", "--queue", "mail", "--args", "[]")
    assert code == 0 and len(task_id.strip()) == 22  # a generated id (broker.new_task_id)
    created = cli.json("task", "enqueue", "spool.sleep", "--queue", "mail", "--delay", "60",
                       "--kwargs", '{"ms": 1}')
    code, out, _ = cli("pause", "mail")
    assert (code, out) == (0, "mail: paused\n")
    code, out, _ = cli("queues")
    header, row = out.splitlines()
    assert header.split() == ["QUEUE", "STATE", "PENDING", "BY", "LEVEL", "SCHEDULED", "ACTIVE",
                              "DEAD"]
    assert row.split() == ["mail", "paused", "1", "high=0", "default=1", "low=0", "1", "0", "0"]
    (mail,) = cli.json("queues")
    assert mail["paused"] is True and mail["pending"] == 1 and mail["scheduled"] == 1
    assert cli.json("resume", "mail") == {"queue": "mail", "paused": False}
    # `task ID` and `task show ID` are the same; the table and the JSON say the same thing.
    shown = cli.json("task", created["id"])
    assert shown["state"] == "scheduled" and shown["kwargs"] == {"ms": 1}
    code, out, _ = cli("task", "show", task_id.strip(), "--queue", "mail")
    assert code == 0 and "pending" in out and "spool.noop" in out


def test_dead_letters_list_show_groups_requeue_delete(
    cli: Cli, redis_url: str, prefix: str
) -> None:
    ids = [_bury(redis_url, prefix, "mail.send", f"TimeoutError: smtp {i}") for i in range(3)]
    other = _bury(redis_url, prefix, "resize", "ValueError: bad image", queue="img")
    page = cli.json("dead", "list")
    assert {i["id"] for i in page["items"]} == {*ids, other} and page["cursor"] is None
    code, out, _ = cli("dead", "list", "--queue", "jobs", "--limit", "2")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "QUEUE", "TASK"]
    assert len(out.splitlines()) == 4 and "more: --cursor" in out  # header, 2 rows, cursor
    groups = cli.json("dead", "groups")["groups"]
    assert sorted(g["count"] for g in groups) == [1, 3]
    code, out, _ = cli("dead", "groups", "--task", "resize")
    assert code == 0 and "bad image" in out and "smtp" not in out
    code, out, _ = cli("dead", "show", other)
    assert code == 0 and "ValueError: bad image" in out and "resize" in out
    assert cli.json("dead", "show", other, "--queue", "img")["queue"] == "img"
    # By id: requeue moves it back; delete asks, and without a terminal needs --yes.
    assert cli.json("dead", "requeue", ids[0]) == {"requeued": 1}
    code, _, err = cli("dead", "delete", ids[1])
    assert code == EXIT_FAILED and "add --yes" in err
    deleted = cli.json("dead", "delete", ids[1], "--yes")
    assert deleted["deleted"] == 1 and deleted["undo"].startswith(
        str(deleted["restorable_until_ms"])
    )
    # Bulk: the scope is printed and nothing happens without confirmation.
    code, _, err = cli("dead", "requeue", "--all", "--queue", "jobs", "--error", "smtp")
    assert code == EXIT_FAILED and "requeue 1 dead letter(s) matching queue='jobs'" in err
    code, out, _ = cli("dead", "requeue", "--all", "--error", "smtp", "--yes")
    assert (code, out) == (0, "requeued=1\n")
    assert cli.json("dead", "delete", "--all", "--yes")["deleted"] == 1
    assert cli("dead", "list") == (0, "no dead letters\n", "")
    # Every change is in the audit trail, marked as coming from the CLI.
    entries = _audit_log(redis_url, prefix)
    assert [(e.action, e.via) for e in entries][:2] == [("dead delete", "cli"),
                                                        ("dead requeue", "cli")]


def test_bulk_acts_on_exactly_the_confirmed_scope(
    cli: Cli, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A letter that dies while the prompt waits is newer than the scope: left alone, counted."""
    import threading

    from spool_console import commands

    old = [_bury(redis_url, prefix, "mail.send", f"smtp {i}") for i in range(2)]
    arrived: list[str] = []
    prompts: list[str] = []

    def confirm_while_one_more_dies(prompt: str, assume_yes: bool) -> bool:
        prompts.append(prompt)
        server = SyncRedis.from_url(redis_url)
        seen = server.time()
        deadline = time.monotonic() + 5
        while server.time() <= seen and time.monotonic() < deadline:
            pass  # the newcomer must die at least a ms after the scope was counted
        server.close()
        # _bury runs its own event loop; the CLI's is running on this thread.
        worker = threading.Thread(
            target=lambda: arrived.append(_bury(redis_url, prefix, "mail.send", "smtp new"))
        )
        worker.start()
        worker.join()
        return True

    monkeypatch.setattr(commands, "confirm", confirm_while_one_more_dies)
    result = cli.json("dead", "requeue", "--all", "--error", "smtp")
    assert result == {"requeued": 2, "newer_left": 1}
    assert prompts and prompts[0].startswith("requeue 2 dead letter(s) matching error='smtp'")
    assert "(died by " in prompts[0]
    assert [i["id"] for i in cli.json("dead", "list")["items"]] == arrived
    assert set(old).isdisjoint(arrived)


def test_dead_restore_brings_back_a_delete(cli: Cli, redis_url: str, prefix: str) -> None:
    ids = [_bury(redis_url, prefix, "mail.send", f"smtp {i}") for i in range(2)]
    code, out, _ = cli("dead", "delete", "--all", "--yes")
    first, note = out.splitlines()
    token = note.rsplit(" ", 1)[1]
    assert first == "deleted=2" and note.startswith("restore until ")
    listed = cli.json("dead", "deleted")["deleted"]
    assert [(h["undo"], h["count"], h["by_queue"]) for h in listed] == [(token, 2, {"jobs": 2})]
    code, out, _ = cli("dead", "deleted")
    assert code == 0 and token in out
    newer = _bury(redis_url, prefix, "mail.send", "smtp later")
    assert cli.json("dead", "restore", token) == {"restored": 2, "id_in_use": 0}
    assert {i["id"] for i in cli.json("dead", "list")["items"]} == {*ids, newer}
    code, _, err = cli("dead", "restore", token)
    assert code == EXIT_NOT_FOUND and "nothing held" in err
    code, _, err = cli("dead", "restore", "not-a-token")
    assert code == EXIT_USAGE and "invalid undo token" in err
    code, out, _ = cli("dead", "deleted")
    assert (code, out) == (0, "no deletes to restore\n")
    entries = _audit_log(redis_url, prefix)
    assert [(e.action, e.scope, e.result) for e in entries[:2]] == [
        ("dead restore", f"undo {token}", "restored 2"),
        ("dead delete", "matching everything", "2"),
    ]
    assert (entries[1].undo, entries[1].held) == (token, 2)


def test_an_expired_delete_cannot_be_restored(
    cli: Cli, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOOL_RESTORE_WINDOW_S", "0.05")
    task_id = _bury(redis_url, prefix, "mail.send", "smtp")
    token = cli.json("dead", "delete", task_id, "--yes")["undo"]
    server = SyncRedis.from_url(redis_url)
    deadline = time.monotonic() + 5
    while _server_ms(server) < undo.expiry_of(token):  # the window ends on the server's clock
        assert time.monotonic() < deadline, "the server clock did not pass the window's end"
        time.sleep(0.01)
    server.close()
    code, _, err = cli("dead", "restore", token)
    assert code == EXIT_NOT_FOUND and "ended at" in err


def _server_ms(server: SyncRedis) -> int:
    seconds, micros = server.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _audit_log(redis_url: str, prefix: str) -> list[Any]:
    async def go() -> list[Any]:
        redis = Redis.from_url(redis_url)
        try:
            return await make_broker(redis, prefix).audit_log()
        finally:
            await redis.aclose()

    return asyncio.run(go())


def test_not_found_and_usage_errors(cli: Cli) -> None:
    for argv in (("task", "nope"), ("dead", "show", "nope"), ("dead", "delete", "nope", "--yes")):
        code, _, err = cli(*argv)
        assert code == EXIT_NOT_FOUND and len(err.splitlines()) == 1, argv
    for argv in (
        ("pause", "a b"),
        ("dead", "requeue"),
        ("dead", "requeue", "x", "--all"),
        ("dead", "delete", "x", "--task", "t"),
        ("task", "enqueue", "x", "--timeout", "0"),
        ("task", "enqueue", "x", "--args", "{bad"),
        ("dead", "list", "--limit", "0"),
        ("--lease", "0"),
        ("--concurrency", "0"),
        ("--max-workers", "0"),
        ("--http", "foo"),
        ("--redis-url", "notaurl", "queues"),
        ("queues", "--redis-url", "notaurl"),
        ("--min-workers", "10", "--max-workers", "2", "worker"),
        ("--log-level", "loud", "queues"),
        ("bench", "--tasks", "0"),
        ("nosuchcommand",),
    ):
        code, out, err = cli(*argv)
        assert code == EXIT_USAGE, (argv, err)
        assert len(err.strip().splitlines()) == 1 and out == "", (argv, err)


def test_environment_values_are_checked(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_LOG_FORMAT", "xml")
    code, _, err = cli("queues")
    assert code == EXIT_USAGE and "SPOOL_LOG_FORMAT (for --log-format) must be one of" in err


def test_global_options_before_or_after_the_command(cli: Cli, prefix: str) -> None:
    assert cli.json("--prefix", prefix, "queues") == cli.json("queues", "--prefix", prefix)
    assert cli("--json", "dead", "list")[1] == cli("dead", "list", "--json")[1]


def test_unreachable_redis_is_exit_3_naming_the_masked_url(cli: Cli) -> None:
    code, _, err = cli(
        "queues", "--redis-url", "redis://:s3cret@127.0.0.1:1/0", "--connect-timeout", "0.5"
    )
    assert code == EXIT_UNAVAILABLE and "s3cret" not in err
    assert "redis://:***@127.0.0.1:1/0 is unavailable" in err and ": )" not in err


def test_help_lists_every_environment_variable_and_the_exit_codes() -> None:
    from spool_console.options import OPTIONS

    res = subprocess.run(
        [sys.executable, "-m", "spool_console.cli", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0
    for opt in OPTIONS:
        assert opt.env in res.stdout, opt.flag
    assert "3 Redis unreachable" in res.stdout
    version = subprocess.run(
        [sys.executable, "-m", "spool_console.cli", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert version.returncode == 0 and version.stdout.startswith("spool-console ")
    assert "textual" not in subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spool_console.cli", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    ).stderr


def test_readme_lists_every_option() -> None:
    from spool_console.options import options_table

    assert options_table() in (ROOT / "README.md").read_text()


def test_bench_types_match_the_engine() -> None:
    from engine.bench import TYPES
    from spool_console.bench_cmd import TYPES as CLI_TYPES

    assert CLI_TYPES == TYPES


async def _publish_schedules(redis_url: str, prefix: str) -> None:
    """What a worker does at start: publish its periodic tasks (an hourly and a nightly one)."""
    from engine import TaskContext, task
    from engine.task import TaskRegistry
    from engine.worker.pool import PoolSettings, WorkerPool

    reg = TaskRegistry()

    @task(name="hourly", every=3600, registry=reg)
    async def hourly(ctx: TaskContext) -> None: ...

    @task(name="nightly", cron="0 3 * * *", queue="reports", registry=reg)
    async def nightly(ctx: TaskContext) -> None: ...

    redis = Redis.from_url(redis_url)
    broker = make_broker(redis, prefix)
    pool = WorkerPool(broker, PoolSettings(concurrency=1, idle_block_s=0.05), registry=reg)
    try:
        await pool.start()
        deadline = time.monotonic() + 5
        while await redis.hlen(broker.globals.schedules) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await pool.stop(grace_s=0.5)
        await redis.aclose()


def test_schedules_lists_what_workers_publish(cli: Cli, redis_url: str, prefix: str) -> None:
    code, out, _ = cli("schedules")
    assert code == 0 and out.startswith("no periodic tasks")
    asyncio.run(_publish_schedules(redis_url, prefix))
    listed = cli.json("schedules")["schedules"]
    assert [(s["name"], s["queue"], s.get("every_s"), s.get("cron")) for s in listed] == [
        ("hourly", "default", 3600.0, None),
        ("nightly", "reports", None, "0 3 * * *"),
    ]
    assert all(s["next_run_ms"] > time.time() * 1000 for s in listed)
    code, out, _ = cli("schedules")
    header, *rows = out.splitlines()
    assert code == 0 and header.split()[:3] == ["TASK", "QUEUE", "WHEN"]
    assert "every 3600 s" in rows[0] and "cron 0 3 * * *" in rows[1]


def test_cancel_by_id(cli: Cli, redis_url: str, prefix: str) -> None:
    later = cli.json("task", "enqueue", "spool.noop", "--queue", "mail", "--delay", "60")
    assert cli.json("cancel", later["id"]) == {
        "id": later["id"],
        "cancelled": True,
        "state": "cancelled",
    }
    code, out, _ = cli("cancel", later["id"], "--queue", "mail")
    assert (code, out) == (0, f"{later['id']}: nothing to do (cancelled)\n")
    code, _, err = cli("cancel", "no-such-task")
    assert code == EXIT_NOT_FOUND and "no task no-such-task" in err
    entries = _audit_log(redis_url, prefix)
    assert [(e.action, e.via) for e in entries][:2] == [("cancel", "cli"), ("cancel", "cli")]
    assert entries[1].scope == f"mail/{later['id']}" and entries[1].result.startswith("cancelled")


def test_audit_lists_operator_actions_newest_first(cli: Cli) -> None:
    assert cli("audit") == (0, "no action recorded yet\n", "")
    cli("pause", "mail")
    cli("resume", "mail")
    entries = cli.json("audit")["entries"]
    assert [(e["action"], e["scope"], e["via"]) for e in entries] == [
        ("resume", "queue mail", "cli"),
        ("pause", "queue mail", "cli"),
    ]
    assert [e["id"] for e in cli.json("audit", "--limit", "1")["entries"]] == [entries[0]["id"]]
    code, out, _ = cli("audit")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["WHEN", "ACTION", "SCOPE"]
    code, _, err = cli("audit", "--limit", "0")
    assert code == EXIT_USAGE and "--limit" in err and len(err.splitlines()) == 1
