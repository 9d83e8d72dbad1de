"""Flow control on the command line: unique enqueues, queue weights and max_wait flags."""

from __future__ import annotations

import pytest
from test_cli_commands import Cli, cli  # noqa: F401 - the fixture

from spool_console.cli import build_parser
from spool_console.options import UsageError
from spool_console.settings import resolve


def test_unique_enqueue_from_the_command_line(cli: Cli) -> None:  # noqa: F811
    first = cli.json("task", "enqueue", "report.build", "--args", '["d"]', "--unique-for", "60")
    again = cli.json("task", "enqueue", "report.build", "--args", '["d"]', "--unique-for", "60")
    assert first == again
    for argv in (
        ("task", "enqueue", "x", "--unique-for", "0"),
        ("task", "enqueue", "x", "--unique-key", "k"),  # needs --unique-for
        ("task", "enqueue", "x", "--unique-for", "5", "--unique-until", "later"),
    ):
        code, _, err = cli(*argv)
        assert code == 2 and len(err.splitlines()) == 1, (argv, err)


def test_queue_weights_and_max_wait_reach_the_pool_settings() -> None:
    args = build_parser().parse_args(
        ["worker", "--queue", "images:3", "--queue", "mail", "--max-wait", "30"]
    )
    pool = resolve(args, env={}).pool_settings()
    assert (pool.queues, pool.queue_weights, pool.max_wait_s) == (("images", "mail"), (3, 1), 30)
    with pytest.raises(UsageError):
        resolve(build_parser().parse_args(["worker", "--queue", "a:0"]), env={})
