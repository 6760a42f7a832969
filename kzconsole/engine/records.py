"""Reading a stored input while a job runs (`iter_records`): on the hot path, a bare `csv.reader`
and one dict per row. It trusts the file: the checks of `kzconsole.engine.csvio` accepted it when
the job was created.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from kzconsole.engine.csvio import InputFormatError

if TYPE_CHECKING:
    from kzconsole.engine.store.base import Store

__all__ = ["iter_records", "open_stored_rows"]


def iter_records(
    path: str | os.PathLike[str] | BinaryIO, *, skip: int = 0
) -> tuple[list[str], Iterator[dict[str, str | None]]]:
    """The header and the data rows of a stored input (a file `check_input` accepted), given as
    a path or a binary stream (the store's reader; closed with the iterator).

    Rows are dicts column -> value, an empty cell being None. Blank lines are skipped, and so are
    the first `skip` data rows (to resume a job). The file is closed when the iterator is exhausted,
    closed, or garbage-collected. Raises `InputFormatError(None, "no header")` for a file with no
    records; other damage is not looked for (the file was checked when it was stored).
    """
    records = _records(os.fspath(path) if isinstance(path, (str, os.PathLike)) else path, skip)
    # Run the generator up to its first yield: the header is read eagerly, and a started generator
    # runs its `finally` (closing the file) when it is garbage-collected, even if never iterated.
    header: list[str] = next(records)
    return header, records


def _records(path: str | BinaryIO, skip: int) -> Iterator[Any]:
    if isinstance(path, str):
        f = open(path, newline="", encoding="utf-8-sig")
    else:
        f = io.TextIOWrapper(path, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(f, strict=True)
        for row in reader:
            if row:
                header = [name.strip() for name in row]
                break
        else:
            raise InputFormatError(None, "no header")
        yield header
        if skip > 0:
            for row in reader:
                if row:
                    skip -= 1
                    if not skip:
                        break
        for row in reader:
            if row:
                # dict(zip()) runs in C; most rows have no empty cell to turn into None.
                if "" in row:
                    yield {k: v or None for k, v in zip(header, row, strict=False)}
                else:
                    yield dict(zip(header, row, strict=False))
    finally:
        f.close()


def open_stored_rows(store: Store, job_id: str, *, skip: int) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """A job's stored input as :func:`iter_records` reads it, from row ``skip`` on (close the rows
    when done). Raises the store's errors, and ``ValueError`` when the input is gone or cannot be
    read."""
    stream = store.open_file(job_id, "input")
    if stream is None:
        raise ValueError("the stored input is gone")
    try:
        return iter_records(stream, skip=skip)
    except BaseException:
        stream.close()
        raise
