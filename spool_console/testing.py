"""Helpers for driving the console in tests and scripts (Pilot), against a real server."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from engine.broker import Broker
from engine.outcomes import failed
from engine.task import TaskSpec
from spool_console.engine_host import EngineHost
from spool_console.settings import Settings


def make_settings(redis_url: str | None, prefix: str, **overrides: Any) -> Settings:
    """Settings as the CLI would resolve them, with test-friendly defaults (no local pool)."""
    base = Settings(
        redis_url=redis_url,
        prefix=prefix,
        queues=("default",),
        task_modules=(),
        concurrency=None,
        min_workers=2,
        max_workers=8,
        workers=0,
        lease_s=10.0,
        grace_s=2.0,
        log_format="text",
        log_level="info",
        json=False,
        http=None,
        metrics_port=None,
        api_token=None,
        no_ui=False,
        otel=False,
        demo=False,
        read_only=False,
        connect_deadline_s=5.0,
        status_interval_s=5.0,
    )
    return replace(base, **overrides)


def make_app(settings: Settings, *, interval_s: float = 0.2, **kwargs: Any):
    """A `SpoolApp` whose host snapshots often (tests see changes quickly); it owns the host.

    Screens are built on their first visit unless `warm_up=True`: building all five at start
    took about 2 s of CPU per app, 40 % of the console tests' time (tests/test_console_dead.py
    and test_console_queues.py: 82 s → 48 s); the tests about start-up itself turn it on.
    """
    from spool_console.app import SpoolApp

    host = EngineHost(settings, interval_s=interval_s)
    kwargs.setdefault("bench_store", None)
    kwargs.setdefault("warm_up", False)
    return SpoolApp(settings, host, pump_s=0.05, own_host=True, **kwargs)


async def wait_until(
    pilot: Any, predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = ""
) -> Any:
    """Poll `predicate` between message-loop turns until it is truthy; fail after a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        await pilot.pause(0.02)


async def engine_call(app: Any, fn: Callable[[Broker], Any]) -> Any:
    """Run `fn(broker)` on the engine loop from a test."""
    return await app.host.call(fn)


async def bury(
    broker: Broker, queue: str, items: Sequence[tuple[str, str]], exc_type: str = "RuntimeError"
) -> list[str]:
    """Make one dead letter per (task name, error message); returns their ids."""
    ids = []
    for name, message in items:
        (task_id,) = await broker.enqueue(
            [TaskSpec(name=name, queue=queue, args=[len(ids)], max_retries=0)]
        )
        fetched = (await broker.fetch(queue, 1, "test-worker")).tasks
        try:
            raise RuntimeError(message)
        except RuntimeError as error:
            await broker.settle(
                queue,
                [failed(fetched[0], error, broker.config, exc_type=exc_type, worker="test-worker")],
            )
        ids.append(task_id)
    return ids


_TEXT_RE = re.compile(
    r'<text [^>]*?x="([\d.]+)"[^>]*clip-path="url\(#terminal-\d+-line-(\d+)\)">([^<]*)</text>'
)
_CHAR_W = 12.2  # Rich's SVG export: one cell is 12.2 units wide


def screen_text(app: Any) -> str:
    """The visible screen as plain lines of text (parsed from `export_screenshot()`'s SVG).

    Rich leaves blank segments out of the SVG, so characters are placed by their x offset.
    """
    lines: dict[int, dict[int, str]] = {}
    for x, number, content in _TEXT_RE.findall(app.export_screenshot()):
        col = round(float(x) / _CHAR_W)
        row = lines.setdefault(int(number), {})
        for i, ch in enumerate(html.unescape(content).replace("\xa0", " ")):
            row[col + i] = ch
    out = []
    for n in sorted(lines):
        row = lines[n]
        out.append("".join(row.get(i, " ") for i in range(max(row) + 1)) if row else "")
    return "\n".join(out)
