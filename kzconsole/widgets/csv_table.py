"""A CSV file as a scrollable table (a job's input or output), read as it grows.

The rows live in :class:`CsvData`, which reads a file from where it stopped last time: a running
job's output is re-read a few times a second at the cost of what was appended. Only whole records
are taken (a quoted cell may hold line breaks: a cut is accepted only where the quotes balance).
:class:`CsvTable` is a line-API ``ScrollView``: it paints only the visible lines, so a 100,000-row
output scrolls like a 10-row one. ``failed_only`` narrows it to rows whose ``error`` cell is set.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

MAX_ROWS = 500_000  # kept in memory; beyond, the viewer says so (save the file to read it all)
MAX_WIDTH = 40
ERROR_WIDTH = 60
SAMPLE = 2_000  # rows measured for column widths


class CsvData:
    """The header and rows of a CSV file, appended to as the file grows. Thread-safe reads."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.header: list[str] | None = None
        self.rows: list[list[str]] = []
        self.failed: list[int] = []  # indexes of rows whose error cell is non-empty
        self.error_col: int | None = None
        self.offset = 0
        self.truncated = False
        self.problem: str | None = None
        self.widths: list[int] = []
        self._measured = 0
        self._lock = threading.Lock()

    def read_more(self) -> bool:
        """Read what was appended since the last call. True if rows (or the header) were added."""
        if self.path is None or self.truncated:
            return False
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return False
        if size <= self.offset:
            return False
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(size - self.offset)
        except OSError as exc:
            self.problem = f"cannot read {self.path}: {exc.strerror or exc}"
            return False
        cut = _complete_prefix(data)
        if cut == 0:
            return False
        chunk = data[:cut]
        text = chunk.decode("utf-8", "replace")
        if self.offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        try:
            records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        except csv.Error as exc:
            self.problem = f"not valid CSV after byte {self.offset}: {exc}"
            self.truncated = True
            return False
        with self._lock:
            self.offset += cut
            if self.header is None and records:
                self.header = [h.strip() for h in records.pop(0)]
                if "error" in self.header:
                    self.error_col = self.header.index("error")
            room = MAX_ROWS - len(self.rows)
            if len(records) > room:
                records = records[:room]
                self.truncated = True
            start = len(self.rows)
            self.rows.extend(records)
            if self.error_col is not None:
                col = self.error_col
                self.failed.extend(i for i, r in enumerate(records, start) if col < len(r) and r[col])
            self._measure()
        return True

    def _measure(self) -> None:
        if self.header is None:
            return
        if not self.widths:
            self.widths = [max(3, cell_len(h)) for h in self.header]
        end = min(len(self.rows), SAMPLE)
        for row in self.rows[self._measured:end]:
            for i, cell in enumerate(row):
                if i >= len(self.widths):
                    self.widths.append(3)
                limit = ERROR_WIDTH if i == self.error_col else MAX_WIDTH
                w = min(limit, cell_len(cell.replace("\n", "⏎")))
                if w > self.widths[i]:
                    self.widths[i] = w
        self._measured = max(self._measured, end)


