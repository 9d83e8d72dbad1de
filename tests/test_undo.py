"""Undo of deleted dead letters on the real server: held, restored intact, expired, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from support.polling import wait_for

from engine import dead, undo
from engine.broker import Broker
from engine.config import EngineConfig
from engine.dead import DeadFilter
from engine.task import TaskSpec
from spool_console.testing import bury

Q = "jobs"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


async def snapshot(broker: Broker) -> dict[str, dict[str, Any]]:
    """Every dead letter whole, by id."""
    return {i.id: i.to_dict() for i in (await dead.list_dead(broker, limit=1000)).items}


async def window_over(broker: Broker, token: str) -> None:
    """Poll the server clock until `token`'s restore window has ended."""
    expiry = undo.expiry_of(token)
    await wait_for(lambda: _past(broker, expiry), timeout_s=5, what="the window to end")


async def _past(broker: Broker, ms: int) -> bool:
    return await undo.server_ms(broker) >= ms


async def test_restore_brings_back_exactly_the_deleted_letters(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await bury(broker, Q, [("shop.charge", "card declined"), ("shop.charge", "timeout")])
    await bury(broker, "other", [("mail.send", "smtp 550")])
    before = await snapshot(broker)
    token = await undo.new_undo(broker)
    assert await dead.delete_matching(broker, DeadFilter(), token) == 3
    assert await snapshot(broker) == {}
    # Newer letters: one still dead, one deleted by a later action; neither is this restore's.
    (newer,) = await bury(broker, Q, [("shop.charge", "later")])
    (later,) = await bury(broker, Q, [("shop.refund", "later too")])
    second = await undo.new_undo(broker)
    assert await dead.delete_dead(broker, Q, [later], second) == 1

    found = await undo.held(broker, token)
    assert (found.count, found.by_queue, found.expired) == (3, {Q: 2, "other": 1}, False)
    done = await undo.restore(broker, token)
    assert (done.restored, done.id_in_use, done.expired) == (3, 0, False)

    after = await snapshot(broker)
    assert set(after) == set(before) | {newer}
    for task_id, item in before.items():  # error, group, died-at, payload: as they were
        assert after[task_id] == item
    assert (await undo.held(broker, second)).count == 1, "the later delete is still held"
    again = await undo.restore(broker, token)
    assert (again.restored, again.id_in_use) == (0, 0), "a restore happens once"


async def test_an_expired_hold_is_reported_and_not_restorable(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, restore_window_s=0.05)
    await bury(broker, Q, [("a", "x"), ("b", "y")])
    token = await undo.new_undo(broker)
    assert await dead.purge_dead(broker, Q, token) == 2
    await window_over(broker, token)
    found = await undo.held(broker, token)
    assert (found.expired, found.count) == (True, 0)
    done = await undo.restore(broker, token)
    assert (done.restored, done.expired) == (0, True)
    assert await snapshot(broker) == {}
    assert await undo.held_deletes(broker) == []


async def test_the_reaper_prunes_expired_letters(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, restore_window_s=0.05)
    await bury(broker, Q, [("a", "x")])
    token = await undo.new_undo(broker)
    await dead.purge_dead(broker, Q, token)
    keys = broker.keys(Q)
    assert await redis.zcard(keys.deleted) == 1
    await window_over(broker, token)
    await broker.reap(Q)
    assert await redis.exists(keys.deleted, keys.deleted_rec) == 0


async def test_holding_is_bounded_the_first_to_expire_go_first(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, deleted_max=3)
    ids = await bury(broker, Q, [(f"t{i}", "e") for i in range(5)])
    first = await undo.new_undo(broker)
    await dead.delete_dead(broker, Q, ids[:2], first)
    second = await wait_for(lambda: _later_token(broker, first), what="a later token")
    await dead.delete_dead(broker, Q, ids[2:], second)
    keys = broker.keys(Q)
    assert await redis.zcard(keys.deleted) == 3
    assert await redis.hlen(keys.deleted_rec) == 3
    assert (await undo.held(broker, first)).count == 0
    assert (await undo.restore(broker, second)).restored == 3
    assert [h.token for h in await undo.held_deletes(broker)] == []


async def _later_token(broker: Broker, than: str) -> str | None:
    token = await undo.new_undo(broker)
    return token if undo.expiry_of(token) > undo.expiry_of(than) else None


async def test_a_letter_whose_id_is_in_use_again_stays_deleted(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    kept, reused = await bury(broker, Q, [("a", "x"), ("b", "y")])
    token = await undo.new_undo(broker)
    await dead.purge_dead(broker, Q, token)
    await broker.enqueue([TaskSpec(name="b", queue=Q, id=reused)])
    done = await undo.restore(broker, token)
    assert (done.restored, done.id_in_use) == (1, 1)
    assert set(await snapshot(broker)) == {kept}


async def test_a_zero_window_deletes_for_good(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, restore_window_s=0)
    await bury(broker, Q, [("a", "x")])
    token = await undo.new_undo(broker)
    assert token == ""
    assert await dead.purge_dead(broker, Q, token) == 1
    assert await redis.exists(broker.keys(Q).deleted) == 0


def test_a_token_carries_its_expiry() -> None:
    assert undo.expiry_of("1796112345678-0a1b2c3d") == 1796112345678


@pytest.mark.parametrize(
    "bad", ["", "123-0a1b2c3d", "1796112345678-0A1B2C3D", "1796112345678-0a1b2c3d|x"]
)
def test_a_malformed_token_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid undo token"):
        undo.expiry_of(bad)
