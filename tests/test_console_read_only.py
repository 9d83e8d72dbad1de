"""`--read-only`: no write of any kind, whatever key, button or palette entry is used."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from engine import dead, undo
from engine.audit import AuditEntry
from engine.broker import Broker
from engine.config import EngineConfig
from spool_console.screens.audit import AuditScreen
from spool_console.screens.bench import BenchScreen
from spool_console.screens.dead import DeadScreen
from spool_console.testing import bury, make_app, make_settings, screen_text, wait_until

#: Every key any screen binds to an action that changes something.
ACTION_KEYS = ("r", "R", "d", "D", "p", "n", "plus", "minus", "<", ">", "b", "u", "space")

#: The host's snapshot interval here. Nothing in these tests waits for a refresh, and every key
#: press waits for the process to go idle (Textual's pilot): at the usual 0.2 s the host's reads
#: kept it busy and a press took ~1.5 s instead of ~0.35 s on a loaded 2-core machine.
QUIET_INTERVAL_S = 5.0


async def writes_so_far(redis: Redis) -> int:
    """The server's count of writes since start (persistence off still counts them)."""
    return int((await redis.info("persistence"))["rdb_changes_since_last_save"])


@pytest.fixture
async def seeded(embedded_server_factory):
    """A private server holding one queue with dead letters (so every action has a target) and
    a stale worker record."""
    server = embedded_server_factory()
    redis = Redis.from_url(server.url)
    broker = Broker(redis, EngineConfig(prefix="ro"))
    await broker.register_queues(["default"])
    await bury(broker, "default", [("demo.flaky", "boom"), ("demo.flaky", "bang")])
    # What a SIGKILLed worker leaves behind: listing the fleet must not delete it.
    await redis.hset(broker.globals.workers, "gone:1:x", b'{"last_seen_s": 0}')
    # A delete still restorable, in the audit trail: restore must be out of reach too.
    (gone,) = await bury(broker, "default", [("demo.flaky", "deleted")])
    token = await undo.new_undo(broker)
    await dead.delete_dead(broker, "default", [gone], token)
    await broker.record_audit(AuditEntry.now("dead delete", "1", "deleted 1", undo=token, held=1))
    yield server.url, redis
    await redis.aclose()


async def test_read_only_writes_nothing_by_any_key_button_or_palette(seeded, tmp_path) -> None:
    url, redis = seeded
    store = tmp_path / "bench-last.json"
    settings = make_settings(url, "ro", read_only=True, workers=None, demo=True, http="127.0.0.1:0")
    before = await writes_so_far(redis)
    app = make_app(settings, interval_s=QUIET_INTERVAL_S, bench_store=store)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.host.snapshot.connected and app.ready)
        assert app.host.pool is None, "read-only runs no local pool"
        for screen_key in "12345":
            await pilot.press(screen_key)
            if screen_key == "3":
                await wait_until(pilot, lambda: len(app.screen.items) == 2, what="dead loaded")
            for key in ACTION_KEYS:
                await pilot.press(key, "enter", "y")  # enter, y: confirm any dialog that opened
                while app.screen.is_modal:
                    await pilot.press("escape")
            # Tab through every focusable widget pressing enter (the Run button, forms…).
            for _ in range(5):
                await pilot.press("tab", "enter")
                while app.screen.is_modal:
                    await pilot.press("escape")
        app.screen.set_focus(None)
        await pilot.press("5")
        bench = app.screen
        assert isinstance(bench, BenchScreen)
        assert bench.job is None, "no benchmark may start"
        commands = [c.title for c in app.get_system_commands(app.screen)]
        await pilot.press("3")
        dead = app.screen
        assert isinstance(dead, DeadScreen)
        commands += [c.title for c in app.get_system_commands(dead)]
        for title in ("Requeue", "Delete", "Requeue all", "Delete all", "Run benchmark"):
            assert title not in commands
        await pilot.press("a")
        audit = await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen)
        await wait_until(pilot, lambda: audit.entries, what="the delete's audit entry")
        await pilot.press("u", "enter", "y")
        assert app.screen is audit, "no restore confirmation under --read-only"
        assert "Restore" not in [c.title for c in app.get_system_commands(audit)]
        assert "restorable" not in screen_text(app) and "u restores" not in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is dead, what="back on Dead letters")
    assert await writes_so_far(redis) == before, "a read-only console wrote to Redis"
    assert not store.exists(), "a read-only console wrote the last-run file"
    assert app.host._http is None, "no HTTP API (it has write routes) under --read-only"


async def test_read_only_hints_never_mention_hidden_actions(seeded) -> None:
    url, _ = seeded
    app = make_app(make_settings(url, "ro", read_only=True), interval_s=QUIET_INTERVAL_S)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_until(pilot, lambda: app.host.snapshot.connected and app.ready)
        seen = []
        for screen_key in "12345":
            await pilot.press(screen_key)
            await pilot.pause(0.1)
            seen.append(screen_text(app))
        text = "\n".join(seen)
        for hint in ("press r", "Run (r)", "n enqueues", "p pauses", "Requeue", "Delete"):
            assert hint not in text, hint
        assert "READ-ONLY" in text
