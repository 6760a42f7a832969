"""CSV output (contract 4.4): how every output row of every job is written, on the hot path.

`CsvRowWriter` writes one row at a time; `CsvBatchWriter` renders a batch of rows exactly as it
would, about twice as fast; `plain_row` makes a row of a plugin's cells into cells `csv.writer`
renders as the contract says.
"""

from __future__ import annotations

import csv
import io
import numbers
from collections.abc import Callable, Iterable, Sequence
from itertools import chain

from kzconsole.engine.cells import safe_text

__all__ = ["CsvRowWriter", "CsvBatchWriter", "plain_row", "csv_text"]


class _Sink:
    __slots__ = ("write",)

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write


# Cell types csv.writer already renders as the contract wants (None empty, str as is, int, float
# and bool by str()); a row of only these goes straight through.
_PLAIN = frozenset((str, type(None), int, float, bool))
_all_plain = _PLAIN.issuperset


class CsvRowWriter:
    """Writes rows as contract 4.4 says: `\\n` line ends, None as an empty cell, a cell quoted
    when it holds `,` `"` `\\r` or `\\n`, and a row whose only cell is empty as `""`.

    Cells: str as is, int/float/bool (any `numbers.Number`) by `str()`, anything else by `repr()`.
    `write` receives exactly one string per row.
    """

    __slots__ = ("_writerow",)

    def __init__(self, write: Callable[[str], object]) -> None:
        # csv.writer quotes a cell holding any character of the line terminator, but with "\n" as
        # terminator a lone "\r" would go out unquoted and read back as a line break. So rows are
        # produced with "\r\n" (which makes both characters force quoting) and the sink swaps the
        # terminator for "\n": one slice per row, measured cheaper than scanning cells for "\r".
        def swap(line: str) -> object:
            return write(line[:-2] + "\n")

        self._writerow = csv.writer(_Sink(swap), lineterminator="\r\n").writerow

    def writerow(self, cells: Sequence[object]) -> None:
        """Write one row (a list or tuple of cells). An empty row is a ValueError."""
        if cells and _all_plain(map(type, cells)):
            self._writerow(cells)
        else:
            self._writerow(_render_cells(cells))


def _render_cells(cells: Iterable[object]) -> list[object]:
    rendered: list[object] = []
    for cell in cells:
        if cell is None or type(cell) in _PLAIN or isinstance(cell, str):
            rendered.append(cell)  # a str subclass is written as its text, like a str
        elif isinstance(cell, numbers.Number):
            rendered.append(safe_text(str, cell))  # csv.writer would use repr() for float subclasses
        else:
            rendered.append(safe_text(repr, cell))
    if not rendered:
        raise ValueError("cannot write a row with no cells")
    return rendered


def plain_row(cells: Sequence[object]) -> list[object]:
    """A new list of the cells, each one `csv.writer` renders as `CsvRowWriter` would (see
    `CsvBatchWriter`). An empty row is a ValueError."""
    if cells and _all_plain(map(type, cells)):
        return list(cells)  # a copy: the caller may reuse its list before the batch is written
    return _render_cells(cells)


class CsvBatchWriter:
    """Renders a batch of rows exactly as `CsvRowWriter` writes them, about twice as fast.

    Cells should be str, None, int, float or bool already (`plain_row` makes a row so): one C-level
    pass over the batch checks that, and a batch holding another type has its rows rendered by
    `plain_row` first (so an object is written by `repr()` when its batch is written, not when its
    row was added). The batch goes through one `csv.writer.writerows` call with `\\n` line ends,
    so no Python code runs per row. The one difference from `CsvRowWriter` is a lone `\\r` in a
    cell, which csv.writer only quotes when `\\r` is in the line terminator; so a batch whose text
    holds any `\\r` (rare: it needs a cell with a carriage return) is rendered again, row by row,
    by a `CsvRowWriter`. Not thread-safe: one per output.
    """

    __slots__ = ("_parts", "_writerows", "_exact")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._writerows = csv.writer(_Sink(self._parts.append), lineterminator="\n").writerows
        self._exact = CsvRowWriter(self._parts.append)

    def render(self, rows: Sequence[Sequence[object]]) -> str:
        """The rows as CSV text (contract 4.4). Rows must not be empty (`plain_row` refuses them)."""
        parts = self._parts
        if not _all_plain(map(type, chain.from_iterable(rows))):
            rows = [plain_row(row) for row in rows]
        try:
            self._writerows(rows)
            text = "".join(parts)
        finally:
            parts.clear()
        if "\r" not in text:
            return text
        try:
            for row in rows:
                self._exact.writerow(row)
            return "".join(parts)
        finally:
            parts.clear()


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """The rows rendered as `CsvRowWriter` writes them (for small outputs and tests)."""
    buffer = io.StringIO()
    writer = CsvRowWriter(buffer.write)
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()
