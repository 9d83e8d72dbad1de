"""`SlotsTable`: what each concurrency slot of the local pool is running right now."""

from __future__ import annotations

from engine.worker.snapshot import PoolSnapshot
from widgets.vim_table import VimTable


class SlotsTable(VimTable):
    """One row per slot: idle, or the task it runs and for how long."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            ("Slot", "slot"), ("Task", "task"), ("Id", "id"), ("Running", "running"), **kwargs
        )

    def show(self, pool: PoolSnapshot | None) -> None:
        """Fill from the local pool snapshot."""
        rows = []
        for slot in pool.slots if pool else ():
            if slot.task_name is None:
                rows.append((str(slot.index), (f"#{slot.index}", "· idle", "", "")))
            else:
                rows.append(
                    (
                        str(slot.index),
                        (
                            f"#{slot.index}",
                            slot.task_name,
                            (slot.task_id or "")[:12],
                            f"{slot.running_s * 1000:,.0f} ms"
                            if slot.running_s < 10
                            else f"{slot.running_s:,.1f} s",
                        ),
                    )
                )
        self.sync(rows)