def _complete_prefix(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that ends a record (a newline outside quotes)."""
    end = len(data)
    while end > 0:
        nl = data.rfind(b"\n", 0, end)
        if nl < 0:
            return 0
        if data.count(b'"', 0, nl) % 2 == 0:
            return nl + 1
        end = nl
    return 0


class CsvTable(ScrollView, can_focus=True):
    """Scrollable table over a :class:`CsvData`; a fixed header line and a row-number column."""

    HELP_NAME = "The table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_home", "Top", show=False),
        Binding("end,G", "scroll_end", "Bottom", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"csv-table--header", "csv-table--number", "csv-table--error",
                                             "csv-table--note"}

    DEFAULT_CSS = """
    CsvTable { height: 1fr; scrollbar-size: 1 1; }
    CsvTable > .csv-table--header { text-style: bold underline; }
    CsvTable > .csv-table--number { color: $text-muted; }
    CsvTable > .csv-table--error { color: $error; }
    CsvTable > .csv-table--note { color: $text-muted; text-style: italic; }
    """

    failed_only: reactive[bool] = reactive(False)

    def __init__(self, data: CsvData | None = None, *, empty_note: str = "no rows yet",
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data = data or CsvData(None)
        self.empty_note = empty_note

    # ---------------------------------------------------------------- data

    def set_data(self, data: CsvData) -> None:
        self.data = data
        self.update_size()
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def _indexes(self) -> list[int] | None:
        return self.data.failed if self.failed_only else None

    @property
    def row_count(self) -> int:
        idx = self._indexes()
        return len(idx) if idx is not None else len(self.data.rows)

    def _number_width(self) -> int:
        return max(3, len(str(len(self.data.rows))))

    def update_size(self) -> None:
        widths = self.data.widths
        total = self._number_width() + sum(w + 1 for w in widths) + 1
        self.virtual_size = Size(max(total, 1), self.row_count + 1)

    def appended(self) -> None:
        """Call after ``data.read_more()`` added rows: resize, and follow the end if we were there."""
        at_end = self.scroll_offset.y >= self.max_scroll_y - 1
        self.update_size()
        if at_end and self.scroll_offset.y > 0:
            self.scroll_end(animate=False, immediate=True)
        self.refresh()

    def watch_failed_only(self) -> None:
        self.update_size()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    # ---------------------------------------------------------------- paint

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = int(self.scroll_offset.x), int(self.scroll_offset.y)
        data = self.data
        if data.header is None:
            if y == 0:
                note = data.problem or self.empty_note
                return Strip([Segment(note.ljust(width)[:width], self.get_component_rich_style("csv-table--note"))], width)
            return Strip.blank(width, self.rich_style)
        if y == 0:
            cells = ["#".rjust(self._number_width())] + list(data.header)
            strip = self._strip(cells, self.get_component_rich_style("csv-table--header"), None)
        else:
            n = scroll_y + y - 1
            idx = self._indexes()
            if idx is not None:
                index = idx[n] if n < len(idx) else None
            else:
                index = n if n < len(data.rows) else None
            if index is None:
                if n == self.row_count:
                    note = ""
                    if data.truncated:
                        note = f"(only the first {len(data.rows):,} rows are shown; save the file to read it all)"
                    elif self.row_count == 0:
                        note = "no failed rows" if self.failed_only else self.empty_note
                    if note:
                        return Strip([Segment(note.ljust(width)[:width],
                                              self.get_component_rich_style("csv-table--note"))], width)
                return Strip.blank(width, self.rich_style)
            row = data.rows[index]
            cells = [str(index + 1).rjust(self._number_width())] + row
            strip = self._strip(cells, self.rich_style, data.error_col)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _strip(self, cells: list[str], style: Any, error_col: int | None) -> Strip:
        widths = [self._number_width()] + self.data.widths
        segments = []
        number_style = self.get_component_rich_style("csv-table--number", partial=True)
        error_style = self.get_component_rich_style("csv-table--error", partial=True)
        for i, cell in enumerate(cells):
            w = widths[i] if i < len(widths) else MAX_WIDTH
            text = cell.replace("\r", "").replace("\n", "⏎")
            if cell_len(text) > w:
                text = _crop(text, w - 1) + "…"
            text = text + " " * (w - cell_len(text))
            seg_style = style
            if i == 0 and error_col is not None or (i == 0 and style is self.rich_style):
                seg_style = style + number_style
            elif error_col is not None and i - 1 == error_col and cell:
                seg_style = style + error_style
            segments.append(Segment(text, seg_style))
            segments.append(Segment(" ", style))
        return Strip(segments)


def _crop(text: str, width: int) -> str:
    out = []
    used = 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)
