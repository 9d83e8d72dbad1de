"""The pool's local buffer hands out the highest priority first, FIFO within a level."""

from __future__ import annotations

import asyncio

import pytest

from engine.task import FetchedTask
from engine.worker.local_queue import LocalPriorityQueue


def _task(task_id: str) -> FetchedTask:
    return FetchedTask(
        id=task_id,
        queue="q",
        name="t",
        level="",
        args=[],
        kwargs={},
        attempt=1,
        max_retries=0,
        timeout_s=None,
        enqueued_at_ms=0,
        fetched_at_ms=0,
        token="x",
    )


async def test_highest_rank_first_and_fifo_within_a_rank() -> None:
    q = LocalPriorityQueue()
    for task_id, rank in (("low1", 2), ("def1", 1), ("low2", 2), ("high1", 0), ("def2", 1)):
        q.put_nowait(_task(task_id), rank)
    assert q.qsize() == 5
    order = [(await q.get()).id for _ in range(5)]
    assert order == ["high1", "def1", "def2", "low1", "low2"]
    assert q.empty()
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_a_waiting_getter_wakes_and_a_cancelled_one_passes_the_wake_on() -> None:
    q = LocalPriorityQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)  # let both getters park on the queue
    q.put_nowait(_task("a"))
    first.cancel()
    got = await asyncio.wait_for(second, 1)
    assert got.id == "a"
    with pytest.raises(asyncio.CancelledError):
        await first
