"""Console screen 2 (queues): pause/resume, the enqueue form, a queue's page, a task whole."""

from __future__ import annotations

import orjson

from engine.broker import Broker
from engine.config import EngineConfig
from engine.queues import queue_stats, task_status
from engine.task import TaskSpec, TaskState
from spool_console.screens.detail import DetailScreen
from spool_console.screens.enqueue_form import EnqueueScreen
from spool_console.screens.find_task import FindTaskScreen
from spool_console.screens.queue_detail import QueueDetailScreen
from spool_console.screens.queues import QueuesScreen
from spool_console.testing import make_app, make_settings, screen_text, wait_until
from widgets.vim_table import VimTable


async def open_queues(pilot, queue: str = "default") -> QueuesScreen:
    await pilot.press("2")
    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, QueuesScreen)
            and queue in app.screen.query_one("#queues", VimTable).row_keys()
        ),
        what=f"queue {queue} listed",
    )
    return app.screen


async def select_queue(pilot, screen: QueuesScreen, queue: str) -> None:
    """Move the queues table's cursor down to `queue`."""
    table = screen.query_one("#queues", VimTable)
    while table.cursor_key != queue:
        await pilot.press("j")


async def open_queue_page(pilot, screen: QueuesScreen, queue: str) -> QueueDetailScreen:
    """Select `queue` on the queues screen and open its page."""
    await select_queue(pilot, screen, queue)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, QueueDetailScreen))
    return pilot.app.screen


async def test_pause_and_resume_from_queues_screen(redis_url, prefix, redis) -> None:
    app = make_app(make_settings(redis_url, prefix))
    broker = Broker(redis, EngineConfig(prefix=prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await open_queues(pilot)
        await pilot.press("p")
        await wait_until(
            pilot, lambda: any("default paused" in n.message for n in app._notifications)
        )
        assert (await queue_stats(broker, "default")).paused
        await wait_until(pilot, lambda: "‖ paused" in screen_text(app), what="paused shown")
        await pilot.press("p")
        await wait_until(
            pilot, lambda: any("default resumed" in n.message for n in app._notifications)
        )
        assert not (await queue_stats(broker, "default")).paused


async def test_enqueue_form_puts_tasks_in_redis(redis_url, prefix, redis) -> None:
    app = make_app(make_settings(redis_url, prefix))
    broker = Broker(redis, EngineConfig(prefix=prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await open_queues(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, EnqueueScreen))
        form = app.screen
        form.query_one("#args").value = "[5]"
        form.query_one("#count").value = "3"
        form.query_one("#name").value = "spool.sleep"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("enqueued 3 × spool.sleep" in n.message for n in app._notifications)
        )
        stats = await queue_stats(broker, "default")
        assert stats.depth_by_level["default"] == 3


async def test_enqueue_form_rejects_bad_json_and_cancels(redis_url, prefix, redis) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await open_queues(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, EnqueueScreen))
        app.screen.query_one("#args").value = "[not json"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, EnqueueScreen)
        assert "not JSON" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, QueuesScreen))
    stats = await queue_stats(Broker(redis, EngineConfig(prefix=prefix)), "default")
    assert stats.pending == 0


async def test_queue_page_and_task_detail(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await broker.enqueue(
        [
            TaskSpec(
                "shop.pack", args=[7], kwargs={"why": "detail"}, queue="orders", priority="high"
            ),
            TaskSpec("spool.noop", queue="orders", priority="low"),
        ]
    )
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queues(pilot, "orders")
        page = await open_queue_page(pilot, screen, "orders")
        tasks = page.query_one("#tasks", VimTable)
        await wait_until(pilot, lambda: tasks.row_count == 2, what="two tasks peeked")
        assert "[7]" in screen_text(app) and "[   7 ]" not in screen_text(app)  # compact args
        await pilot.press("enter")  # the high task is first in fetch order
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await wait_until(pilot, lambda: "shop.pack" in screen_text(app), what="task shown")
        text = screen_text(app)
        assert "shop.pack" in text and '"why": "detail"' in text and "pending" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, QueueDetailScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, QueuesScreen))
        await pilot.press("escape")  # escape on a top screen never quits
        assert app.is_running and isinstance(app.screen, QueuesScreen)


