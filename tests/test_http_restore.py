"""Restore of deleted dead letters over HTTP, and every HTTP operator action in the audit trail."""

from __future__ import annotations

from redis.asyncio import Redis
from support.polling import wait_for
from test_http_support import api_client, bury, error_of, make_broker

from engine import dead, undo
from engine.task import TaskSpec


async def test_delete_then_restore_brings_back_that_letter(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    kept = await bury(broker, "mail.send", "smtp 550")
    before = (await dead.get_dead(broker, "jobs", kept)).to_dict()
    async with api_client(broker) as api:
        deleted = await (await api.delete(f"/v1/dead/{kept}")).json()
        newer = await bury(broker, "mail.send", "smtp 551")
        resp = await api.post("/v1/dead/restore", json={"undo": deleted["undo"]})
        assert (resp.status, await resp.json()) == (200, {"restored": 1, "id_in_use": 0})
        assert (await dead.get_dead(broker, "jobs", kept)).to_dict() == before
        assert {i.id for i in (await dead.list_dead(broker)).items} == {kept, newer}
        again = await api.post("/v1/dead/restore", json={"undo": deleted["undo"]})
        assert await error_of(again) == (404, "not_found")
        for bad in ({"undo": "yesterday"}, {"undo": 5}, {}, {"undo": "1", "extra": 1}):
            assert (await error_of(await api.post("/v1/dead/restore", json=bad)))[0] == 400


async def test_an_expired_delete_answers_410(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, restore_window_s=0.05)
    task_id = await bury(broker, "mail.send", "smtp 550")
    async with api_client(broker) as api:
        token = (await (await api.delete(f"/v1/dead/{task_id}")).json())["undo"]
        expiry = undo.expiry_of(token)
        await wait_for(lambda: _past(broker, expiry), timeout_s=5, what="window end")
        resp = await api.post("/v1/dead/restore", json={"undo": token})
        assert await error_of(resp) == (410, "gone")
    assert await dead.get_dead(broker, "jobs", task_id) is None


async def _past(broker, ms: int) -> bool:  # type: ignore[no-untyped-def]
    return await undo.server_ms(broker) >= ms


async def test_every_http_action_is_in_the_audit_trail(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    first = await bury(broker, "a", "x")
    second = await bury(broker, "a", "y")
    (pending,) = await broker.enqueue([TaskSpec(name="a", queue="jobs", args=[])])
    headers = {"Authorization": "Bearer s3cret"}
    async with api_client(broker, token="s3cret") as api:
        await api.post("/v1/queues/jobs/pause", headers=headers)
        await api.post("/v1/queues/jobs/resume", headers=headers)
        await api.post("/v1/dead/requeue", json={"ids": [first]}, headers=headers)
        token = (await (await api.delete(f"/v1/dead/{second}", headers=headers)).json())["undo"]
        await api.post("/v1/dead/restore", json={"undo": token}, headers=headers)
        await api.post(f"/v1/tasks/{pending}/cancel", headers=headers)
    log = list(reversed(await broker.audit_log()))
    assert [(e.action, e.scope, e.result) for e in log] == [
        ("pause", "queue jobs", "done"),
        ("resume", "queue jobs", "done"),
        ("dead requeue", "1 id(s)", "1"),
        ("dead delete", f"jobs/{second}", "1"),
        ("dead restore", f"undo {token}", "restored 1"),
        ("cancel", f"jobs/{pending}", "cancelled, now cancelled"),
    ]
    assert {(e.via, e.user, e.host) for e in log} == {("http", "api-token", "127.0.0.1")}
    assert (log[3].undo, log[3].held) == (token, 1), "a delete is recorded with its undo token"


async def test_without_a_token_the_user_is_http(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    async with api_client(broker) as api:
        assert (await api.post("/v1/queues/jobs/pause")).status == 200
    (entry,) = await broker.audit_log()
    assert (entry.action, entry.via, entry.user) == ("pause", "http", "http")
