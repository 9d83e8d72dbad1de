"""The defects a newcomer hit (issue 13, "Defects seen"): each test failed before its fix."""

from __future__ import annotations

import re

from textual.widgets import Input, Label, Select

from spool_console.screens.bench import BenchScreen
from spool_console.screens.help import HelpScreen
from spool_console.screens.workers import NumbersScreen, WorkersScreen
from spool_console.testing import make_app, make_settings, screen_text, wait_until
from widgets.status_bar import StatusBar
from widgets.vim_table import VimTable


def pool_bounds(app) -> tuple[int, int]:
    snap = app.host.pool.snapshot()
    return snap.min_concurrency, snap.max_concurrency


async def test_quick_presses_on_workers_are_each_one_step(redis_url, prefix) -> None:
    settings = make_settings(
        redis_url, prefix, workers=None, queues=("idle",), min_workers=1, max_workers=7
    )
    app = make_app(settings, interval_s=5.0)  # snapshots far apart: presses outrun them
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.host.pool is not None and app.ready, what="pool")
        await pilot.press(*["plus"] * 10)
        await wait_until(pilot, lambda: pool_bounds(app) == (1, 17), what="max 17")
        await wait_until(pilot, lambda: "bounds now 1–17" in screen_text(app), what="toast")
        await pilot.press(*["minus"] * 40)
        await wait_until(pilot, lambda: pool_bounds(app) == (1, 1), what="max 1")
        await wait_until(
            pilot, lambda: re.search(r"bounds now 1–1\b", screen_text(app)), what="toast"
        )


async def test_bounds_form_keeps_bad_input_open_with_the_reason(redis_url, prefix) -> None:
    settings = make_settings(redis_url, prefix, workers=None, queues=("idle",), max_workers=6)
    app = make_app(settings)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("4")
        await wait_until(pilot, lambda: app.host.pool is not None and app.ready, what="pool")
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, NumbersScreen))
        form = app.screen
        for lo, hi, reason in (("9", "3", "must not exceed"), ("1", "99999999", "at most")):
            form.query_one("#n0").value = lo
            form.query_one("#n1").value = hi
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert app.screen is form, "the dialog closed and lost the input"
            assert reason in str(form.query_one("#error", Label).render())
            assert form.query_one("#n0").value == lo
        form.query_one("#n1").value = "12"
        await pilot.press("enter")
        await wait_until(pilot, lambda: pool_bounds(app) == (1, 12), what="bounds 1–12")
        assert isinstance(app.screen, WorkersScreen)


async def open_bench(pilot, app) -> BenchScreen:
    await pilot.press("5")
    await wait_until(
        pilot, lambda: isinstance(app.screen, BenchScreen) and app.host.snapshot.connected
    )
    return app.screen


async def test_bench_form_refuses_bad_numbers_and_enter_runs(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        screen = await open_bench(pilot, app)
        field = screen.query_one("#f-tasks", Input)
        for bad in ("-5", "0", "ten"):
            field.value = bad
            field.focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: "Tasks:" in screen_text(app), what="reason shown")
            assert screen.job is None, f"tasks {bad} ran a benchmark"
        field.value = "50"
        screen.query_one("#f-workers", Input).value = "2"
        field.focus()
        await pilot.press("enter")  # enter in a field runs the form
        await wait_until(pilot, lambda: screen.job is not None, what="run started by enter")
        await wait_until(pilot, lambda: screen.report is not None, timeout_s=60, what="report")
        assert screen.report.tasks == 50


async def test_cancelled_run_is_no_baseline_and_runs_compare_within_a_type(
    redis_url, prefix, tmp_path
) -> None:
    store = tmp_path / "bench-last.json"
    app = make_app(make_settings(redis_url, prefix), bench_store=store)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_bench(pilot, app)
        screen.query_one("#f-tasks", Input).value = "40"
        screen.query_one("#f-workers", Input).value = "2"
        screen.set_focus(None)
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.report is not None, timeout_s=60, what="quick")
        quick = screen.report
        # A sustained run, cancelled early: reported, but no baseline and no error rate.
        screen.query_one("#type", Select).value = "sustained"
        await pilot.pause()
        screen.query_one("#f-rate", Input).value = "100"
        screen.query_one("#f-duration_s", Input).value = "60"
        screen.query_one("#f-workers", Input).value = "2"
        screen.set_focus(None)
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: screen.job.latest is not None and screen.job.latest.done > 0,
            timeout_s=30,
            what="sustained under way",
        )
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: screen.report is not quick, timeout_s=30, what="cancelled report"
        )
        cancelled = screen.report
        assert cancelled.cancelled and cancelled.failed == 0
        assert cancelled.error_rate == 0.0
        assert "no previous sustained run" in str(screen.query_one("#prev-report").render())
        assert screen.previous_runs == {"quick": quick}
        # The next quick run compares with the last quick run, not the cancelled sustained one.
        screen.query_one("#type", Select).value = "quick"
        await pilot.pause()
        screen.query_one("#f-tasks", Input).value = "30"
        screen.query_one("#f-workers", Input).value = "2"
        screen.set_focus(None)
        await pilot.press("r")
        await wait_until(
            pilot, lambda: screen.report not in (quick, cancelled), timeout_s=60, what="quick 2"
        )
        assert str(screen.query_one("#prev-report").render()).startswith("# compare: quick")
        assert "sustained" not in str(screen.query_one("#prev-report").render())


async def test_bench_help_lists_screen_keys_not_the_dropdown_s(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_bench(pilot, app)
        screen.query_one("#type", Select).focus()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = app.screen.query_one(VimTable).row_keys()
        assert "Cancel run|this screen" in rows, "escape is listed even when no run is going"
        assert all(r.split("|")[1] in ("this screen", "everywhere", "system") for r in rows), rows


async def test_palette_offers_every_screen_s_actions(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await open_bench(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Requeue (Dead)" in titles and "Pause/resume (Queues)" in titles, titles
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Filter (Dead)")
        await command.callback()
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeadScreen")
        await wait_until(pilot, lambda: app.screen.query_one("#filter").has_focus, what="filter")


async def test_header_keeps_time_under_a_dialog_and_fits_80_columns(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected)
        await wait_until(pilot, lambda: " up " in screen_text(app).splitlines()[0], what="up")
        header = screen_text(app).splitlines()[0]
        assert "dead 0" in header and " up " in header, header
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        bar = app.screen_stack[-2].query_one(StatusBar)
        before = bar.uptime_s
        await wait_until(pilot, lambda: bar.uptime_s >= before + 1.0, what="uptime moves on")


async def test_empty_dashboard_says_what_to_do_next(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected)
        await wait_until(pilot, lambda: "--demo" in screen_text(app), what="next-step hint")


async def test_redis_down_is_said_not_shown_as_zero(embedded_server_factory, prefix) -> None:
    server = embedded_server_factory()
    app = make_app(make_settings(server.url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected)
        await pilot.press("3")
        await wait_until(pilot, lambda: "matching everything" in screen_text(app))
        server.stop()
        await wait_until(
            pilot, lambda: not app.host.snapshot.connected, timeout_s=20, what="seen down"
        )
        await wait_until(pilot, lambda: "Redis unreachable" in screen_text(app), what="said")
        text = screen_text(app)
        assert "matching everything" not in text
        header = text.splitlines()[0]
        assert "REDIS DOWN —" in header and len(app.host.snapshot.error or "") > 0
