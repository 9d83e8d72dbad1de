"""The dead-letter queue on the real server: list, filter, page, requeue, delete, group, caps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import dead
from engine.broker import Broker
from engine.config import EngineConfig
from engine.dead import DeadFilter
from engine.outcomes import failed
from engine.queues import queue_stats, task_status
from engine.task import TaskSpec, TaskState

Q = "jobs"


def make_broker(redis: Redis, prefix: str, **overrides: Any) -> Broker:
    overrides.setdefault("max_retries", 0)
    return Broker(redis, EngineConfig(prefix=prefix, **overrides))


async def server_ms(redis: Redis) -> int:
    sec, usec = await redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def next_ms(redis: Redis, after: int) -> int:
    """Poll the server clock until it is past `after` (distinct death times, no sleeping)."""
    deadline = time.monotonic() + 5
    while (now := await server_ms(redis)) <= after:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    return now


async def bury(
    broker: Broker, items: Sequence[tuple[str, str]], queue: str = Q, exc: type = ValueError
) -> list[str]:
    """Kill one task per (name, error message), one after the other, each in its own ms."""
    ids = []
    last = await server_ms(broker.redis)  # every death in a later ms than anything before
    for name, message in items:
        last = await next_ms(broker.redis, last)
        (task_id,) = await broker.enqueue(
            [TaskSpec(name=name, queue=queue, args=[len(ids)], kwargs={"m": message})]
        )
        fetched = (await broker.fetch(queue, 1, "w-1")).tasks
        assert [t.id for t in fetched] == [task_id]
        try:
            raise exc(message)
        except Exception as error:
            assert await broker.settle(queue, [failed(fetched[0], error, broker.config)]) == [True]
        ids.append(task_id)
        last = await server_ms(broker.redis)
    return ids


async def test_get_one_dead_letter_whole(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    (task_id,) = await bury(broker, [("resize", "disk full")])
    item = await dead.get_dead(broker, Q, task_id)
    assert item is not None
    assert (item.id, item.queue, item.name, item.priority) == (task_id, Q, "resize", "default")
    assert (item.args, item.kwargs, item.attempts) == ([0], {"m": "disk full"}, 1)
    assert (item.error, item.exc_type) == ("disk full", "ValueError")
    assert (item.reason, item.worker) == ("error", "")
    assert "ValueError: disk full" in item.traceback
    assert item.enqueued_at_ms is not None and item.died_at_ms >= item.enqueued_at_ms
    assert item.fingerprint == "ValueError: disk full" and item.error_line == "disk full"
    assert item.to_dict()["id"] == task_id
    assert await dead.find_dead(broker, task_id) == item
    assert await dead.get_dead(broker, Q, "nope") is None
    assert await dead.find_dead(broker, "nope") is None


async def test_list_newest_first_with_paging(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    ids = await bury(broker, [(f"t{i}", f"err {i}") for i in range(5)])
    ids += await bury(broker, [(f"u{i}", f"err {i}") for i in range(3)], queue="other")
    everything = await dead.list_dead(broker, limit=100)
    assert everything.cursor is None
    assert [i.id for i in everything.items] == ids[::-1]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await dead.list_dead(broker, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [i.id for i in page.items]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    only_q = await dead.list_dead(broker, DeadFilter(queue=Q), limit=2)
    assert [i.id for i in only_q.items] == ids[4:2:-1] and only_q.cursor
    rest = await dead.list_dead(broker, DeadFilter(queue=Q), limit=10, cursor=only_q.cursor)
    assert [i.id for i in rest.items] == ids[2::-1] and rest.cursor is None
    with pytest.raises(ValueError, match="invalid cursor"):
        await dead.list_dead(broker, cursor="!!!not-a-cursor")


async def test_filters(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    early = await bury(broker, [("resize", "Disk full on /dev/sda"), ("mail", "SMTP timeout")])
    cut = await server_ms(redis)  # early ones died at or before `cut`
    await next_ms(redis, cut)  # late ones die after it
    late = await bury(broker, [("resize", "bad image"), ("mail", "disk FULL again")])
    late += await bury(broker, [("resize", "disk full")], queue="other")

    async def ids(flt: DeadFilter) -> list[str]:
        return sorted(i.id for i in (await dead.list_dead(broker, flt, limit=100)).items)

    assert await ids(DeadFilter(queue="other")) == [late[2]]
    assert await ids(DeadFilter(task="resize")) == sorted([early[0], late[0], late[2]])
    assert await ids(DeadFilter(task="resiz")) == []  # task is an exact name
    assert await ids(DeadFilter(error="disk full")) == sorted([early[0], late[1], late[2]])
    assert await ids(DeadFilter(queue=Q, error="disk full")) == sorted([early[0], late[1]])
    assert await ids(DeadFilter(text="MAIL")) == sorted([early[1], late[1]])
    assert await ids(DeadFilter(text="image")) == [late[0]]
    assert await ids(DeadFilter(since_ms=cut + 1)) == sorted(late)
    assert await ids(DeadFilter(until_ms=cut)) == sorted(early)
    assert await ids(DeadFilter(since_ms=cut + 1, task="mail")) == [late[1]]
    fp = (await dead.get_dead(broker, Q, early[1])).fingerprint  # type: ignore[union-attr]
    assert await ids(DeadFilter(fingerprint=fp)) == [early[1]]
    assert await dead.count_matching(broker, DeadFilter(error="disk")) == 3
    assert "error='disk'" in DeadFilter(error="disk").describe()
    assert DeadFilter().describe() == "everything"


async def test_requeue_one_many_and_matching(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    ids = await bury(
        broker,
        [("a", "boom 1"), ("b", "boom 2"), ("a", "other"), ("c", "boom 3"), ("a", "boom 4")],
    )
    assert await dead.requeue_dead(broker, Q, [ids[1]]) == 1
    assert await dead.requeue_dead(broker, Q, [ids[1], "unknown"]) == 0
    info = await task_status(broker, ids[1], Q)
    assert info is not None and info.state is TaskState.PENDING and info.attempts == 0
    assert info.error is None
    # Exactly the matching items move: task "a" with "boom" in the error.
    moved = await dead.requeue_matching(broker, DeadFilter(task="a", error="boom"))
    assert moved == 2
    remaining = sorted(i.id for i in (await dead.list_dead(broker, limit=100)).items)
    assert remaining == sorted([ids[2], ids[3]])
    stats = await queue_stats(broker, Q)
    assert (stats.pending, stats.dead) == (3, 2)
    fetched = (await broker.fetch(Q, 10, "w")).tasks
    assert sorted(t.id for t in fetched) == sorted([ids[0], ids[1], ids[4]])
    assert all(t.attempt == 1 for t in fetched)  # attempts were reset
    assert await dead.requeue_dead(broker, Q, [ids[2], ids[3]]) == 2
    assert (await queue_stats(broker, Q)).dead == 0


async def test_requeue_all_matching_everything(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await bury(broker, [("a", "x")] * 3)
    await bury(broker, [("b", "y")] * 2, queue="other")
    assert await dead.requeue_matching(broker, DeadFilter()) == 5
    assert (await queue_stats(broker, Q)).pending == 3
    assert (await queue_stats(broker, "other")).pending == 2
    assert (await dead.list_dead(broker)).items == []


async def test_delete_one_many_purge(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    ids = await bury(broker, [(f"t{i}", "e") for i in range(6)])
    other = await bury(broker, [("t", "e")], queue="other")
    keys = broker.keys(Q)
    assert await dead.delete_dead(broker, Q, [ids[0]]) == 1
    assert await dead.delete_dead(broker, Q, [ids[0]]) == 0
    assert await redis.hexists(keys.tasks, ids[0]) == 0  # gone for good
    assert await redis.hexists(keys.dead_info, ids[0]) == 0
    assert await dead.delete_dead(broker, Q, ids[1:3]) == 2
    assert await dead.delete_matching(broker, DeadFilter(task="t3")) == 1
    assert await dead.purge_dead(broker, Q) == 2
    assert (await queue_stats(broker, Q)).dead == 0
    assert await task_status(broker, ids[5], Q) is None
    assert [i.id for i in (await dead.list_dead(broker)).items] == other


async def test_groups_fold_numbers_hex_and_uuids(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    first = await server_ms(redis)
    await bury(
        broker,
        [
            ("fetch", "user 42 not found"),
            ("fetch", "user 12345678 not found"),
            ("sync", "user 7 not found"),
            ("fetch", "object 550e8400-e29b-41d4-a716-446655440000 locked"),
            ("fetch", "object 6ba7b810-9dad-11d1-80b4-00c04fd430c8 locked"),
            ("fetch", "bad pointer 0xdeadbeef at 3f2a9c1e8b7d"),
            ("fetch", "bad pointer 0x1 at 0a0b0c0d0e0f"),
            ("fetch", "something else entirely"),
        ],
    )
    last = await server_ms(redis)
    groups = await dead.dead_groups(broker)
    by_fp = {g.fingerprint: g for g in groups}
    assert set(by_fp) == {
        "ValueError: user <n> not found",
        "ValueError: object <uuid> locked",
        "ValueError: bad pointer <hex> at <hex>",
        "ValueError: something else entirely",
    }
    users = by_fp["ValueError: user <n> not found"]
    assert users.count == 3 and users.tasks == ("fetch", "sync") and users.queues == (Q,)
    assert first <= users.first_seen_ms < users.last_seen_ms <= last
    assert users.sample_error.startswith("user ")
    assert groups[0] is users  # largest first
    assert [g.count for g in groups] == [3, 2, 2, 1]
    only_sync = await dead.dead_groups(broker, DeadFilter(task="sync"))
    assert [(g.fingerprint, g.count) for g in only_sync] == [("ValueError: user <n> not found", 1)]


async def test_count_cap_evicts_the_oldest(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, dead_max=3)
    ids = await bury(broker, [(f"t{i}", "e") for i in range(5)])
    remaining = [i.id for i in (await dead.list_dead(broker, limit=10)).items]
    assert remaining == ids[:1:-1]  # the two oldest went
    stats = await queue_stats(broker, Q)
    assert (stats.dead, stats.dead_evicted) == (3, 2)
    assert await redis.hexists(broker.keys(Q).tasks, ids[0]) == 0


async def test_age_cap_evicts_old_letters(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix, dead_max_age_s=0.3)
    (old,) = await bury(broker, [("old", "e")])
    assert (await broker.reap(Q)).evicted == 0  # not old enough yet

    async def evicted() -> int:
        return (await broker.reap(Q)).evicted

    deadline = time.monotonic() + 5
    while not await evicted():
        assert time.monotonic() < deadline, "the old letter was never evicted"
        await asyncio.sleep(0.01)
    assert await dead.get_dead(broker, Q, old) is None
    (new,) = await bury(broker, [("new", "e")])
    assert await dead.get_dead(broker, Q, new) is not None
    assert (await queue_stats(broker, Q)).dead_evicted == 1
