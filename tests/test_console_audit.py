"""The audit trail: operator actions from the console and the HTTP API, recorded and shown."""

from __future__ import annotations

from engine.broker import Broker
from engine.config import EngineConfig
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
