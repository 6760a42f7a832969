"""A CSV file as a table (a job's input or output), read as it grows, with every cell readable.

:class:`CsvData` reads a job's file through a stream the engine opens (``Engine.open_output`` /
``open_input``), from where it stopped last time: a running job's output costs what was appended.
It keeps the byte offset of each record, not the records (a 200,000-row output is 1.6 MB of
offsets), and reads the rows on screen in blocks when they are painted. Only whole records are
taken (a quoted cell may hold line breaks).

:class:`CsvTable` paints only the visible lines, with a row cursor. Column widths fit the rows on
screen (a long value further down is not cut by widths measured on the first rows); left and right
move a whole column; ``enter`` opens the highlighted row with every cell in full, wrapped.
``failed_only`` narrows it to rows whose ``error`` cell is set; ``follow`` keeps the end in view as
rows arrive, as ``tail -f`` does (``G`` turns it on, moving up turns it off).
"""

from __future__ import annotations

import csv
import io
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kzconsole.widgets import glyphs
from kzconsole.widgets.keys import end_keys, line_keys, page_keys

MAX_ROWS = 20_000_000  # offsets kept (8 bytes each); beyond, the viewer says so
MIN_WIDTH = 3
MAX_WIDTH = 40  # a column's width on screen, unless it is the last one shown (it takes the rest)
BLOCK = 64  # rows read and parsed together
CACHED_BLOCKS = 64
READ_CHUNK = 4 * 1024 * 1024  # bytes read per pass while catching up with a big file

Opener = Callable[[], "BinaryIO | None"]


