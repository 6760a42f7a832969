"""A row-cursor DataTable and a Tree that move with the console's keys (j/k, g/G as in the jobs
list), and whose ``enter`` is labelled in the footer."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Tree

VI_KEYS_TABLE = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g", "scroll_top", "First", show=False),
    Binding("G", "scroll_bottom", "Last", show=False),
]


def highlighted_key(table: DataTable[Any]) -> str | None:
    """The key of the table's highlighted row, or None (an empty table, no valid cursor)."""
    if table.row_count == 0:
        return None
    try:
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except Exception:  # noqa: BLE001 - a cursor past the rows of a table being refilled
        return None
    return None if key.value is None else str(key.value)


def row_table(enter_label: str) -> type[DataTable[Any]]:
    """A DataTable class showing ``enter`` as ``enter_label`` in the footer. DataTable's own
    binding is hidden, and as the focused widget it would hide the screen's; a priority binding on
    the screen instead would take ``enter`` from an input the app may show over it."""

    class RowTable(DataTable[Any]):
        BINDINGS = [Binding("enter", "select_cursor", enter_label), *VI_KEYS_TABLE]

        _quiet = False

        def set_cell(self, row_key: Any, column_key: Any, value: Any) -> None:
            """``update_cell``, repainting that cell only (DataTable repaints the whole table: the
            triggers' countdown sent nine lines a second for a few digits)."""
            self._quiet = True
            try:
                self.update_cell(row_key, column_key, value)
            finally:
                self._quiet = False
            self.refresh_coordinate(Coordinate(self.get_row_index(row_key), self.get_column_index(column_key)))

        def refresh(self, *regions: Any, **kwargs: Any) -> Any:
            if self._quiet and not regions and not kwargs.get("layout"):
                return self
            return super().refresh(*regions, **kwargs)

    RowTable.__name__ = RowTable.__qualname__ = f"{enter_label.replace(' ', '')}Table"
    return RowTable


class KeyTree(Tree[Any]):
    """A Tree with the console's movement keys."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_home", "First", show=False),
        Binding("G", "scroll_end", "Last", show=False),
    ]
