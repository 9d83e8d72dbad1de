"""Screen 5, Benchmarks: choose a type and parameters, run it live, read the report beside the
previous run with deltas (`BenchReport.compare`)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from engine.bench.params import TYPES, BenchParams
from engine.bench.progress import BenchProgress
from engine.bench.report import BenchReport
from spool_console.bench_job import BenchJob, load_reports, save_reports
from spool_console.screens.base import SpoolScreen
from spool_console.snapshots import ConsoleSnapshot
from widgets.bench_chart import BenchChart

FIELDS = (
    ("tasks", "Tasks"),
    ("workers", "Workers"),
    ("rate", "Rate /s"),
    ("duration_s", "Duration s"),
    ("task", "Task"),
)


_PCT = re.compile(r"\(([+-][\d.]+)%\)")
#: Figures where more is better; for every other figure (times, errors, memory) less is better.
_MORE_IS_BETTER = ("tasks:", "completed:", "throughput:", "achieved_rate:", "offered_rate:")


def report_view(report: BenchReport) -> Text:
    """The headline figures in bold, then the report's own text."""
    e2e = report.stage("end_to_end")
    head = Text()
    head.append(f"{report.throughput:,.0f} tasks/s", style="bold green")
    head.append(f" · {report.completed:,}/{report.tasks:,} done")
    if e2e is not None:
        head.append(
            f" · end-to-end p50 {e2e.p50_ms:,.2f} ms p99 {e2e.p99_ms:,.2f} ms", style="bold"
        )
    if report.timed_out:
        head.append(" · TIMED OUT", style="bold red")
    return head + Text("\n\n") + Text(report.to_text())


def compare_view(text: str) -> Text:
    """`BenchReport.compare` output with changes over 5 % in green (better) or red (worse)."""
    out = Text()
    for line in text.splitlines():
        m = _PCT.search(line)
        style = ""
        if m and abs(float(m.group(1))) >= 5:
            up = float(m.group(1)) > 0
            better = up if line.startswith(_MORE_IS_BETTER) else not up
            style = "green" if better else "red"
        out.append(line + "\n", style=style)
    return out