def cell_text(cell: str) -> str:
    """A cell on one line: line breaks shown as a symbol."""
    return cell.replace("\r", "").replace("\n", glyphs.G.newline)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells (with the ellipsis when cut), padded to it."""
    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    if width <= 1:
        return crop(text, width).ljust(width)
    out = crop(text, width - 1) + glyphs.G.ellipsis
    return out + " " * (width - cell_len(out))


def crop(text: str, width: int) -> str:
    out = []
    used = 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)


class CsvData:
    """A CSV file's header and where each record starts, appended to as the file grows."""

    def __init__(self, opener: Opener | None) -> None:
        self.opener = opener
        self.header: list[str] | None = None
        self.error_col: int | None = None
        self.offsets = array("Q")  # byte offset of each data record
        self.end = 0  # bytes taken so far (whole records only)
        self.failed: list[int] = []  # indexes of records whose error cell is set
        self.truncated = False
        self.problem: str | None = None
        self._memory: list[list[str]] | None = None
        self._blocks: OrderedDict[int, list[list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._reader: BinaryIO | None = None

    @classmethod
    def from_rows(cls, header: Sequence[str], rows: Sequence[Sequence[str]]) -> CsvData:
        """Rows already in memory (the new-job dialog's preview)."""
        data = cls(None)
        data.header = [h.strip() for h in header]
        data._memory = [list(r) for r in rows]
        return data

    def __len__(self) -> int:
        return len(self._memory) if self._memory is not None else len(self.offsets)

    # ------------------------------------------------------- reading (a worker thread)

    def read_more(self) -> bool:
        """Read what was appended since the last call. True if records (or the header) came."""
        if self.opener is None or self.truncated:
            return False
        stream = self.opener()
        if stream is None:
            return False
        added = False
        with stream:
            size = stream.seek(0, io.SEEK_END)
            if size < self.end:
                self._reset()  # cut back (a resumed run rewrites its last rows): read it again
            while self.end < size and not self.truncated:
                stream.seek(self.end)
                data = stream.read(min(READ_CHUNK, size - self.end))
                cut = _complete_prefix(data)
                if cut == 0:
                    if len(data) < size - self.end:
                        continue  # a record longer than a chunk: read more of it next time
                    break
                if not self._take(data[:cut]):
                    break
                added = True
        return added

    def _reset(self) -> None:
        with self._lock:
            self.header = None
            self.error_col = None
            self.offsets = array("Q")
            self.end = 0
            self.failed = []
            self._blocks.clear()

    def _take(self, chunk: bytes) -> bool:
        base = self.end
        lines = chunk.split(b"\n")[:-1]  # the chunk ends with a newline
        starts = []
        pos = 0
        texts = []
        for line in lines:
            starts.append(pos)
            pos += len(line) + 1
            texts.append(line.decode("utf-8", "replace") + "\n")
        if base == 0 and texts and texts[0].startswith("\ufeff"):
            texts[0] = texts[0][1:]
        reader = csv.reader(texts)
        header = self.header
        error_col = self.error_col
        offsets: list[int] = []
        failed: list[int] = []
        first_index = len(self.offsets)
        line = 0
        try:
            for record in reader:
                start, line = line, reader.line_num
                if not record:
                    continue
                if header is None:
                    header = [h.strip() for h in record]
                    error_col = header.index("error") if "error" in header else None
                    continue
                if error_col is not None and error_col < len(record) and record[error_col]:
                    failed.append(first_index + len(offsets))
                offsets.append(base + starts[start])
        except csv.Error as exc:
            self.problem = f"not valid CSV after byte {base}: {exc}"
            self.truncated = True
            return False
        with self._lock:
            self.header, self.error_col = header, error_col
            room = MAX_ROWS - len(self.offsets)
            if len(offsets) > room:
                offsets = offsets[:room]
                failed = [i for i in failed if i < first_index + room]
                self.truncated = True
            self.offsets.extend(offsets)
            self.failed.extend(failed)
            self.end = base + len(chunk)
            # A block read while it was the last, partial one has grown: read it again.
            self._blocks.pop(first_index // BLOCK, None)
        return True

    # ---------------------------------------------------------- rows (the UI thread)

    def row(self, index: int) -> list[str]:
        if self._memory is not None:
            return self._memory[index] if 0 <= index < len(self._memory) else []
        if not 0 <= index < len(self.offsets):
            return []
        block_no = index // BLOCK
        pos = index % BLOCK
        block = self._blocks.get(block_no)
        if block is None or pos >= len(block):
            # Not read yet, or read while it was the last block and shorter (rows came since).
            block = self._read_block(block_no)
            self._blocks[block_no] = block
            if len(self._blocks) > CACHED_BLOCKS:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(block_no)
        return block[pos] if pos < len(block) else []

    def _read_block(self, block_no: int) -> list[list[str]]:
        with self._lock:
            first = block_no * BLOCK
            last = min(len(self.offsets), first + BLOCK)
            start = self.offsets[first]
            stop = self.offsets[last] if last < len(self.offsets) else self.end
        try:
            data = self._read_at(start, stop - start)
            if len(data) < stop - start:
                # The reader kept from an earlier read ends where the file did then (a store hands
                # out a small file as a copy of its bytes; a file that grew may have moved): the
                # rows taken since are read through a new one.
                self.close()
                data = self._read_at(start, stop - start)
        except (OSError, ValueError) as exc:
            self.close()
            self.problem = f"cannot read the file: {exc}"
            return []
        text = data.decode("utf-8", "replace")
        return [r for r in csv.reader(io.StringIO(text, newline="")) if r]

    def _read_at(self, start: int, size: int) -> bytes:
        if self._reader is None and self.opener is not None:
            self._reader = self.opener()
        if self._reader is None:
            return b""
        self._reader.seek(start)
        return self._reader.read(size)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except OSError:
                pass


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
    """The rows of a :class:`CsvData`: a header line, row numbers, a cursor, fitted columns."""

    HELP_NAME = "The table"

    BINDINGS: ClassVar[list[BindingType]] = [
        *line_keys("cursor(-1)", "cursor(1)"),
        Binding("left,h", "column(-1)", "Column left", show=False, tooltip="one column left"),
        Binding("right,l", "column(1)", "Column right", show=False, tooltip="one column right"),
        Binding("0", "first_column", "First column", show=False, tooltip="back to the first column"),
        Binding(
            "dollar_sign",
            "last_column",
            "Last column",
            key_display="$",
            show=False,
            tooltip="to the last column (the error, in an output)",
        ),
        *page_keys("page(-1)", "page(1)"),
        *end_keys(
            "top",
            "bottom",
            last_tooltip="to the last row; while the job runs, stay at the end as rows arrive (tail -f)",
        ),
        Binding("enter", "open_row", "Open row", tooltip="every cell of the highlighted row, in full"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "csv-table--header",
        "csv-table--number",
        "csv-table--error",
        "csv-table--note",
        "csv-table--cursor",
    }

    DEFAULT_CSS = """
    CsvTable { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    CsvTable > .csv-table--header { text-style: bold underline; }
    CsvTable > .csv-table--number { color: $text-muted; }
    CsvTable > .csv-table--error { color: $error; }
    CsvTable > .csv-table--note { color: $text-muted; text-style: italic; }
    CsvTable > .csv-table--cursor { background: $block-cursor-blurred-background; text-style: bold; }
    CsvTable:focus > .csv-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    """

    failed_only: reactive[bool] = reactive(False)
    follow: reactive[bool] = reactive(False)

    @dataclass
    class RowOpened(Message):
        """enter on a row: the screen shows it in full."""

        table: CsvTable
        position: int

    def __init__(
        self,
        data: CsvData | None = None,
        *,
        empty_note: str = "no rows yet",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.data = data if data is not None else CsvData(None)
        self.empty_note = empty_note
        self.cursor = 0  # position in the rows shown (all, or the failed ones)
        self.column = 0  # first data column shown
        self._layout_key: Any = None
        self._widths: list[tuple[int, int]] = []
        self._known_rows = 0  # rows at the last resize (those below the screen paint nothing)
        self._size_stale = False  # rows came that the virtual size does not count yet

    # ---------------------------------------------------------------- data

    def set_data(self, data: CsvData) -> None:
        self.data = data
        self.cursor = 0
        self.column = 0
        self._layout_key = None
        self.update_size()
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def index_at(self, position: int) -> int | None:
        """The data row shown at ``position`` (None past the end)."""
        if self.failed_only:
            failed = self.data.failed
            return failed[position] if 0 <= position < len(failed) else None
        return position if 0 <= position < len(self.data) else None

    @property
    def row_count(self) -> int:
        return len(self.data.failed) if self.failed_only else len(self.data)

    def _number_width(self) -> int:
        return max(3, len(str(len(self.data))))

    def update_size(self) -> None:
        self._size_stale = False
        self._known_rows = self.row_count
        self.virtual_size = Size(self.size.width, self.row_count + 1)

    def appended(self) -> None:
        """Call after ``data.read_more()`` added rows: resize; at the end when following. Rows
        added below the screen repaint nothing (a running job's output grows every second)."""
        top = int(self.scroll_offset.y)
        if not self.follow and self._known_rows - top >= self._page:
            # Nothing on screen changes; a new virtual size would repaint the whole table (and its
            # scrollbar) every second: it is taken when the cursor moves.
            self._size_stale = True
            return
        self.update_size()
        if self.follow and self.row_count:
            self.cursor = self.row_count - 1
            self._scroll_to_cursor()
        self._layout_key = None
        self.refresh()

    def watch_failed_only(self) -> None:
        self.cursor = 0
        self._layout_key = None
        self.update_size()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    # -------------------------------------------------------------- movement

    @property
    def _page(self) -> int:
        return max(1, self.size.height - 1)

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + self._page:
            self.scroll_to(y=self.cursor - self._page + 1, animate=False, immediate=True)

    def move_cursor(self, position: int) -> None:
        if self._size_stale:
            self.update_size()
        if not self.row_count:
            return
        old = self.cursor
        self.cursor = max(0, min(self.row_count - 1, position))
        top = int(self.scroll_offset.y)
        self._scroll_to_cursor()
        if int(self.scroll_offset.y) == top:
            self._refresh_position(old)
            self._refresh_position(self.cursor)
        else:
            self.refresh()

    def _refresh_position(self, position: int) -> None:
        y = position - int(self.scroll_offset.y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def action_cursor(self, step: int) -> None:
        if step < 0:
            self.follow = False
        self.move_cursor(self.cursor + step)

    def action_page(self, step: int) -> None:
        if step < 0:
            self.follow = False
        self.move_cursor(self.cursor + step * self._page)

    def action_top(self) -> None:
        self.follow = False
        self.move_cursor(0)

    def action_bottom(self) -> None:
        self.follow = True
        self.move_cursor(self.row_count - 1)

    def action_column(self, step: int) -> None:
        header = self.data.header or []
        if step > 0 and not self.hidden_columns()[1]:
            return  # the last column is already on screen
        column = max(0, min(max(0, len(header) - 1), self.column + step))
        if column != self.column:
            self.column = column
            self._layout_key = None
            self.refresh()

    def action_first_column(self) -> None:
        self.action_column(-self.column)

    def action_last_column(self) -> None:
        """Scroll right until the last column is on screen."""
        for _ in range(len(self.data.header or [])):
            if not self.hidden_columns()[1]:
                break
            self.column += 1
            self._layout_key = None
        self.refresh()

    def action_open_row(self) -> None:
        if self.index_at(self.cursor) is not None:
            self.post_message(self.RowOpened(self, self.cursor))

    def _on_click(self, event: Any) -> None:
        if event.y >= 1:
            self.move_cursor(int(self.scroll_offset.y) + event.y - 1)

    def on_resize(self) -> None:
        self._layout_key = None
        self.update_size()

    # ---------------------------------------------------------------- layout

    def order(self) -> list[int]:
        """The data columns in display order: with only the failed rows, their error comes first."""
        header = self.data.header or []
        columns = list(range(len(header)))
        error = self.data.error_col
        if self.failed_only and error is not None:
            columns.remove(error)
            columns.insert(0, error)
        return columns

    def _layout(self) -> list[tuple[int, int]]:
        """(column, width) for the columns shown, from ``self.column`` on in display order, fitted
        to the header and the rows on screen; when every one fits, the last takes what is left of
        the line; when not, the last one is cut at the edge."""
        top = int(self.scroll_offset.y)
        key = (top, self.size.width, self.column, self.failed_only, self.row_count, len(self.data.header or ()))
        if key == self._layout_key:
            return self._widths
        header = self.data.header or []
        columns = self.order()[self.column :]
        widths = {c: max(MIN_WIDTH, cell_len(header[c]) + 2) for c in columns}  # + room for an arrow
        for position in range(top, min(self.row_count, top + self._page)):
            index = self.index_at(position)
            if index is None:
                break
            row = self.data.row(index)
            for c in columns:
                if c < len(row):
                    widths[c] = max(widths[c], cell_len(cell_text(row[c])))
        room = self.size.width - self._number_width() - 1
        out: list[tuple[int, int]] = []
        for n, c in enumerate(columns):
            want = widths[c]
            # The error of a failed row may take the whole line: it is what the operator reads.
            cap = room if (self.failed_only and n == 0 and c == self.data.error_col) else MAX_WIDTH
            capped = min(want, cap)
            if capped + 1 > room:
                out.append((c, max(MIN_WIDTH, room - 1)))
                break
            out.append((c, capped))
            room -= capped + 1
        if out and len(out) == len(columns) and room > 0:
            last, w = out[-1]
            out[-1] = (last, min(widths[last], w + room))
        self._layout_key = key
        self._widths = out
        return out

    def hidden_columns(self) -> tuple[int, int]:
        """How many columns are left of the screen and right of it."""
        total = len(self.data.header or [])
        shown = len(self._layout())
        return self.column, max(0, total - self.column - shown)

    # ---------------------------------------------------------------- paint

    def _note(self, text: str, width: int) -> Strip:
        return Strip([Segment(fit(text, width), self.get_component_rich_style("csv-table--note"))], width)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        data = self.data
        if data.header is None:
            if y == 0:
                return self._note(data.problem or self.empty_note, width)
            return Strip.blank(width, self.rich_style)
        layout = self._layout()
        if y == 0:
            style = self.rich_style + self.get_component_rich_style("csv-table--header")
            left, right = self.hidden_columns()
            g = glyphs.G
            titles = [data.header[c] for c, _ in layout]
            if right and titles:
                # More columns to the right: say so where they would be (right arrow moves there).
                _c, w = layout[-1]
                titles[-1] = crop(titles[-1], max(0, w - 2)).ljust(max(0, w - 2)) + " " + g.more_right
            number = (g.more_left + "#") if left else "#"
            return self._strip(number, titles, [w for _, w in layout], style, None, width)
        position = int(self.scroll_offset.y) + y - 1
        index = self.index_at(position)
        if index is None:
            if position == self.row_count:
                note = ""
                if data.truncated:
                    note = (
                        data.problem or f"(only the first {len(data):,} rows are shown; save the file to read it all)"
                    )
                elif self.row_count == 0:
                    note = "no failed rows" if self.failed_only else self.empty_note
                if note:
                    return self._note(note, width)
            return Strip.blank(width, self.rich_style)
        row = data.row(index)
        style = self.rich_style
        if position == self.cursor:
            style = style + self.get_component_rich_style("csv-table--cursor")
        cells = [row[c] if c < len(row) else "" for c, _ in layout]
        error_at = next((n for n, (c, _) in enumerate(layout) if c == data.error_col), None)
        return self._strip(str(index + 1), cells, [w for _, w in layout], style, error_at, width)

    def _strip(
        self, number: str, cells: Sequence[str], widths: Sequence[int], style: Style, error_at: int | None, width: int
    ) -> Strip:
        number_style = self.get_component_rich_style("csv-table--number", partial=True)
        error_style = self.get_component_rich_style("csv-table--error", partial=True)
        segments = [Segment(number.rjust(self._number_width()), style + number_style), Segment(" ", style)]
        for i, w in enumerate(widths):
            cell = cells[i] if i < len(cells) else ""
            seg_style = style + error_style if i == error_at and cell else style
            segments.append(Segment(fit(cell_text(cell), w), seg_style))
            segments.append(Segment(" ", style))
        return Strip(segments).crop_extend(0, width, style)
