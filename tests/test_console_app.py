"""The console as a whole: help, palette, Redis down, layouts at 80×24 and 160×45, escape."""

from __future__ import annotations

import pytest

from engine.broker import Broker
from engine.config import EngineConfig
from engine.task import TaskSpec
from spool_console.screens.dashboard import DashboardScreen
from spool_console.screens.dead import DeadScreen
from spool_console.screens.help import HelpScreen
from spool_console.testing import bury, make_app, make_settings, screen_text, wait_until
from widgets.status_bar import StatusBar
from widgets.vim_table import VimTable

SCREENS = {
    "1": (
        "DashboardScreen",
        ["#throughput", "#latency", "#stages", "#depth", "#scaler"],
        ["Throughput", "Latency", "queue wait", "Depth per priority", "concurrency"],
    ),
    "2": ("QueuesScreen", ["#queues", "#queue-depth"], ["Queues", "default", "Wait p95"]),
    "3": ("DeadScreen", ["#dead"], ["Dead letters", "shop.fail", "matching"]),
    "4": ("WorkersScreen", ["#fleet", "#local-scaler"], ["Fleet", "this console", "concurrency"]),
    "5": ("BenchScreen", ["#form", "#bench-chart", "#this-report"], ["Benchmark", "quick", "Run"]),
}


async def test_help_lists_live_bindings(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: isinstance(app.screen, DeadScreen))
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = app.screen.query_one(VimTable)
        await wait_until(pilot, lambda: rows.row_count, what="the help table filled on mount")
        actions = {str(rows.get_row(k)[1]) for k in rows.row_keys()}
        assert {"Requeue", "Requeue all", "Delete all", "Filter", "Mark", "Help", "Quit"} <= actions
        keys = {str(rows.get_row(k)[0]) for k in rows.row_keys()}
        assert {"R", "D", "/", "?", "space"} <= {k for key in keys for k in key.split()}
        assert "Down" in actions  # j/k from the table come along
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DeadScreen))


async def test_palette_offers_every_screen_action(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: isinstance(app.screen, DeadScreen))
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Requeue", "Requeue all", "Delete", "Filter", "Queues", "Workers", "Help"} <= titles
        # Running a palette command runs the bound action.
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Workers")
        await cmd.callback()
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WorkersScreen")
        await pilot.press("colon")
        await wait_until(
            pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette via :"
        )
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await wait_until(
            pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette via ctrl+p"
        )


async def test_redis_down_is_shown_and_app_keeps_running(embedded_server_factory, prefix) -> None:
    server = embedded_server_factory()
    url = server.url
    server.stop()
    app = make_app(make_settings(url, prefix))
    async with app.run_test(size=(120, 30)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: app.host.snapshot.error, what="an error")
        await wait_until(pilot, lambda: bar.has_class("-down"), what="red status bar")
        await wait_until(pilot, lambda: "REDIS DOWN" in screen_text(app), what="says so")
        for key in "2345":
            await pilot.press(key)
        await pilot.press("1")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert app.is_running
        await wait_until(pilot, lambda: "REDIS DOWN" in screen_text(app), what="still says so")


async def test_recovers_when_redis_comes_back(embedded_server_factory, prefix) -> None:
    server = embedded_server_factory()
    url = server.url
    server.stop()
    app = make_app(make_settings(url, prefix))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.host.snapshot.error, what="down first")
        server.start()
        await wait_until(
            pilot, lambda: app.host.snapshot.connected, timeout_s=15, what="reconnected"
        )
        await wait_until(
            pilot, lambda: "connected" in screen_text(app) and "REDIS DOWN" not in screen_text(app)
        )


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_every_screen_renders_its_panels(size, redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await bury(
        broker, "default", [("shop.fail", "payment gateway returned 502"), ("shop.fail", "timeout")]
    )
    settings = make_settings(redis_url, prefix, workers=None, queues=("default",))
    app = make_app(settings)
    async with app.run_test(size=size) as pilot:
        await broker.enqueue(
            [TaskSpec("spool.sleep", args=[1], queue="default") for _ in range(200)]
        )
        await wait_until(
            pilot,
            lambda: (m := app.host.snapshot.metrics) is not None and m.counter("succeeded") >= 200,
            what="metrics with work done",
        )
        for key, (name, ids, words) in SCREENS.items():
            await pilot.press(key)
            await wait_until(pilot, lambda n=name: type(app.screen).__name__ == n, what=name)
            for wid in ids:
                widget = app.screen.query_one(wid)
                await wait_until(
                    pilot,
                    lambda w=widget: w.size.width > 0 and w.size.height > 0,
                    what=f"{name} {wid} visible at {size}",
                )
                assert widget.region.right <= size[0] and widget.region.bottom <= size[1]
            for word in words:
                await wait_until(
                    pilot,
                    lambda w=word: w.lower() in screen_text(app).lower(),
                    what=f"{word!r} on {name} at {size}",
                )
            assert app.screen.query_one(StatusBar).size.height == 1
            await pilot.press("escape")  # never quits
            assert app.is_running


async def test_read_only_hides_every_changing_action(redis_url, prefix) -> None:
    settings = make_settings(redis_url, prefix, read_only=True, workers=None, queues=("ro",))
    app = make_app(settings)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected)
        hidden = {
            "2": {"toggle_pause", "enqueue"},
            "4": {"max_up", "max_down", "min_up", "min_down", "bounds", "pin", "unpin"},
            "5": {"run"},
        }
        for key, actions in hidden.items():
            await pilot.press(key)
            await pilot.pause()
            active = {b.binding.action for b in app.screen.active_bindings.values()}
            assert not active & actions, (key, active & actions)
        await pilot.press("2", "p", "n")
        assert type(app.screen).__name__ == "QueuesScreen"  # no form opened, nothing paused


async def test_http_flag_serves_the_api_beside_the_console(redis_url, prefix) -> None:
    import aiohttp

    from engine.embedded import find_free_port

    port = find_free_port()
    app = make_app(make_settings(redis_url, prefix, http=f"127.0.0.1:{port}"))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.host.snapshot.connected and app.host._http is not None)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200


@pytest.mark.parametrize("after_s", [0.0, 0.03])
@pytest.mark.parametrize("mode", ["queues", "bench"])
@pytest.mark.parametrize("how", ["ctrl+q", "pilot"])
async def test_leaving_during_start_up_is_clean(
    redis_url, prefix, how: str, mode: str, after_s: float
) -> None:
    """Leaving while start-up still builds the screens must not raise from a widget whose
    children are already gone: we leave `after_s` into the mount of `mode`'s screen (one with
    a table, one with a Select), by ctrl+q or by the Pilot shutting the app down."""
    import asyncio

    app = make_app(make_settings(redis_url, prefix), warm_up=True)
    mounting = asyncio.Event()
    switch_mode = app.switch_mode

    def spy(to: str):  # a poll would miss a mount that takes 20 ms
        if to == mode:
            mounting.set()
        return switch_mode(to)

    app.switch_mode = spy  # type: ignore[method-assign]
    async with app.run_test(size=(120, 30)) as pilot:
        await asyncio.wait_for(mounting.wait(), timeout=10)
        await asyncio.sleep(after_s)
        if how == "ctrl+q":
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: not app.is_running, what="the app gone")
    assert app.return_code in (0, None)
