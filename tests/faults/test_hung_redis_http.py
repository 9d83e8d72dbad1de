"""Item 2: a hung (SIGSTOPped, not dead) server at the HTTP door answers 503 within the deadline."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable

import aiohttp
from support.polling import wait_for

from engine.connection import open_redis
from engine.embedded import EmbeddedServer, find_free_port

from .conftest import Workers, all_done, figure, ledger

REQUEST_TIMEOUT_S = 2.0


async def test_sigstopped_server_gets_503_within_the_deadline_then_idempotent_retry(
    aof_server: EmbeddedServer,
    workers_factory: Callable[[str, str], Workers],
) -> None:
    prefix, key = "fault-hung", "fault-hung:runs"
    port = find_free_port()
    workers = workers_factory(prefix, aof_server.url)
    workers.start(aof_server.url, "--concurrency", "2", "--http", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    redis = await open_redis(aof_server.url)
    body = {"name": "ws.count", "kwargs": {"key": key}}
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            try:
                async with http.get(f"{base}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, 20, "the worker's HTTP API is up")
        async with http.post(f"{base}/v1/tasks", json=body) as resp:
            assert resp.status == 201, await resp.text()

        assert aof_server.pid is not None
        os.kill(aof_server.pid, signal.SIGSTOP)
        try:
            took: list[float] = []
            ids = [f"hung-{i}" for i in range(3)]
            for task_id in ids:
                started = time.monotonic()
                async with http.post(f"{base}/v1/tasks", json={**body, "id": task_id}) as resp:
                    took.append(time.monotonic() - started)
                    assert resp.status == 503, await resp.text()
                    assert resp.headers.get("Retry-After") == "1"
                    message = (await resp.json())["error"]["message"]
                    assert "within 2 s" in message and "same id" in message
            started = time.monotonic()
            async with http.get(f"{base}/readyz") as resp:
                ready_took = time.monotonic() - started
                assert resp.status == 503
        finally:
            os.kill(aof_server.pid, signal.SIGCONT)
        figure(
            "SIGSTOPped server at the HTTP door",
            answers_s=[round(t, 2) for t in took],
            median_s=round(statistics.median(took), 2),
            readyz_s=round(ready_took, 2),
            deadline_s=REQUEST_TIMEOUT_S,
        )
        # The deadline, plus scheduling slack on a loaded machine; never 10-20 s.
        assert max(took) < REQUEST_TIMEOUT_S + 1.5
        assert ready_took < REQUEST_TIMEOUT_S + 1.5

        # The same ids again once the server is back: each task exists and runs exactly once,
        # whether or not the timed-out attempt had landed.
        for task_id in ids:
            async with http.post(f"{base}/v1/tasks", json={**body, "id": task_id}) as resp:
                assert resp.status == 201, await resp.text()
        await wait_for(lambda: all_done(redis, key, ids), 15, "the retried tasks ran")
        completed, lost, duplicates = await ledger(redis, key, ids)
        figure("retried with the same id", completed=completed, lost=lost, duplicates=duplicates)
        assert (completed, lost, duplicates) == (len(ids), 0, 0)
    await redis.aclose()
