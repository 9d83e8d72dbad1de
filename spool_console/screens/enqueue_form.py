"""`EnqueueScreen`: a small form that enqueues test tasks through the engine's own path."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from engine.task import TaskSpec, default_registry
from spool_console.screens.base import keys_footer

_DECLARED = "declared"
TASKS = ("spool.noop", "spool.sleep", "spool.flaky", "spool.fail", "spool.cpu")


class EnqueueScreen(ModalScreen[list[TaskSpec] | None]):
    """Name, args (JSON list), kwargs (JSON object), queue, priority, count → TaskSpecs."""

    DEFAULT_CSS = """
    EnqueueScreen { align: center middle; }
    EnqueueScreen > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    EnqueueScreen Label { margin-top: 1; }
    EnqueueScreen #title { text-style: bold; margin-top: 0; }
    EnqueueScreen #error { color: $error; height: auto; }
    EnqueueScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    EnqueueScreen Button { margin-left: 2; }
    EnqueueScreen .row { height: auto; align-horizontal: left; margin-top: 0; }
    EnqueueScreen .row > Vertical { width: 1fr; height: auto; }
    EnqueueScreen.-short Label { margin-top: 0; }
    EnqueueScreen.-short Horizontal { margin-top: 0; }
    """
    #: Below this many lines the form drops its blank lines, so its buttons stay on screen.
    SHORT_LINES = 32

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="enqueue.cancel"),
        Binding("ctrl+s", "submit", "Enqueue", id="enqueue.submit"),
    ]

    def __init__(self, queue: str, levels: tuple[str, ...]) -> None:
        super().__init__()
        self.queue = queue
        self.levels = levels

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                "Enqueue a test task  (enter or ctrl+s enqueues, escape cancels)", id="title"
            )
            yield Label(
                "Task name (spool.noop, spool.sleep, spool.flaky, spool.fail, spool.cpu, or yours)"
            )
            yield Input("spool.noop", id="name")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Args (JSON list)")
                    yield Input("[]", id="args")
                with Vertical():
                    yield Label("Kwargs (JSON object)")
                    yield Input("{}", id="kwargs")
            with Horizontal(classes="row"):
                with Vertical():
                    yield Label("Queue")
                    yield Input(placeholder=f"declared, else {self.queue}", id="queue")
                with Vertical():
                    yield Label("Priority")
                    yield Select(
                        [(_DECLARED, _DECLARED), *((lv, lv) for lv in self.levels)],
                        value=_DECLARED,
                        allow_blank=False,
                        id="priority",
                    )
                with Vertical():
                    yield Label("Count")
                    yield Input("1", id="count", type="integer")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Enqueue", id="submit", variant="primary")
        yield keys_footer()

    def on_mount(self) -> None:
        self.on_resize()
        self.query_one("#name", Input).focus()

    def on_resize(self) -> None:
        self.set_class(self.app.size.height < self.SHORT_LINES, "-short")

    def specs(self) -> list[TaskSpec]:
        """The form as TaskSpecs; raises ValueError with a message for the form."""
        name = self.query_one("#name", Input).value.strip()
        if not name:
            raise ValueError("a task needs a name")
        try:
            args: Any = orjson.loads(self.query_one("#args", Input).value or "[]")
            kwargs: Any = orjson.loads(self.query_one("#kwargs", Input).value or "{}")
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(args, list):
            raise ValueError("args must be a JSON list")
        if not isinstance(kwargs, dict):
            raise ValueError("kwargs must be a JSON object")
        try:
            count = int(self.query_one("#count", Input).value or "1")
        except ValueError:
            raise ValueError("count must be a number") from None
        if not 1 <= count <= 100_000:
            raise ValueError("count must be 1–100000")
        # Left blank: the task's declaration decides (`@task(queue=...)`), as for any enqueue;
        # a task that declares no queue goes to the queue this form was opened on.
        queue: str | None = self.query_one("#queue", Input).value.strip() or None
        definition = default_registry.get(name)
        if queue is None and (definition is None or definition.queue is None):
            queue = self.queue
        chosen = str(self.query_one("#priority", Select).value)
        priority = None if chosen == _DECLARED else chosen
        return [
            TaskSpec(name, args=args, kwargs=kwargs, queue=queue, priority=priority)
            for _ in range(count)
        ]

    def action_submit(self) -> None:
        """Validate and hand the specs back."""
        try:
            specs = self.specs()
        except ValueError as exc:
            self.query_one("#error", Label).update(str(exc))
            return
        self.dismiss(specs)

    def action_cancel(self) -> None:
        """Nothing is enqueued."""
        self.dismiss(None)

    def on_input_submitted(self) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()
