"""Checking CSV and JSON input when a job is created (contract 3.1, 3.2, 3.3).

`check_input` copies the source (a path or a binary stream such as stdin) to a temporary file and
streams that copy through Python's `csv` module, so a 1 GB file is checked in constant memory and at
the `csv` module's speed, and only a valid input is ever left at the destination. Error details
(which line an invalid byte or an unclosed quote is on) are worked out on the error path only, by
re-reading that copy. Reading a stored input is `kzconsole.engine.records`; writing output,
`kzconsole.engine.csvout`. Nothing here knows about tasks, jobs or the store.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import operator
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, BinaryIO

from kzconsole.engine.csvout import CsvRowWriter
from kzconsole.engine.jsonrecords import JsonFormatError, JsonRecords, json_cell

__all__ = ["InputFormatError", "InputCheck", "check_input", "sniff_format", "FIELD_SIZE_LIMIT", "MAX_LISTED_LINES"]

#: Longest cell accepted, in characters. Python's default (128 KiB) is far too small for real
#: inputs (a JSON blob in a cell, a long note); an unbounded one would let a quote that is never
#: closed swallow a whole 1 GB file into one cell. The limit is process-wide (it lives in the `csv`
#: module), so it is only ever raised here, never lowered.
FIELD_SIZE_LIMIT = 64 * 1024 * 1024
if csv.field_size_limit() < FIELD_SIZE_LIMIT:
    csv.field_size_limit(FIELD_SIZE_LIMIT)

#: Contract 3.3: at most this many lines are listed in `missing_mandatory_values`.
MAX_LISTED_LINES = 100

# Bytes copied, or re-scanned on an error path, at a time.
_CHUNK = 1 << 20
# Bytes decoded at a time while parsing (io's default; tests shrink it to split lines and
# characters across reads).
_TEXT_CHUNK = 8192


# --------------------------------------------------------------------------------------------
# Results and errors


class InputFormatError(Exception):
    """The input is not valid by contract 3.1 (CSV) or 3.2 (JSON).

    `line` is the 1-based physical line of a CSV file, or the 1-based record number (or JSON text
    line, for a syntax error) of a JSON input; `None` when no line applies (`no header`).
    """

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line
        self.message = message

    def as_error(self) -> dict[str, Any]:
        """The contract's `csv` error object."""
        return {"line": self.line, "message": self.message}


@dataclass
class InputCheck:
    """What `check_input` found.

    `errors` holds the contract 3.3 keys that apply to the file itself: `csv`,
    `missing_mandatory_fields`, `missing_mandatory_values` (the caller adds `unknown_task` and
    `expected_content`). `header is None` with no errors means "no input" (an empty JSON array).
    """

    errors: dict[str, Any] = field(default_factory=dict)
    header: list[str] | None = None
    total_rows: int = 0
    file_name: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def sniff_format(name: str | None, fmt: str | None) -> str:
    """`"json"` when asked for, or when the input's name ends with `.json`; `"csv"` otherwise."""
    if fmt == "json" or (name is not None and name.lower().endswith(".json")):
        return "json"
    return "csv"


# --------------------------------------------------------------------------------------------
# Checking an input when a job is created


