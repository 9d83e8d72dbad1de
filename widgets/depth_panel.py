"""`DepthPanel`: pending depth per queue and priority level, as bars."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.queues import QueueStats

LEVEL_STYLE = {"high": "bold red", "default": "bold yellow", "low": "bold blue"}


class DepthPanel(Static):
    """Bars of pending tasks per level, plus scheduled / active / dead and a paused flag."""

    DEFAULT_CSS = """
    DepthPanel { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("no queues yet", **kwargs)

    def show(
        self, queues: Sequence[QueueStats], bar_width: int = 24, compact: bool = False
    ) -> None:
        """Redraw from queue stats; `compact` puts each queue on one line (short terminals)."""
        if not queues:
            self.update(Text("no queues yet", style="dim"))
            return
        if compact:
            lines = Text(no_wrap=True, overflow="ellipsis")
            for i, q in enumerate(queues):
                if i:
                    lines.append("\n")
                lines.append(f"{q.queue:<10}", style="bold")
                for level in q.levels:
                    lines.append(f" {level[0]} ", style="dim")
                    lines.append(
                        f"{q.depth_by_level.get(level, 0):,}", style=LEVEL_STYLE.get(level, "bold")
                    )
                if q.paused:
                    lines.append(" ‖ paused", style="bold yellow")
            self.update(lines)
            return
        peak = max((n for q in queues for n in q.depth_by_level.values()), default=0) or 1
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        for q in queues:
            head = Text(q.queue, style="bold")
            if q.paused:
                head.append(" ‖ paused", style="bold yellow")
            table.add_row(
                head,
                Text(f"sched {q.scheduled:,} · active {q.active:,} · dead {q.dead:,}", style="dim"),
                "",
            )
            for level in q.levels:
                n = q.depth_by_level.get(level, 0)
                filled = round(bar_width * n / peak) if n else 0
                bar = Text("█" * filled, style=LEVEL_STYLE.get(level, "bold"))
                bar.append("·" * (bar_width - filled), style="dim")
                table.add_row(Text(f"  {level}"), bar, Text(f"{n:,}"))
        self.update(table)