class BenchScreen(SpoolScreen):
    """Benchmarks run on their own thread and loop, under a private key prefix."""

    SCREEN_KEY = "5"
    DESTRUCTIVE: ClassVar[frozenset[str]] = frozenset({"run"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "run", "Run benchmark", id="bench.run"),
        Binding("escape", "cancel", "Cancel run", id="bench.cancel"),
    ]
    DEFAULT_CSS = """
    BenchScreen .panel { border: round $primary 50%; border-title-color: $text-accent; }
    BenchScreen #bench-top { height: 15; }
    BenchScreen #form { width: 36; height: 100%; padding: 0 1; }
    BenchScreen #form Horizontal { height: 1; margin-bottom: 1; }
    BenchScreen #form Label { width: 11; }
    BenchScreen #form Input, BenchScreen #form Select { width: 1fr; }
    BenchScreen #run { width: 100%; }
    BenchScreen #live { width: 1fr; height: 100%; }
    BenchScreen #progress-line { height: 1; padding: 0 1; }
    BenchScreen ProgressBar { padding: 0 1; }
    BenchScreen #bench-reports { height: 1fr; }
    BenchScreen #this-box, BenchScreen #prev-box { width: 1fr; height: 100%; }
    BenchScreen.-short #bench-top { height: 11; }
    BenchScreen.-short #form Horizontal { margin-bottom: 0; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.job: BenchJob | None = None
        self._was_connected: bool | None = None
        self.report: BenchReport | None = None
        self.previous: BenchReport | None = None
        #: The last finished run of each type: a run is compared with one of its own type.
        self.previous_runs: dict[str, BenchReport] = {}
        self._drawn = 0

    @property
    def store(self) -> Path | None:
        """Where the last report is kept between sessions (None: memory only)."""
        return self.spool.bench_store

    def compose(self) -> ComposeResult:
        yield self.compose_status()
        with Horizontal(id="bench-top"):
            with Vertical(id="form", classes="panel") as box:
                box.border_title = "Benchmark"
                with Horizontal():
                    yield Label("Type")
                    yield Select(
                        [(t, t) for t in TYPES],
                        value="quick",
                        allow_blank=False,
                        compact=True,
                        id="type",
                    )
                # Built with the first type's values: nothing has to find the fields to fill them.
                defaults = self._defaults("quick")
                for name, label in FIELDS:
                    with Horizontal():
                        yield Label(label)
                        yield Input(defaults[name], compact=True, id=f"f-{name}")
                if not self.spool.read_only:
                    yield Button("Run (r)", id="run", compact=True, variant="primary")
            with Vertical(id="live", classes="panel") as box:
                box.border_title = "Live"
                yield ProgressBar(total=1, show_eta=False, id="progress")
                yield Static(
                    "read-only: benchmarks write to Redis, so they are off"
                    if self.spool.read_only
                    else "idle: choose a type and parameters, then press r",
                    id="progress-line",
                )
                yield BenchChart(id="bench-chart", runnable=not self.spool.read_only)
        with Horizontal(id="bench-reports"):
            with VerticalScroll(id="this-box", classes="panel") as box:
                box.border_title = "This run"
                yield Static("no run yet", id="this-report")
            with VerticalScroll(id="prev-box", classes="panel") as box:
                box.border_title = "Previous run → this run (deltas)"
                yield Static("no previous run", id="prev-report")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.previous_runs = load_reports(self.store)
        self.previous = max(self.previous_runs.values(), key=lambda r: r.started_at, default=None)
        if self.previous is not None:
            self.query_one("#prev-report", Static).update(
                Text(
                    f"Last saved run (the next {self.previous.type} run is compared with it):\n\n",
                    style="bold",
                )
                + report_view(self.previous)
            )
        self.set_interval(0.25, self._poll)

    def on_resize(self) -> None:
        self.set_class(self.size.height < 34, "-short")

    def on_snapshot(self, snap: ConsoleSnapshot) -> None:
        # Only when `run` changes availability: each refresh rebuilds the footer (one a
        # snapshot kept it blank under load, as on the Workers screen).
        if snap.connected != self._was_connected:
            self._was_connected = snap.connected
            self.refresh_bindings()

    # -- the form ---------------------------------------------------------------------------
    @staticmethod
    def _defaults(type_: str) -> dict[str, str]:
        """The form's field values for a benchmark type (its BenchParams defaults)."""
        p = BenchParams.for_type(type_)
        return {
            "tasks": str(p.tasks),
            "workers": "" if p.workers is None else str(p.workers),
            "rate": "" if p.rate is None else f"{p.rate:g}",
            "duration_s": f"{p.duration_s:g}",
            "task": p.task,
        }

    def _fill_defaults(self, type_: str) -> None:
        for name, value in self._defaults(type_).items():
            self.query_one(f"#f-{name}", Input).value = value

    @on(Select.Changed, "#type")
    def _type_changed(self, event: Select.Changed) -> None:
        self._fill_defaults(str(event.value))

    def params(self) -> BenchParams:
        """The form as BenchParams (raises ValueError with a message naming the field)."""
        type_ = str(self.query_one("#type", Select).value)
        raw = {name: self.query_one(f"#f-{name}", Input).value.strip() for name, _ in FIELDS}
        labels = dict(FIELDS)
        overrides: dict[str, Any] = {"task": raw["task"] or None}
        for name, cast in (
            ("tasks", int),
            ("workers", int),
            ("rate", float),
            ("duration_s", float),
        ):
            if not raw[name]:
                overrides[name] = None
                continue
            try:
                value = cast(raw[name].replace(",", "").replace("_", ""))
            except ValueError:
                kind = "a whole number" if cast is int else "a number"
                raise ValueError(f"{labels[name]}: {raw[name]!r} is not {kind}") from None
            if not value > 0:  # also refuses NaN
                raise ValueError(f"{labels[name]}: must be above 0 (got {raw[name]})")
            overrides[name] = value
        params = BenchParams.for_type(type_, **overrides)
        if not raw["workers"] and params.workers is not None:
            params = params.replace(workers=None)  # blank: the auto-scaler decides
        return params

    # -- running ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if not allowed:
            return allowed
        running = self.job is not None and not self.job.future.done()
        if action == "run":
            return not running and self.host.snapshot.connected
        if action == "cancel":
            return True if running else None  # listed (dimmed) when idle, so help shows it
        return True

    @on(Button.Pressed, "#run")
    @on(Input.Submitted)
    def _run_pressed(self) -> None:
        """The Run button, or enter in any field."""
        self.action_run()

    def action_run(self) -> None:
        """`r`: start the benchmark described by the form."""
        if self.spool.read_only or (self.job is not None and not self.job.future.done()):
            return
        url = self.host.redis_url
        if url is None or not self.host.snapshot.connected:
            self.notify("not connected to Redis", severity="error")
            return
        try:
            params = self.params()
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            self.query_one("#progress-line", Static).update(Text(f"not run: {exc}", style="red"))
            return
        self.job = BenchJob(url, params).start()
        self._drawn = 0
        self.query_one("#this-report", Static).update(f"running {params.type} …")
        self.query_one("#progress-line", Static).update(
            f"starting {params.type}: {params.offered:,} tasks"
        )
        self.refresh_bindings()
        self._wait(self.job)

    def action_cancel(self) -> None:
        """`escape`: stop the run (it still reports what it measured)."""
        if self.job is not None and not self.job.future.done():
            self.job.cancel()
            self.query_one("#progress-line", Static).update("cancelling …")

    def _poll(self) -> None:
        job = self.job
        if job is None or job.latest is None or len(job.history) == self._drawn:
            return
        self._drawn = len(job.history)
        p = job.latest
        bar = self.query_one(ProgressBar)
        bar.update(total=max(1, p.total), progress=min(p.done, p.total))
        self.query_one("#progress-line", Static).update(
            f"{p.phase} · {p.done:,}/{p.total:,} · {p.elapsed_s:,.1f} s"
            f" · {p.throughput_now:,.0f} tasks/s"
            f" · p99 {p.p99_ms_now:,.2f} ms"
        )
        self.query_one(BenchChart).show(job.history)

    @work(group="bench", exclusive=True)
    async def _wait(self, job: BenchJob) -> None:
        try:
            report = await asyncio.wrap_future(job.future)
        except Exception as exc:
            self.query_one("#this-report", Static).update(f"benchmark failed: {exc}")
            self.notify(f"benchmark failed: {exc}", severity="error")
            self.refresh_bindings()
            return
        self._poll()
        chart = self.query_one(BenchChart)
        if not any(p.throughput_now for p in job.history):
            # Over before the first progress sample: draw the report's own series if any.
            chart.show(
                [
                    BenchProgress("done", p.done, report.tasks, p.t_s, p.throughput, p.p99_ms)
                    for p in report.series
                ],
                empty="finished before the first live sample (runs shorter than ~0.2 s)",
            )
        self.show_report(report)
        self.refresh_bindings()

    def show_report(self, report: BenchReport) -> None:
        """Show a finished report beside the previous run of its type; a finished (not
        cancelled) run becomes the baseline of the next run of that type."""
        self.report = report
        self.query_one("#this-report", Static).update(report_view(report))
        prev = self.previous_runs.get(report.type)
        box = self.query_one("#prev-report", Static)
        if prev is not None:
            box.update(compare_view(report.compare(prev)))
        else:
            box.update(
                f"no previous {report.type} run: the next {report.type} run is compared with"
                + (" the next finished one" if report.cancelled else " this one")
            )
        verdict = "cancelled" if report.cancelled else "finished"
        self.query_one("#progress-line", Static).update(
            f"{verdict}: {report.completed:,}/{report.tasks:,} tasks"
            f" · {report.throughput:,.0f} tasks/s"
        )
        self.notify(f"benchmark {report.type} {verdict}: {report.throughput:,.0f} tasks/s")
        if report.cancelled:
            return  # a cut-short run is no baseline
        self.previous_runs[report.type] = report
        self.previous = report
        if not self.spool.read_only:
            save_reports(self.store, self.previous_runs)
