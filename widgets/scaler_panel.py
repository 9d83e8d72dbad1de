"""`ScalerPanel`: the local pool's concurrency, bounds and the auto-scaler's last decisions."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.worker.snapshot import PoolSnapshot


class ScalerPanel(Static):
    """Concurrency gauge and the newest decisions with their reasons."""

    DEFAULT_CSS = """
    ScalerPanel { height: auto; padding: 0 1; }
    """

    def __init__(self, decisions: int = 5, **kwargs) -> None:
        super().__init__("no local pool", **kwargs)
        self.decisions = decisions

    def show(
        self, pool: PoolSnapshot | None, now_s: float | None = None, absent: str = "no local pool"
    ) -> None:
        """Redraw from the local pool snapshot; `absent` says why there is none."""
        if pool is None:
            self.update(Text(absent, style="dim"))
            return
        now_s = time.time() if now_s is None else now_s
        narrow = 0 < self.size.width < 60
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"concurrency {pool.concurrency}", style="bold")
        head.append(f" · in flight {pool.in_flight}")
        if not narrow:
            head.append(f" · prefetched {pool.prefetched}")
        head.append(
            f" · {pool.min_concurrency}–{pool.max_concurrency}"
            if narrow
            else f" · bounds {pool.min_concurrency}–{pool.max_concurrency}"
        )
        head.append(
            " PINNED" if pool.pinned else " auto", style="bold yellow" if pool.pinned else "green"
        )
        width = 30 if not self.size.width else max(10, min(30, self.size.width - 4))
        used = round(width * pool.in_flight / max(1, pool.max_concurrency))
        cap = round(width * pool.concurrency / max(1, pool.max_concurrency))
        gauge = Text("▕")
        gauge.append("█" * used, style="green")
        gauge.append("▒" * max(0, cap - used), style="green dim")
        gauge.append("·" * max(0, width - max(cap, used)), style="dim")
        gauge.append("▏")
        table = Table.grid(padding=(0, 1), expand=False)
        table.add_column(no_wrap=True, style="dim", min_width=7)
        table.add_column(no_wrap=True, min_width=5)
        table.add_column(no_wrap=narrow, overflow="ellipsis")
        recent = list(pool.decisions)[-self.decisions :][::-1] if self.decisions else []
        for d in recent:
            ago = max(0.0, now_s - d.at_s)
            arrow = Text(
                f"{d.old}→{d.new}",
                style="green" if d.delta > 0 else "yellow" if d.delta < 0 else "",
            )
            table.add_row(f"{ago:,.0f}s ago", arrow, d.reason)
        parts: list = [head, gauge]
        if recent:
            parts.append(table)
        elif self.decisions:
            parts.append(Text("no scaling decisions yet", style="dim"))
        self.update(Group(*parts))
