"""The audit trail: operator actions from the console and the HTTP API, recorded and shown;
a delete restored from it."""

from __future__ import annotations

from support.polling import wait_for

from engine import dead as dead_ops
from engine import undo
from engine.audit import AuditEntry
from engine.broker import Broker
from engine.config import EngineConfig
from spool_console.screens import audit
from spool_console.screens.audit import AuditScreen
from spool_console.screens.confirm import ConfirmScreen
from spool_console.screens.dead import DeadScreen
from spool_console.testing import bury, make_app, make_settings, screen_text, wait_until
from widgets.vim_table import VimTable


async def test_console_actions_are_recorded_and_shown(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    await bury(broker, "default", [("shop.fail", "boom"), ("shop.fail", "boom")])
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("3")
        await wait_until(
            pilot, lambda: isinstance(app.screen, DeadScreen) and len(app.screen.items) == 2
        )
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: any("requeued 2" in n.message for n in app._notifications))
        log = await broker.audit_log()
        assert [(e.action, e.result, e.via) for e in log] == [
            ("dead requeue", "requeued 2", "console")
        ]
        assert log[0].user and log[0].host and "matching everything" in log[0].scope
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen))
        table = app.screen.query_one(VimTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="audit row")
        assert "dead requeue" in screen_text(app)
        # An action elsewhere (another console, the CLI, the API) shows up while it is open.
        await broker.record_audit(AuditEntry.now("pause", "queue mail", "paused"))
        await wait_until(pilot, lambda: table.row_count == 2, timeout_s=3 * audit.REFRESH_S)
        assert "queue mail" in screen_text(app)


async def test_http_actions_are_recorded(redis_url, prefix, redis) -> None:
    import aiohttp

    from engine.embedded import find_free_port

    broker = Broker(redis, EngineConfig(prefix=prefix))
    await broker.register_queues(["default"])
    port = find_free_port()
    app = make_app(make_settings(redis_url, prefix, http=f"127.0.0.1:{port}"))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.host.snapshot.connected and app.host._http is not None)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/v1/queues/default/pause") as resp,
        ):
            assert resp.status == 200
        log = await broker.audit_log()
        assert [(e.action, e.scope) for e in log] == [("pause", "queue default")]
        assert log[0].via.startswith("http")


async def test_a_delete_is_restored_from_the_audit_screen(redis_url, prefix, redis) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    # An older delete whose window has ended: listed, but nothing can come back.
    brief = Broker(redis, EngineConfig(prefix=prefix, restore_window_s=0.05))
    await bury(brief, "old", [("shop.fail", "long ago")])
    expired = await undo.new_undo(brief)
    await dead_ops.purge_dead(brief, "old", expired)
    await broker.record_audit(
        AuditEntry.now("dead delete", "queue old", "deleted 1", undo=expired, held=1)
    )
    await wait_for(lambda: _past(broker, undo.expiry_of(expired)), timeout_s=5, what="expiry")
    kept, doomed = await bury(broker, "default", [("shop.fail", "boom"), ("shop.fail", "bang")])
    before = await dead_ops.get_dead(broker, "default", doomed)
    app = make_app(make_settings(redis_url, prefix))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("3")
        dead = await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, DeadScreen) and len(app.screen.items) == 2 and app.screen
            ),
        )
        table = dead.query_one("#dead", VimTable)
        table.move_cursor(row=table.get_row_index(f"default/{doomed}"))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: _said(app, "deleted 1"))
        assert await dead_ops.get_dead(broker, "default", doomed) is None
        (newer,) = await bury(broker, "default", [("shop.fail", "later")])

        await pilot.press("a")
        audit = await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen)
        await wait_until(pilot, lambda: _rows(audit) == 2, what="the audit rows")
        assert "restorable until" in screen_text(app)
        await pilot.press("u")  # the cursor is on the newest entry: the delete just done
        confirm = await wait_until(
            pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen
        )
        assert "1 will come back to the dead letters · 0 already expired" in confirm.scope
        await pilot.press("y")
        await wait_until(pilot, lambda: _said(app, "restored 1"))
        await wait_until(pilot, lambda: _rows(audit) == 3, what="the restore's own row")

        await pilot.press("G", "u")  # the expired delete: no confirmation, a warning
        note = await wait_until(pilot, lambda: _said(app, "nothing to restore"))
        assert "restore window ended" in note
        assert app.screen is audit

    assert await dead_ops.get_dead(broker, "default", doomed) == before
    assert {i.id for i in (await dead_ops.list_dead(broker)).items} == {kept, doomed, newer}
    log = await broker.audit_log()
    assert [(e.action, e.result) for e in log] == [
        ("dead restore", "restored 1"),
        ("dead delete", "deleted 1"),
        ("dead delete", "deleted 1"),
    ]
    assert log[1].held == 1 and log[1].undo


def _said(app, text: str) -> str | None:  # type: ignore[no-untyped-def]
    """The first notification containing `text`, if any."""
    return next((n.message for n in app._notifications if text in n.message), None)


async def _past(broker: Broker, ms: int) -> bool:
    return await undo.server_ms(broker) >= ms


def _rows(screen: AuditScreen) -> int:
    """Rows of the audit table (0 until the screen has composed it)."""
    tables = screen.query(VimTable)
    return tables.first().row_count if tables else 0