async def test_x_cancels_a_task_and_schedules_are_listed(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    (first, _second) = await broker.enqueue(
        [TaskSpec("shop.pack", queue="orders"), TaskSpec("shop.ship", queue="orders")]
    )
    # As a worker publishes a periodic task it runs (engine/worker/schedules.py).
    await redis.hset(
        broker.globals.schedules,
        "digest.send",
        orjson.dumps({"name": "digest.send", "every_s": 60, "queue": "mail"}),
    )
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queues(pilot, "orders")
        await wait_until(
            pilot, lambda: "digest.send every 60 s → mail" in screen_text(app), what="schedule"
        )
        page = await open_queue_page(pilot, screen, "orders")
        tasks = page.query_one("#tasks", VimTable)
        await wait_until(pilot, lambda: tasks.row_count == 2, what="two tasks peeked")
        assert tasks.cursor_key == first
        await pilot.press("x")
        await wait_until(pilot, lambda: tasks.row_count == 1, what="the cancelled task left")
        info = await task_status(broker, first)
        assert info is not None and info.state is TaskState.CANCELLED


async def test_queues_screen_says_why_a_queue_is_not_moving(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await broker.enqueue([TaskSpec("shop.pack", queue="orders") for _ in range(2)])
    app = make_app(make_settings(redis_url, prefix))  # no local pool: nobody reads "orders"
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(
            pilot,
            lambda: "⚠ not moving: orders: no live worker reads this queue" in screen_text(app),
            what="the dashboard's not-moving line",
        )
        screen = await open_queues(pilot, "orders")
        await select_queue(pilot, screen, "orders")
        await wait_until(
            pilot,
            lambda: (
                "orders: not moving · no live worker reads this queue (2 pending)"
                in screen_text(app)
            ),
            what="the diagnosis under the table",
        )
        assert "no consumer" in screen_text(app)  # the State cell, not "running"
        assert "· oldest pending " in screen_text(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, QueueDetailScreen))
        await wait_until(
            pilot, lambda: "no live worker reads this queue" in screen_text(app), what="head"
        )


async def test_queue_page_pages_pending_scheduled_and_active(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await broker.enqueue([TaskSpec("shop.pack", args=[i], queue="orders") for i in range(62)])
    await broker.fetch("orders", 2, "w-test")  # two running
    await broker.enqueue([TaskSpec("shop.ship", queue="orders", delay_s=600) for _ in range(3)])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_queues(pilot, "orders")
        page = await open_queue_page(pilot, screen, "orders")
        box, tasks = page.query_one("#tasks-box"), page.query_one("#tasks", VimTable)

        def title_has(text: str) -> bool:
            return text in str(box.border_title)

        await wait_until(pilot, lambda: tasks.row_count == 20, what="the next 20 of default")
        await pilot.press("v", "v")  # past "pending high" to "pending default"
        await wait_until(pilot, lambda: title_has("Pending default (fetch order) · 1–50 of 60"))
        assert tasks.row_count == 50
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: title_has("51–60 of 60"), what="second page")
        assert tasks.row_count == 10
        await pilot.press("right_square_bracket")  # no third page: stays
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: title_has("1–50 of 60"), what="back to the first page")
        await pilot.press("v", "v")
        await wait_until(pilot, lambda: title_has("Scheduled and retrying") and title_has("of 3"))
        assert tasks.row_count == 3 and "due in 5" in screen_text(app)
        await pilot.press("v")
        await wait_until(pilot, lambda: title_has("Active") and title_has("1–2 of 2"))
        assert "lease " in screen_text(app)
        await pilot.press("v")
        await wait_until(pilot, lambda: title_has("Next 20 tasks"), what="back to the start")


async def test_t_finds_a_task_by_id_from_any_screen(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    (task_id,) = await broker.enqueue([TaskSpec("shop.pack", args=[41], queue="orders")])
    app = make_app(
        make_settings(redis_url, prefix),
    )
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("3")  # from the dead letters screen
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, FindTaskScreen))
        await pilot.press(*task_id, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), what="task shown")
        await wait_until(
            pilot, lambda: "shop.pack" in screen_text(app) and "41" in screen_text(app)
        )
        await pilot.press("escape")
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, FindTaskScreen))
        await pilot.press(*"nope", "enter")
        await wait_until(
            pilot, lambda: any("no task nope" in n.message for n in app._notifications)
        )
