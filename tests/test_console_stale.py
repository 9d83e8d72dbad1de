"""Redis down or slow (issue 13, "Defects seen"): numbers marked stale, the reason said in
full enough words, no mention of flags nobody gave. Each test failed before its fix."""

from __future__ import annotations

from engine.embedded import find_free_port
from spool_console.app import SpoolApp
from spool_console.engine_host import EngineHost
from spool_console.testing import make_app, make_settings, screen_text, wait_until


async def test_redis_down_at_start_says_why_and_blames_no_flag(prefix) -> None:
    url = f"redis://127.0.0.1:{find_free_port()}/0"  # nothing listens: refused
    app = make_app(make_settings(url, prefix, workers=None))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.error, timeout_s=30)
        await wait_until(pilot, lambda: "no numbers yet" in screen_text(app), what="no numbers")
        header = screen_text(app).splitlines()[0]
        assert "Connection refused" in header, header  # was cut to "ConnectionError: Error"
        await pilot.press("4")
        await wait_until(pilot, lambda: "starts once Redis answers" in screen_text(app))
        await pilot.press("plus")
        await wait_until(pilot, lambda: app._notifications, what="a toast")
        messages = [n.message for n in app._notifications]
        assert not any("--workers 0" in m for m in messages), messages
        assert any("starts once Redis answers" in m for m in messages), messages


async def test_numbers_are_marked_stale_while_redis_is_down(embedded_server_factory, prefix):
    server = embedded_server_factory()
    app = make_app(make_settings(server.url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected, timeout_s=30)
        assert "numbers as of" not in screen_text(app)
        server.stop()
        await wait_until(pilot, lambda: not app.host.snapshot.connected, timeout_s=20)
        for key in ("1", "2", "4"):
            await pilot.press(key)
            await wait_until(
                pilot,
                lambda: "numbers as of" in screen_text(app)
                and "Redis unreachable" in screen_text(app),
                what=f"the stale mark on screen {key}",
            )
        server.start()
        await wait_until(pilot, lambda: app.host.snapshot.connected, timeout_s=20)
        await wait_until(pilot, lambda: "numbers as of" not in screen_text(app), what="fresh")


async def test_an_overrunning_refresh_is_not_redis_down(redis_url, prefix) -> None:
    # A profiled benchmark (tracemalloc slows every thread) made refreshes overrun their
    # deadline, and the header said REDIS DOWN … TimeoutError with Redis answering.
    settings = make_settings(redis_url, prefix)
    host = EngineHost(settings, interval_s=0.1, refresh_timeout_s=0.000_001)
    app = SpoolApp(settings, host, pump_s=0.05, own_host=True, bench_store=None)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.ready and host.snapshot.seq >= 5, timeout_s=30)
        snap = host.snapshot
        assert snap.connected and snap.error is None, snap.error
        await wait_until(pilot, lambda: "refresh took over" in screen_text(app), what="stale")
        assert "REDIS DOWN" not in screen_text(app)


def test_stage_times_stay_in_the_table_s_unit() -> None:
    # `p50 62,525.3` beside `70.41 s` mixed units; clipped at 80 columns, `1.02 s` read `1.02`.
    from widgets.stage_table import fmt_ms

    assert [fmt_ms(v) for v in (0.5, 12.34, 409.2, 1_020.4, 70_410.0)] == [
        "0.50",
        "12.3",
        "409",
        "1,020",
        "70,410",
    ]
