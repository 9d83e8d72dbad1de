"""`LimitsPanel`: one queue's flow control — limits, tasks held back and why, counters."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.flow import QueueFlow


class LimitsPanel(Static):
    """Declared limits with slots in use, tasks waiting on a rate or concurrency limit,
    hand-back counters and the queue's max_wait."""

    DEFAULT_CSS = """
    LimitsPanel { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("no limits on this queue", **kwargs)

    def show(self, flow: QueueFlow | None) -> None:
        """Redraw from one queue's flow snapshot."""
        if flow is None:
            self.update(Text("no limits on this queue", style="dim"))
            return
        waiting = Text()
        waiting.append("waiting: ", style="dim")
        waiting.append(f"{flow.waiting_rate:,}", style="bold yellow" if flow.waiting_rate else "")
        waiting.append(" on a rate limit · ", style="dim")
        waiting.append(
            f"{flow.waiting_concurrency:,}",
            style="bold yellow" if flow.waiting_concurrency else "",
        )
        waiting.append(" on a concurrency limit", style="dim")
        counters = Text(
            f"handed back so far: {flow.throttled_rate:,} rate · "
            f"{flow.throttled_concurrency:,} concurrency · unique locks {flow.unique_locks:,}",
            style="dim",
        )
        max_wait = (
            f"max_wait {flow.max_wait_s:g} s · {flow.starved_served:,} low tasks served early"
            if flow.max_wait_s
            else "max_wait off (strict priority)"
        )
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold")
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        running = dict(flow.running_limited)
        for name, text in flow.limits.items():
            in_use = sum(n for slot, n in running.items() if slot.split("[")[0] == name)
            grid.add_row(name, text, f"running {in_use:,}")
        if not flow.limits:
            grid.add_row(Text("no task limits declared", style="dim"), "", "")
        out = Table.grid()
        out.add_row(grid)
        out.add_row(waiting)
        out.add_row(counters)
        out.add_row(Text(max_wait, style="dim"))
        self.update(out)


def held_back(flow: QueueFlow | None) -> str:
    """A queue list cell: tasks waiting on limits, `r 3 · c 5`, or `-`."""
    if flow is None or not (flow.waiting_rate or flow.waiting_concurrency):
        return "-"
    return f"r {flow.waiting_rate:,} · c {flow.waiting_concurrency:,}"