def check_input(
    src: str | os.PathLike[str] | BinaryIO,
    dest: str | os.PathLike[str],
    *,
    fmt: str = "csv",
    mandatory: Sequence[str] = (),
) -> InputCheck:
    """Validate `src` and, only if it passes every check, store it at `dest` as CSV.

    `src` is a path or a binary stream (read to its end, not closed). `fmt` is `"csv"` (contract
    3.1) or `"json"` (3.2). `mandatory` are the task's mandatory columns (3.3). The stored file is a
    byte-for-byte copy of a CSV source, or the JSON records converted with `CsvRowWriter`; it is
    created with mode 0o600 under a temporary name in `dest`'s folder and renamed into place, so a
    reader never sees half a file and a rejected input leaves nothing behind. An empty JSON array
    (or an envelope whose records are `[]` or null) is "no input": nothing is stored and the result
    has no errors and `header=None`. Errors reading or writing files (`OSError`) are raised.
    """
    if fmt not in ("csv", "json"):
        raise ValueError(f"unknown input format {fmt!r} (expected 'csv' or 'json')")
    dest = os.fspath(dest)
    folder = os.path.dirname(os.path.abspath(dest))
    # mkstemp creates the file with mode 0o600 and O_EXCL: no other user can read a job's input.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dest)}.", suffix=".part")
    stored = False
    try:
        with open(fd, "wb") as out:
            if fmt == "csv":
                check = _check_csv_source(src, out, tmp, mandatory)
            else:
                check = _check_json_source(src, out, mandatory)
            keep = check.ok and check.header is not None
            if keep:
                out.flush()
                os.fsync(out.fileno())
        if keep:
            os.replace(tmp, dest)
            stored = True
        return check
    finally:
        if not stored:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _missing_fields(header: Sequence[str], mandatory: Sequence[str]) -> list[str]:
    present = set(header)
    return [name for name in mandatory if name not in present]


def _result(
    header: list[str],
    total: int,
    mandatory: Sequence[str],
    missing_lines: list[int],
    missing_count: int,
    file_name: str | None = None,
) -> InputCheck:
    errors: dict[str, Any] = {}
    missing = _missing_fields(header, mandatory)
    if missing:
        errors["missing_mandatory_fields"] = missing
    if missing_count:
        errors["missing_mandatory_values"] = {"lines": missing_lines, "count": missing_count}
    return InputCheck(errors=errors, header=header, total_rows=total, file_name=file_name)


def _invalid(err: InputFormatError, file_name: str | None = None) -> InputCheck:
    return InputCheck({"csv": err.as_error()}, header=None, total_rows=0, file_name=file_name)


# ---- CSV


def _check_csv_source(
    src: str | os.PathLike[str] | BinaryIO, out: BinaryIO, copy_path: str, mandatory: Sequence[str]
) -> InputCheck:
    # Copy first, then parse the copy: the source is read once (it may be a pipe), what is parsed
    # is exactly what gets stored, the parse runs on a plain file (measured faster than teeing
    # the bytes through a Python stream while parsing), and error details can re-read the copy.
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            shutil.copyfileobj(f, out, _CHUNK)
    else:
        shutil.copyfileobj(src, out, _CHUNK)
    out.flush()
    with open(copy_path, encoding="utf-8-sig", newline="") as text:
        text._CHUNK_SIZE = _TEXT_CHUNK  # type: ignore[attr-defined]
        try:
            return _scan_csv(text, mandatory)
        except UnicodeDecodeError:
            return _invalid(InputFormatError(_utf8_error_line(copy_path), "invalid UTF-8"))
        except _QuoteError as exc:
            line = _quote_open_line(copy_path, exc.start, exc.end)
            return _invalid(InputFormatError(line, exc.message))
        except InputFormatError as exc:
            return _invalid(exc)


