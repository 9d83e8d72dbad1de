"""Console screen 4 (workers): the fleet table and the local auto-scaler's controls."""

from __future__ import annotations

from spool_console.screens.workers import NumbersScreen, WorkersScreen
from spool_console.testing import make_app, make_settings, screen_text, wait_until
from widgets.vim_table import VimTable


def pool_snap(app):
    return app.host.pool.snapshot()


async def test_fleet_table_bounds_pin_unpin(redis_url, prefix) -> None:
    settings = make_settings(
        redis_url, prefix, workers=None, queues=("idle",), min_workers=2, max_workers=6
    )
    app = make_app(settings)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: isinstance(app.screen, WorkersScreen), what="screen 4")
        fleet = app.screen.query_one("#fleet", VimTable)
        await wait_until(
            pilot, lambda: app.host.pool is not None and fleet.row_count == 1, what="fleet row"
        )
        worker_id = app.host.pool.worker_id
        assert fleet.row_keys() == [worker_id]
        await wait_until(pilot, lambda: "this console" in screen_text(app))

        await pilot.press("plus")
        await wait_until(pilot, lambda: pool_snap(app).max_concurrency == 7, what="max 7")
        await pilot.press("minus", "minus")
        await wait_until(pilot, lambda: pool_snap(app).max_concurrency == 5, what="max 5")
        await pilot.press("greater_than_sign")
        await wait_until(pilot, lambda: pool_snap(app).min_concurrency == 3, what="min 3")
        await pilot.press("less_than_sign")
        await wait_until(pilot, lambda: pool_snap(app).min_concurrency == 2, what="min 2")

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, NumbersScreen))
        app.screen.query_one("#n0").value = "4"
        app.screen.query_one("#n1").value = "9"
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: (pool_snap(app).min_concurrency, pool_snap(app).max_concurrency) == (4, 9),
        )

        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, NumbersScreen))
        app.screen.query_one("#n0").value = "3"
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: pool_snap(app).pinned and pool_snap(app).concurrency == 3,
            what="pinned 3",
        )
        await wait_until(pilot, lambda: "PINNED" in screen_text(app), what="pinned shown")
        assert "pinned at 3 by operator" in screen_text(app)  # the decision and its reason

        await pilot.press("u")
        await wait_until(pilot, lambda: not pool_snap(app).pinned, what="unpinned")
        assert pool_snap(app).concurrency == 4  # clamped into the bounds 4–9
        assert isinstance(app.screen, WorkersScreen)


async def test_pool_keys_absent_without_local_pool(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix, workers=0))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("4")
        await wait_until(
            pilot, lambda: isinstance(app.screen, WorkersScreen) and app.host.snapshot.connected
        )
        actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not actions & WorkersScreen.POOL_ACTIONS
        await wait_until(pilot, lambda: "observing only" in screen_text(app))
