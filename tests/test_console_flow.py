"""Console: a queue's flow control is visible where an operator looks."""

from __future__ import annotations

from engine import flow
from engine.broker import Broker
from engine.config import EngineConfig
from engine.task import TaskRegistry, TaskSpec, task
from spool_console.screens.queue_detail import QueueDetailScreen
from spool_console.screens.queues import QueuesScreen
from spool_console.testing import make_app, make_settings, screen_text, wait_until
from widgets.vim_table import VimTable


async def test_queue_list_and_page_show_limits_and_held_tasks(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    reg = TaskRegistry()

    @task(name="mail.send", rate_limit="50/s", registry=reg)
    async def send(to: str) -> None:
        return None

    @task(name="sync.account", concurrency=1, concurrency_key="account", registry=reg)
    async def sync(account: str) -> None:
        return None

    await flow.publish_limits(broker, ["default"], reg)
    await broker.enqueue([TaskSpec("mail.send", args=[str(i)]) for i in range(4)])
    await broker.enqueue([TaskSpec("sync.account", args=["a"]) for _ in range(3)])
    assert len((await broker.fetch("default", 20, "w")).tasks) == 2  # 3 rate, 2 parked
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("2")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, QueuesScreen)
            and "default" in app.screen.query_one("#queues", VimTable).row_keys(),
            what="the queue listed",
        )
        await wait_until(pilot, lambda: "r 3 · c 2" in screen_text(app), what="held column")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, QueueDetailScreen))
        await wait_until(
            pilot, lambda: "waiting: 3 on a rate limit" in screen_text(app), what="limits panel"
        )
        text = screen_text(app)
        assert "mail.send" in text and "50/s" in text
        assert "1 at once per account" in text and "2 on a concurrency limit" in text