class _QuoteError(Exception):
    """Internal: a quoted cell ran to the end of the file (or past the cell limit).

    Carries the line span of the record so the line where the cell opened can be found on the
    error path.
    """

    def __init__(self, message: str, start: int, end: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end


def _clean_header(row: list[str], line: int) -> list[str]:
    header = [name.strip() for name in row]
    seen: set[str] = set()
    for number, name in enumerate(header, 1):
        if not name:
            raise InputFormatError(line, f"empty column name in the header (column {number})")
        if name in seen:
            raise InputFormatError(line, f"duplicate column name in the header: {name!r}")
        seen.add(name)
    return header


def _scan_csv(text: Iterable[str], mandatory: Sequence[str]) -> InputCheck:
    """Parse and check a whole CSV text stream; raise InputFormatError or _QuoteError if invalid."""
    reader = csv.reader(text, strict=True)
    # `line` is the number of physical lines consumed before the record being read, so the record
    # starts at `line + 1`. csv.reader yields [] for a blank line, so blank lines advance it too.
    line = 0
    try:
        header_row: list[str] | None = None
        for row in reader:
            if row:
                header_row = row
                break
            line = reader.line_num
        if header_row is None:
            raise InputFormatError(None, "no header")
        header = _clean_header(header_row, line + 1)
        line = reader.line_num
        ncols = len(header)
        present = [header.index(name) for name in mandatory if name in header]
        total = 0
        missing_lines: list[int] = []
        missing_count = 0
        if not present:
            for row in reader:
                if len(row) == ncols:
                    total += 1
                elif row:
                    raise InputFormatError(line + 1, f"row has {len(row)} cells, the header has {ncols}")
                line = reader.line_num
        else:
            # itemgetter with two or more indexes returns a tuple, so `"" in cells(row)` is one
            # C-level test per row whatever the number of mandatory columns.
            cells = operator.itemgetter(*(present * 2 if len(present) == 1 else present))
            for row in reader:
                if len(row) == ncols:
                    total += 1
                    if "" in cells(row):
                        missing_count += 1
                        if len(missing_lines) < MAX_LISTED_LINES:
                            missing_lines.append(line + 1)
                elif row:
                    raise InputFormatError(line + 1, f"row has {len(row)} cells, the header has {ncols}")
                line = reader.line_num
    except csv.Error as exc:
        raise _csv_error(exc, line + 1, reader.line_num) from None
    if total == 0:
        raise InputFormatError(None, "no data rows")
    return _result(header, total, mandatory, missing_lines, missing_count)


def _csv_error(exc: csv.Error, start: int, current: int) -> Exception:
    """Translate the csv module's message for the record starting at line `start`."""
    message = str(exc)
    if message.startswith("',' expected after"):
        return InputFormatError(current, "text after a closing quote")
    if message.startswith("unexpected end of data"):
        return _QuoteError("unclosed quote", start, None)
    if message.startswith("field larger than field limit"):
        return _QuoteError(
            f"a cell is longer than {FIELD_SIZE_LIMIT} characters (is a quote left open?)", start, current
        )
    return InputFormatError(current, f"malformed CSV: {message}")


# A quoted cell that was already open when this line began closes on it: its text has an odd quote
# that is not part of a doubled `""`.
_CLOSES_CARRIED_CELL = re.compile(r'[^"]*(?:""[^"]*)*"(?!")')


def _quote_open_line(path: str, start: int, end: int | None) -> int:
    """The line where the last quoted cell of the record starting at `start` opened.

    A record only goes on past a line break that is inside a quoted cell. So on every later line of
    the record a quoted cell is open when the line begins; if it closes on that line, the cell that
    is still open at the end of the record opened on that line (or later on it). The last such line
    is the answer; if there is none, the cell opened on the record's first line.
    """
    opened = start
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        for number, text in enumerate(islice(f, start, end), start + 1):
            if _CLOSES_CARRIED_CELL.match(text):
                opened = number
    return opened


def _count_breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _utf8_error_line(source: str | BinaryIO) -> int:
    """The physical line (1-based) of the first invalid UTF-8 byte in the file at `source` (a
    path, or a binary file read from where it is)."""
    line = 1
    carry = b""
    prev_cr = False
    with open(source, "rb") if isinstance(source, str) else contextlib.nullcontext(source) as f:
        while True:
            chunk = f.read(_CHUNK)
            final = not chunk
            data = carry + chunk
            try:
                _, used = codecs.utf_8_decode(data, "strict", final)
                bad = False
            except UnicodeDecodeError as exc:
                used, bad = exc.start, True
            good = data[:used]
            if good:
                line += _count_breaks(good)
                if prev_cr and good[:1] == b"\n":
                    line -= 1  # a \r\n split across two chunks is one break
                prev_cr = good[-1:] == b"\r"
            if bad or final:
                return line
            carry = data[used:]


# ---- JSON


def _check_json_source(src: str | os.PathLike[str] | BinaryIO, out: BinaryIO, mandatory: Sequence[str]) -> InputCheck:
    """The records, one at a time (kzconsole/engine/jsonrecords.py). The columns are every key
    seen, so the header is known only at the end; it is nearly always the first record's keys,
    so one pass writes the rows under those, and only when a later record brings another key is
    the input read again under the whole header (``out`` is emptied first)."""
    with _seekable(src) as f:
        start = f.tell()
        known: list[str] | None = None  # the whole header, once a first pass found it
        for _ in range(2):
            records = JsonRecords(f)
            try:
                written = _json_pass(records, out, mandatory, known)
            except JsonFormatError as exc:
                return _invalid(_json_error(exc, f, start), records.file_name)
            except InputFormatError as exc:
                return _invalid(exc, records.file_name)
            header, total, missing_lines, missing_count, complete = written
            if total == 0:
                return InputCheck(errors={}, header=None, total_rows=0, file_name=records.file_name)
            if not header:
                return _invalid(InputFormatError(None, "no header: the records have no keys"), records.file_name)
            if complete:
                break
            known = header
            f.seek(start)
            out.seek(0)
            out.truncate()
    return _result(header, total, mandatory, missing_lines, missing_count, records.file_name)


def _json_pass(
    records: JsonRecords, out: BinaryIO, mandatory: Sequence[str], header: list[str] | None
) -> tuple[list[str], int, list[int], int, bool]:
    """Write the records as CSV under ``header`` (None: the first record's keys), checking the
    mandatory cells. Returns the columns seen, the record count, the lines and count of records
    missing a mandatory cell, and whether every record fit the header (if not, the rest was only
    read for its keys; what the caller keeps only if the check passes: it removes a rejected
    input's file)."""
    columns = dict.fromkeys(header or ())  # an ordered set
    present = [name for name in mandatory if name in columns]
    missing_lines: list[int] = []
    missing_count = 0
    total = 0
    fits = True
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        writer = CsvRowWriter(text.write)
        if header:
            writer.writerow(header)
        for total, record in enumerate(records, 1):
            row = _json_row(total, record)
            try:
                if header is None:
                    columns.update(dict.fromkeys(row))
                    header = list(columns)
                    present = [name for name in mandatory if name in columns]
                    if header:
                        writer.writerow(header)
                elif not fits or not row.keys() <= columns.keys():
                    fits = False
                    for name in row.keys() - columns.keys():
                        name.encode("utf-8")  # the header of the second pass: checked here
                    columns.update(dict.fromkeys(row))
                    continue
                if present and any(row.get(name) is None for name in present):
                    missing_count += 1
                    if len(missing_lines) < MAX_LISTED_LINES:
                        missing_lines.append(total)
                if header:
                    writer.writerow([row.get(name) for name in header])
            except UnicodeEncodeError:
                # "\ud800" is valid JSON but no character (a lone surrogate): not UTF-8 text.
                raise InputFormatError(total, f"record {total} holds a lone surrogate (not a character)") from None
        text.flush()
    finally:
        text.detach()
    return list(columns), total, missing_lines, missing_count, fits


@contextlib.contextmanager
def _seekable(src: str | os.PathLike[str] | BinaryIO) -> Iterator[BinaryIO]:
    """``src`` as a file that can be read twice: a path opened, a seekable stream as it is (not
    closed), anything else (a pipe) spooled to a private temporary file first."""
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            yield f
    elif src.seekable():
        yield src
    else:
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(src, spool, _CHUNK)
            spool.seek(0)
            yield spool


def _json_error(exc: JsonFormatError, f: BinaryIO, start: int) -> InputFormatError:
    if exc.utf8:
        f.seek(start)
        return InputFormatError(_utf8_error_line(f), exc.message)
    return InputFormatError(exc.line, exc.message)


def _json_row(number: int, record: Any) -> dict[str, str | None]:
    """One record's cells by column (names stripped like CSV header names)."""
    if type(record) is not dict:
        raise InputFormatError(number, f"record {number} is not an object")
    row: dict[str, str | None] = {}
    try:
        for key, value in record.items():
            name = key.strip()
            if not name:
                raise InputFormatError(number, f"record {number} has an empty key")
            if name in row:
                raise InputFormatError(number, f"record {number} has two keys for column {name!r}")
            row[name] = json_cell(value)
    except RecursionError:
        raise InputFormatError(None, "invalid JSON: nested too deeply") from None
    return row
