"""`spool-console worker --metrics-port`: Prometheus /metrics of this process, without the API.

Served by aiohttp on the worker's own event loop (prometheus-client's threaded server would
read the recorder from another thread). Binds 127.0.0.1 unless told otherwise: metrics name
queues and tasks, which is not for every network.
"""

from __future__ import annotations

import time

from aiohttp import web

from engine.broker import Broker
from engine.metrics.prometheus import CONTENT_TYPE, render_prometheus
from engine.metrics.recorder import MetricsRecorder
from engine.queues import queue_gauges


async def start_metrics_server(
    broker: Broker, recorder: MetricsRecorder, port: int, host: str = "127.0.0.1"
) -> web.AppRunner:
    """Serve GET /metrics (this process's stages and counters, every queue's gauges)."""

    async def metrics(_request: web.Request) -> web.Response:
        gauges = await queue_gauges(broker, time.time() * 1000)
        resp = web.Response(body=render_prometheus(recorder.snapshot(), gauges).encode())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
