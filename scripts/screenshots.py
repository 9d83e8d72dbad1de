"""Take the README screenshots: the real console on demo data, one SVG per screen and dialog.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--size 160x45]
    .venv/bin/python scripts/screenshots.py --size 80x24 --out screenshots/80x24 --warmup 25

Starts a private embedded server in a temp dir, runs the console with `--demo` (mixed load,
some of it failing into the dead-letter queue), adds a few dead letters with distinct errors,
runs a quick benchmark twice (so screen 5 shows a report beside the previous run), lets the
charts fill for a while, and saves each screen with `App.save_screenshot`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import queues as queue_ops  # noqa: E402
from engine.embedded import EmbeddedServer  # noqa: E402
from engine.task import TaskSpec  # noqa: E402
from spool_console.app import SpoolApp  # noqa: E402
from spool_console.engine_host import EngineHost  # noqa: E402
from spool_console.screens.bench import BenchScreen  # noqa: E402
from spool_console.testing import bury, make_settings  # noqa: E402

SHOTS = (
    ("1", "1-dashboard"),
    ("2", "2-queues"),
    ("3", "3-dead-letters"),
    ("4", "4-workers"),
    ("5", "5-benchmarks"),
)


async def wait_for(pilot, predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        await pilot.pause(0.1)


def save(app: SpoolApp, out: Path, name: str) -> None:
    """The screen as `out/name.svg`."""
    app.save_screenshot(f"{name}.svg", path=str(out))
    print(f"saved {out / (name + '.svg')}")


async def seed(broker) -> None:
    """Queues nobody consumes here: dead letters with distinct errors, a paused backlog."""
    await bury(
        broker, "reports", [("reports.render", "KeyError: 'customer_id' missing from row 17")]
    )
    await bury(broker, "mail", [("mail.send", "SMTP 421: too many connections from 10.0.0.7")] * 2)
    await queue_ops.pause(broker, "reports")
    specs = [
        TaskSpec(
            "reports.render", args=[n], kwargs={"format": "pdf"}, queue="reports", priority=level
        )
        for n, level in enumerate(["high"] * 12 + ["default"] * 40 + ["low"] * 90)
    ]
    await broker.enqueue(specs)


async def take(out: Path, size: tuple[int, int], warmup_s: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="spool-shots-"))
    server = EmbeddedServer(tmp / "valkey", persistence=False).start()
    try:
        settings = make_settings(
            server.url,
            "spool",
            workers=None,
            demo=True,
            min_workers=5,
            max_workers=30,
            queues=("default",),
        )
        host = EngineHost(settings)
        app = SpoolApp(settings, host, bench_store=tmp / "bench-last.json", own_host=True)
        async with app.run_test(size=size) as pilot:
            await wait_for(
                pilot, lambda: host.snapshot.connected and host.broker is not None, 20, "Redis"
            )
            await asyncio.wrap_future(host.run_soon(lambda: seed(host.broker)))
            # Screen 5: two quick runs, so the second is shown beside the first with deltas.
            await pilot.press("5")
            bench = app.screen
            assert isinstance(bench, BenchScreen)
            # Open-loop runs of a few seconds, so the live chart has a line to show.
            bench.query_one("#type").value = "sustained"
            await pilot.pause(0.2)
            for _run in range(2):
                bench.query_one("#f-rate").value = "3000"
                bench.query_one("#f-duration_s").value = "4"
                bench.query_one("#f-workers").value = "8"
                bench.focus()
                await pilot.press("r")
                await wait_for(
                    pilot,
                    lambda: (
                        bench.job is not None
                        and bench.job.future.done()
                        and bench.report is not None
                        and bench.previous is bench.report
                    ),
                    120,
                    "benchmark",
                )
            await pilot.press("1")
            started = time.monotonic()
            await wait_for(
                pilot, lambda: time.monotonic() - started > warmup_s, warmup_s + 5, "warm-up"
            )
            out.mkdir(parents=True, exist_ok=True)
            for key, name in SHOTS:
                await pilot.press(key)
                await pilot.pause(1.5)  # a couple of snapshots land
                save(app, out, name)
            await pilot.press("3")
            await pilot.pause(1.0)
            await pilot.press("question_mark")
            await pilot.pause(0.5)
            save(app, out, "6-help")
            await pilot.press("escape")
            # One queue's page (the paused backlog), then the audit trail of the actions above.
            await pilot.press("2")
            await pilot.pause(1.0)
            queues = app.screen.query_one("#queues")
            queues.move_cursor(row=queues.get_row_index("reports"))
            await pilot.press("enter")
            await pilot.pause(1.5)
            save(app, out, "7-queue-page")
            await pilot.press("n")  # the enqueue form, then one task enqueued (audited)
            await pilot.pause(1.0)
            save(app, out, "8-enqueue-form")
            await pilot.press("ctrl+s")
            await pilot.pause(1.0)
            await pilot.press("escape", "a")
            await pilot.pause(1.5)
            save(app, out, "9-audit")
            await pilot.press("escape")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--size", default="160x45")
    parser.add_argument(
        "--warmup", type=float, default=45.0, help="seconds of demo load before the shots"
    )
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    asyncio.run(take(Path(args.out), (w, h), args.warmup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
