"""A row-cursor DataTable whose ``enter`` key is labelled in the footer."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


def row_table(enter_label: str) -> type[DataTable]:
    """A DataTable class showing ``enter`` as ``enter_label`` in the footer. DataTable's own
    binding is hidden, and as the focused widget it would hide the screen's; a priority binding on
    the screen instead would take ``enter`` from an input the app may show over it."""

    class RowTable(DataTable):
        BINDINGS = [Binding("enter", "select_cursor", enter_label)]

    RowTable.__name__ = RowTable.__qualname__ = f"{enter_label.replace(' ', '')}Table"
    return RowTable
