"""Prometheus through prometheus-client: per-queue and per-task histograms with a folded
`other`, queue gauges from Redis, and `worker --metrics-port` scraped for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from test_http_support import api_client, make_broker

from engine.metrics.prometheus import render_prometheus
from engine.metrics.recorder import MetricsRecorder
from engine.queues import queue_gauges
from engine.task import TaskSpec

ROOT = Path(__file__).resolve().parents[1]


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_task_names_beyond_the_cap_fold_into_other() -> None:
    rec = MetricsRecorder("w", max_keys_per_dimension=2)
    for i, name in enumerate(["a", "b", "c", "d", "a"]):
        t = 1.7e9 + i
        rec.record_task("q", "default", name, t, t + 0.001, t + 0.002, t + 0.003, t + 0.004)
    fams = _families(render_prometheus(rec.snapshot()))
    by_task = fams["spool_stage_duration_by_task_seconds"]
    assert by_task.type == "histogram"  # type: ignore[attr-defined]
    counts = {
        (s.labels["stage"], s.labels["task"]): s.value
        for s in by_task.samples  # type: ignore[attr-defined]
        if s.name.endswith("_count")
    }
    assert counts[("end_to_end", "a")] == 2 and counts[("end_to_end", "other")] == 2
    assert {task for _, task in counts} == {"a", "b", "other"}
    by_queue = fams["spool_stage_duration_by_queue_seconds"]
    assert {s.labels["queue"] for s in by_queue.samples} == {"q"}  # type: ignore[attr-defined]


async def test_queue_gauges_and_oldest_pending_age(redis: Redis, prefix: str) -> None:
    broker = make_broker(redis, prefix)
    await broker.enqueue([TaskSpec("x", queue="mail"), TaskSpec("x", queue="mail", delay_s=60)])
    now_ms = time.time() * 1000 + 5000  # five seconds on: the oldest has waited ~5 s
    (gauge,) = await queue_gauges(broker, now_ms)
    assert (gauge.queue, gauge.pending, gauge.scheduled, gauge.active) == ("mail", 1, 1, 0)
    assert gauge.oldest_pending_age_s is not None and 4.5 < gauge.oldest_pending_age_s < 7
    async with api_client(broker) as api:
        resp = await api.get("/metrics")
        text = await resp.text()
    fams = _families(text)
    pending = fams["spool_queue_pending_tasks"].samples  # type: ignore[attr-defined]
    assert [(s.labels["queue"], s.value) for s in pending] == [("mail", 1)]
    age = fams["spool_queue_oldest_pending_age_seconds"].samples  # type: ignore[attr-defined]
    assert age[0].value >= 0
    assert fams["spool_queue_late_completions"].type == "counter"  # type: ignore[attr-defined]
    assert "spool_queue_dead_evictions" in fams


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_worker_metrics_port_serves_this_process(redis_url: str, prefix: str) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spool_console.cli", "worker", "--redis-url", redis_url,
         "--prefix", prefix, "--metrics-port", str(port), "--concurrency", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        def scrape() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return r.read().decode()
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                return None

        deadline = time.monotonic() + 30
        while (text := scrape()) is None:
            assert time.monotonic() < deadline, "the worker's /metrics never answered"
            time.sleep(0.1)  # a poll with a deadline: the port opens once Redis answers
        fams = _families(text)
        assert fams["spool_stage_duration_seconds"].type == "histogram"  # type: ignore[attr-defined]
        assert "spool_tasks_started" in fams
    finally:
        proc.terminate()
        proc.wait(timeout=30)
