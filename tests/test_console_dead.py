"""Console screen 3 (dead letters) driven with Pilot against the real server."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.broker import Broker
from engine.config import EngineConfig
from engine.dead import list_dead
from engine.queues import queue_stats, task_status
from engine.task import TaskState
from spool_console.screens.confirm import ConfirmScreen
from spool_console.screens.dead import DeadScreen
from spool_console.screens.detail import DetailScreen
from spool_console.testing import bury, make_app, make_settings, screen_text, wait_until
from widgets.vim_table import VimTable

Q = "default"


async def seed(redis: Redis, prefix: str, items: list[tuple[str, str]]) -> list[str]:
    return await bury(Broker(redis, EngineConfig(prefix=prefix)), Q, items)


def dead_rows(app) -> list[str]:
    return app.screen.query_one("#dead", VimTable).row_keys()


async def open_dead(pilot, expected: int) -> DeadScreen:
    await pilot.press("3")
    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, DeadScreen) and len(dead_rows(app)) == expected,
        what=f"{expected} dead rows",
    )
    return app.screen


async def test_filter_then_requeue_one_makes_it_pending(redis_url, prefix, redis) -> None:
    ids = await seed(
        redis,
        prefix,
        [("billing.charge", "card declined"), ("mail.send", "smtp 421"), ("mail.send", "smtp 450")],
    )
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        screen = await open_dead(pilot, 3)
        await pilot.press("slash", *"billing", "enter")
        await wait_until(pilot, lambda: len(dead_rows(app)) == 1, what="filtered to one row")
        assert "1 matching text='billing'" in str(screen.query_one("#scope").render())
        await pilot.press("r")
        broker = Broker(redis, EngineConfig(prefix=prefix))
        await wait_until(
            pilot,
            lambda: any("requeued 1" in n.message for n in app._notifications),
            what="requeue notification",
        )
        info = await task_status(broker, ids[0], Q)
        assert info is not None and info.state is TaskState.PENDING
        assert (await queue_stats(broker, Q)).dead == 2
        # Counts update live: the filtered table empties, the status bar follows.
        await wait_until(pilot, lambda: len(dead_rows(app)) == 0, what="row gone")
        await wait_until(pilot, lambda: app.host.snapshot.dead_count == 2, what="dead count 2")


async def test_bulk_confirmation_cancels_cleanly(redis_url, prefix, redis) -> None:
    await seed(
        redis, prefix, [("a.task", "boom one"), ("b.task", "boom two"), ("c.task", "boom three")]
    )
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await open_dead(pilot, 3)
        await pilot.press("R")
        await wait_until(
            pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm screen"
        )
        confirm = app.screen
        assert confirm.focused is not None and confirm.focused.id == "cancel"  # focus on Cancel
        assert "3 dead letter(s) matching everything" in str(confirm.query_one("#scope").render())
        await pilot.press("enter")  # presses the focused Cancel button
        await wait_until(
            pilot, lambda: isinstance(app.screen, DeadScreen), what="back on dead screen"
        )
        await wait_until(pilot, lambda: any("cancelled" in n.message for n in app._notifications))
        broker = Broker(redis, EngineConfig(prefix=prefix))
        assert (await queue_stats(broker, Q)).dead == 3
        assert sum((await queue_stats(broker, Q)).depth_by_level.values()) == 0


async def test_group_requeue_touches_only_its_group(redis_url, prefix, redis) -> None:
    await seed(
        redis,
        prefix,
        [
            ("img.resize", "image 7f3a not found"),
            ("img.resize", "image 7f3a not found"),
            ("pay.charge", "gateway 502"),
        ],
    )
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        screen = await open_dead(pilot, 3)
        groups = screen.query_one("#groups", VimTable)
        await wait_until(pilot, lambda: groups.row_count == 2, what="two groups")
        await pilot.press("e")  # focus the error groups
        assert groups.has_focus
        # Move to the group of the payment error, then choose it.
        target = next(g for g in screen.groups if "gateway" in g.sample_error)
        while groups.cursor_key != target.fingerprint:
            await pilot.press("j")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(dead_rows(app)) == 1, what="group filter applied")
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "group=" in str(app.screen.query_one("#scope").render())
        await pilot.press("y")
        await wait_until(pilot, lambda: any("requeued 1" in n.message for n in app._notifications))
        broker = Broker(redis, EngineConfig(prefix=prefix))
        stats = await queue_stats(broker, Q)
        assert stats.dead == 2 and stats.pending == 1
        remaining = {item.name for item in (await list_dead(broker)).items}
        assert remaining == {"img.resize"}


async def test_mark_two_and_delete_them(redis_url, prefix, redis) -> None:
    await seed(redis, prefix, [("x.one", "e1"), ("x.two", "e2"), ("x.three", "e3")])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        screen = await open_dead(pilot, 3)
        await pilot.press("space", "space")
        assert len(screen.marked) == 2
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = str(app.screen.query_one("#scope").render())
        assert "2 marked" in text and "Restorable for 10 min from the audit trail (a)" in text
        await pilot.press("tab", "enter")  # from Cancel to Delete, press it
        await wait_until(pilot, lambda: any("deleted 2" in n.message for n in app._notifications))
        broker = Broker(redis, EngineConfig(prefix=prefix))
        assert (await queue_stats(broker, Q)).dead == 1
        await wait_until(pilot, lambda: len(dead_rows(app)) == 1)


async def test_delete_all_matching_filter(redis_url, prefix, redis) -> None:
    await seed(redis, prefix, [("keep.me", "fine"), ("drop.me", "bad"), ("drop.me", "bad")])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await open_dead(pilot, 3)
        await pilot.press("slash", *"drop", "enter")
        await wait_until(pilot, lambda: len(dead_rows(app)) == 2)
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: any("deleted 2" in n.message for n in app._notifications))
        await pilot.press("escape")  # clears the filter, stays on the screen
        await wait_until(pilot, lambda: len(dead_rows(app)) == 1)
        assert isinstance(app.screen, DeadScreen)


async def test_enter_shows_item_whole_with_traceback(redis_url, prefix, redis) -> None:
    await seed(redis, prefix, [("report.build", "division by zero in totals")])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await open_dead(pilot, 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        text = screen_text(app)
        assert "report.build" in text and "Traceback" in text and "division by zero" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DeadScreen))


async def test_read_only_hides_destructive_actions(redis_url, prefix, redis) -> None:
    await seed(redis, prefix, [("ro.task", "nope")])
    app = make_app(make_settings(redis_url, prefix, read_only=True))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_dead(pilot, 1)
        active = {b.binding.action for b in screen.active_bindings.values()}
        assert not active & {"requeue", "requeue_all", "delete", "delete_all"}
        assert "filter" in active
        await pilot.press("R", "r", "D")
        assert isinstance(app.screen, DeadScreen)
        assert (await queue_stats(Broker(redis, EngineConfig(prefix=prefix)), Q)).dead == 1
        assert "READ-ONLY" in screen_text(app)


async def test_bulk_action_acts_on_exactly_the_confirmed_scope(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await seed(redis, prefix, [("old.fail", "boom")] * 3)
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await open_dead(pilot, 3)
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "3 dead letter(s) matching everything" in str(
            app.screen.query_one("#scope").render()
        )
        # Two more die while the operator reads the confirmation.
        await seed(redis, prefix, [("new.fail", "boom")] * 2)
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: any(
                "requeued 3 · 2 newer left alone" in n.message for n in app._notifications
            ),
            what="result with the newer count",
        )
        stats = await queue_stats(broker, Q)
        assert (stats.dead, stats.pending) == (2, 3)
        assert {i.name for i in (await list_dead(broker)).items} == {"new.fail"}


async def test_clearing_a_group_filter_moves_the_groups_cursor_off_it(
    redis_url, prefix, redis
) -> None:
    await seed(redis, prefix, [("a.fail", "first error"), ("b.fail", "other error")] * 1)
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_dead(pilot, 2)
        groups = screen.query_one("#groups", VimTable)
        await wait_until(pilot, lambda: groups.row_count == 2, what="two groups")
        await pilot.press("e", "j", "enter")
        await wait_until(pilot, lambda: len(dead_rows(app)) == 1, what="group chosen")
        assert groups.cursor_row == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(dead_rows(app)) == 2, what="filter cleared")
        assert groups.cursor_row == 0


async def test_error_groups_show_whole_messages_at_160_columns(redis_url, prefix, redis) -> None:
    message = "payment gateway returned 502 for order 1234"
    await seed(redis, prefix, [("mail.send", message)])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_dead(pilot, 1)
        groups = screen.query_one("#groups", VimTable)
        await wait_until(pilot, lambda: groups.row_count == 1, what="one group")
        await wait_until(pilot, lambda: message in screen_text(app), what="whole message")


async def test_the_highlighted_group_shows_its_error_whole_under_the_table(
    redis_url, prefix, redis
) -> None:
    # Longer than the table's Error column at 160 columns (about 45 characters) and than its
    # 80-character cut: the line under the table carries all of it.
    long_error = "upstream inventory service refused the reservation: " + "x" * 60 + " END"
    await seed(redis, prefix, [("stock.reserve", long_error), ("mail.send", "smtp 421 busy")])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_dead(pilot, 2)
        groups = screen.query_one("#groups", VimTable)
        detail = screen.query_one("#group-error")
        await wait_until(pilot, lambda: groups.row_count == 2, what="two groups")
        await pilot.press("e")
        for _ in range(2):  # each row in turn: the line follows the cursor
            group = next(g for g in screen.groups if g.fingerprint == groups.cursor_key)
            await wait_until(
                pilot,
                lambda g=group: g.sample_error in str(detail.render()),
                what=f"whole error of {group.tasks}",
            )
            assert f"task {group.tasks[0]}" in str(detail.render())
            await pilot.press("j")
        cells = [str(c) for row in (0, 1) for c in groups.get_row_at(row)]
        assert long_error not in "".join(cells)  # the table itself cuts it


async def test_at_80_columns_the_groups_take_the_width_and_hide_the_letters(
    redis_url, prefix, redis
) -> None:
    long_error = "upstream inventory service refused the reservation for order 88231"
    await seed(redis, prefix, [("stock.reserve", long_error), ("mail.send", "smtp 421 busy")])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_dead(pilot, 2)
        box, items = screen.query_one("#groups-box"), screen.query_one("#items-box")
        assert not box.display
        await pilot.press("e")
        await wait_until(pilot, lambda: box.display and box.size.width >= 70, what="wide groups")
        assert not items.display
        # The letters are out of sight, so nothing acts on the one under their cursor.
        assert not screen.check_action("delete", ()) and not screen.check_action("mark", ())
        groups = screen.query_one("#groups", VimTable)
        await wait_until(pilot, lambda: groups.row_count == 2, what="two groups")
        by_key = {g.fingerprint: g for g in screen.groups}
        while "inventory" not in by_key[groups.cursor_key].sample_error:
            await pilot.press("j")
        await wait_until(pilot, lambda: long_error in screen_text(app), what="its whole error")
        await pilot.press("enter")  # choose it: back to the letters, filtered
        await wait_until(pilot, lambda: len(dead_rows(app)) == 1, what="group applied")
        assert items.display and not box.display
        assert screen.check_action("delete", ())
