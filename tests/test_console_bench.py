"""Console screen 5 (benchmarks): a tiny run to the end, its report, the previous run's deltas."""

from __future__ import annotations

from textual.widgets import Static

from engine.bench.params import BenchParams
from spool_console.screens.bench import BenchScreen
from spool_console.testing import make_app, make_settings, screen_text, wait_until


async def run_once(pilot, screen: BenchScreen, tasks: int) -> None:
    screen.query_one("#f-tasks").value = str(tasks)
    screen.query_one("#f-workers").value = "2"
    await pilot.press("r")
    await wait_until(pilot, lambda: screen.job is not None, what="job started")
    job = screen.job
    await wait_until(
        pilot,
        lambda: (
            job.future.done() and screen.report is not None and screen.previous is screen.report
        ),
        timeout_s=60,
        what="benchmark finished",
    )


async def test_tiny_benchmark_runs_to_the_end_and_compares(redis_url, prefix, tmp_path) -> None:
    store = tmp_path / "bench-last.json"
    app = make_app(make_settings(redis_url, prefix), bench_store=store)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("5")
        await wait_until(
            pilot, lambda: isinstance(app.screen, BenchScreen) and app.host.snapshot.connected
        )
        screen = app.screen
        assert screen.params() == BenchParams.for_type("quick", workers=4, tasks=1000)
        await run_once(pilot, screen, 300)
        first = screen.report
        assert first.type == "quick" and first.completed == 300
        report_text = str(screen.query_one("#this-report", Static).render())
        assert "# spool benchmark: quick" in report_text and "throughput:" in report_text
        assert report_text.startswith(f"{first.throughput:,.0f} tasks/s")
        assert store.exists()  # the next session compares against it
        await run_once(pilot, screen, 200)
        compare = str(screen.query_one("#prev-report", Static).render())
        assert compare.startswith("# compare: quick") and "tasks: 300 -> 200 tasks" in compare
        await wait_until(
            pilot, lambda: "finished: 200/200 tasks" in screen_text(app), what="live line"
        )


async def test_escape_cancels_a_running_benchmark(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("5")
        await wait_until(
            pilot, lambda: isinstance(app.screen, BenchScreen) and app.host.snapshot.connected
        )
        screen = app.screen
        screen.query_one("#type").value = "sustained"
        await pilot.pause()
        screen.query_one("#f-rate").value = "200"
        screen.query_one("#f-duration_s").value = "60"
        screen.query_one("#f-workers").value = "2"
        screen.focus()
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: (
                screen.job is not None
                and screen.job.latest is not None
                and screen.job.latest.phase not in ("setup",)
            ),
            timeout_s=30,
            what="run under way",
        )
        assert "cancel" in {b.binding.action for b in screen.active_bindings.values()}
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: screen.job.future.done() and screen.report is not None,
            timeout_s=30,
            what="cancelled run reported",
        )
        assert "cancelled by caller" in screen.report.notes
        assert screen.report.completed < 200 * 60
        assert isinstance(app.screen, BenchScreen) and app.is_running
