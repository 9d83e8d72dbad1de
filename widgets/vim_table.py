"""`VimTable`: a DataTable with j/k/g/G and in-place row updates by key (the cursor stays put)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist


class VimTable(DataTable[Any], inherit_bindings=False):
    """The console's one table: vi keys, row cursor, and `sync()` to update rows by key."""

    DEFAULT_CSS = """
    VimTable { height: 1fr; }
    VimTable > .datatable--header { text-style: bold; }
    """

    # Not inherited: DataTable binds `enter` itself, which would hide the screen's `enter`
    # (drill in) from the footer and the help. The rest of DataTable's keys are repeated.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("right", "cursor_right", "Cursor right", show=False),
        Binding("left", "cursor_left", "Cursor left", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *columns: str | tuple[str, str], **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self._columns_spec = columns
        self._col_keys: list[str] = []

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        if self._col_keys:
            return
        for spec in self._columns_spec:
            label, key = (spec, spec.lower()) if isinstance(spec, str) else spec
            self.add_column(label, key=key)
            self._col_keys.append(key)

    def action_scroll_top(self) -> None:
        """`g`: first row."""
        if self.row_count:
            self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        """`G`: last row."""
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def sync(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Make the table hold exactly `rows` (key, cells), in order, updating in place.

        Existing rows are updated cell by cell (so the cursor and scroll stay put), new rows
        are added, vanished rows removed. When only values change, no row moves.
        """
        self._ensure_columns()
        rows = list(rows)
        wanted = [key for key, _ in rows]
        current = self.row_keys()
        cursor_key = self.cursor_key
        if current == wanted:
            for key, cells in rows:
                for col, value in zip(self._col_keys, cells, strict=False):
                    try:
                        if self.get_cell(key, col) != value:
                            self.update_cell(key, col, value, update_width=True)
                    except (CellDoesNotExist, RowDoesNotExist):
                        pass
            return
        wanted_set = set(wanted)
        if (
            set(current) <= wanted_set
            and current == [k for k in wanted if k in set(current)]
            and (wanted[: len(current)] == current)
        ):
            # Only additions at the end (or none): update and append.
            have = set(current)
            for key, cells in rows:
                if key in have:
                    for col, value in zip(self._col_keys, cells, strict=False):
                        if self.get_cell(key, col) != value:
                            self.update_cell(key, col, value, update_width=True)
                else:
                    self.add_row(*cells, key=key)
            return
        # Order changed or rows vanished: rebuild, then put the cursor back on its row.
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if cursor_key is not None and cursor_key in wanted_set:
            self.move_cursor(row=wanted.index(cursor_key), animate=False)
