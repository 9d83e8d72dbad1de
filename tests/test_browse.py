"""Paged task views: every task reachable page by page, in the order the queue serves them."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from engine.broker import Broker
from engine.browse import active_page, pending_page, scheduled_page
from engine.config import EngineConfig
from engine.task import TaskSpec, TaskState


async def test_pending_pages_follow_fetch_order(redis: Redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    ids = await broker.enqueue([TaskSpec("t", args=[i], queue="q") for i in range(120)])
    seen: list[str] = []
    offset = 0
    while True:
        page = await pending_page(broker, "q", "default", offset, 50)
        assert page.total == 120 and page.view == "pending:default"
        seen += [t.id for t in page.tasks]
        if not page.has_next:
            break
        offset += len(page.tasks)
    assert seen == ids  # FIFO: the first enqueued is the next out
    fetched = (await broker.fetch("q", 5, "w")).tasks
    assert [t.id for t in fetched] == ids[:5]
    page = await pending_page(broker, "q", "default", 0, 3)
    assert [t.id for t in page.tasks] == ids[5:8] and page.tasks[0].args == [5]


async def test_scheduled_and_active_pages(redis: Redis, prefix: str) -> None:
    broker = Broker(redis, EngineConfig(prefix=prefix))
    late, soon = await broker.enqueue(
        [TaskSpec("t", queue="q", delay_s=600), TaskSpec("t", queue="q", delay_s=60)]
    )
    page = await scheduled_page(broker, "q", 0, 10)
    assert [t.id for t in page.tasks] == [soon, late] and page.total == 2
    assert all(t.state is TaskState.SCHEDULED and t.due_at_ms for t in page.tasks)
    assert page.tasks[0].due_at_ms < page.tasks[1].due_at_ms
    running = await broker.enqueue([TaskSpec("t", queue="q") for _ in range(3)])
    await broker.fetch("q", 3, "w")
    page = await active_page(broker, "q", 1, 2)
    assert page.total == 3 and len(page.tasks) == 2 and not page.has_next
    assert {t.id for t in page.tasks} < set(running)
    assert all(t.state is TaskState.ACTIVE and t.attempts == 1 for t in page.tasks)
    assert all(t.lease_deadline_ms for t in page.tasks)
    with pytest.raises(ValueError):
        await active_page(broker, "q", -1, 10)
    with pytest.raises(ValueError):
        await scheduled_page(broker, "q", 0, 0)
