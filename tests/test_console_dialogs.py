"""Dialogs and the palette (issue 13, "Defects seen"): each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from spool_console.screens.enqueue_form import EnqueueScreen
from spool_console.screens.find_task import FindTaskScreen
from spool_console.screens.help import HelpScreen
from spool_console.testing import make_app, make_settings, screen_text, wait_until


def footer_line(app) -> str:
    return screen_text(app).splitlines()[-1]


async def test_a_dialog_s_footer_shows_only_keys_that_work_there(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected, timeout_s=30)
        await pilot.press("3")
        await wait_until(pilot, lambda: "Requeue" in footer_line(app), what="dead keys")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await wait_until(pilot, lambda: "Close" in footer_line(app), what="the dialog's keys")
        footer = footer_line(app)
        for hidden in ("Requeue", "Delete", "Audit trail", "Find task", "Palette", "screens"):
            assert hidden not in footer, footer
        await pilot.press("t", "a", "2")  # keys of the screen beneath do nothing here
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen) and app.current_mode == "dead"
        await pilot.press("escape", "2", "n")
        await wait_until(pilot, lambda: isinstance(app.screen, EnqueueScreen), what="form")
        await wait_until(pilot, lambda: "Enqueue" in footer_line(app), what="form keys")
        assert "Pause/resume" not in footer_line(app), footer_line(app)
        await pilot.press("escape", "t")
        await wait_until(pilot, lambda: isinstance(app.screen, FindTaskScreen), what="find")


async def test_palette_screenshot_saves_a_file(
    redis_url, prefix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Textual saves to ~/Downloads; where that directory does not exist it failed.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.ready, timeout_s=30)
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Screenshot")
        command.callback()  # Textual's entry starts a timer and returns it
        await wait_until(
            pilot,
            lambda: any("screenshot" in n.message.lower() for n in app._notifications),
            timeout_s=30,
            what="a result",
        )
        messages = [n.message for n in app._notifications]
        assert not any("Failed" in m for m in messages), messages
        assert list((tmp_path / "state" / "spool" / "screenshots").glob("*.svg")), messages


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_the_enqueue_form_s_buttons_are_on_screen(redis_url, prefix, size) -> None:
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.ready, timeout_s=30)
        await pilot.press("2", "n")
        await wait_until(pilot, lambda: isinstance(app.screen, EnqueueScreen), what="form")
        await pilot.pause(0.1)
        for button in ("#cancel", "#submit"):
            region = app.screen.query_one(button).region
            assert region.height == 3, (button, region)
            assert region.bottom <= size[1] - 1, (button, region)  # above the footer line


async def test_an_enqueue_with_the_declared_priority_never_says_none(redis_url, prefix) -> None:
    # The toast and the audit trail read "1 × spool.noop to default/None".
    app = make_app(make_settings(redis_url, prefix), bench_store=None)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected, timeout_s=30)
        await pilot.press("2", "n")
        await wait_until(pilot, lambda: isinstance(app.screen, EnqueueScreen), what="form")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("enqueued" in n.message for n in app._notifications), timeout_s=30
        )
        messages = [n.message for n in app._notifications]
        assert not any("None" in m for m in messages), messages


async def test_the_workers_footer_keeps_its_keys_between_snapshots(redis_url, prefix) -> None:
    # Each snapshot refreshed the bindings, so the footer was rebuilt every second and, under
    # load, stayed blank (its keys never laid out).
    app = make_app(make_settings(redis_url, prefix, workers=None), interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected, timeout_s=30)
        await pilot.press("4")
        for _ in range(3):  # and it stays, snapshot after snapshot
            await wait_until(pilot, lambda: "Max +1" in footer_line(app), what="workers keys")
            await pilot.pause(0.5)


async def test_the_bench_footer_keeps_its_keys_between_snapshots(redis_url, prefix) -> None:
    app = make_app(make_settings(redis_url, prefix), interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.ready and app.host.snapshot.connected, timeout_s=30)
        await pilot.press("5")
        for _ in range(3):
            await wait_until(pilot, lambda: "Run benchmark" in footer_line(app), what="bench keys")
            await pilot.pause(0.5)
