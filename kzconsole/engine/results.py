"""What a task's return value means: contract 2.3's table, written once, as one pure function.

:func:`interpret` takes what a task function returned (or the exception it raised, wrapped in
:class:`Raised`) for one of three calls (a CSV task's row, a noinput task's call, the ``finish``
hook) and says what follows: the output rows to write (already mapped onto the output header), the
successes and failures to count, the iterator state for the next call, whether the job ends, and a
line for the job log. It writes nothing and touches no job: the row loop applies the outcome.

The row loop handles the commonest result itself (``OK``/``None`` from a CSV task: the input row is
written with an empty ``error``) without calling this; :func:`interpret` gives the same answer for
it, and the tests check both agree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kzconsole.engine.cells import exception_text, invalid_return
from kzconsole.plugin import OK, STOP, Next, TaskSpec

__all__ = [
    "CSV",
    "NOINPUT",
    "FINISH",
    "Header",
    "Outcome",
    "Raised",
    "KEEP",
    "interpret",
    "LIST_OF_ROWS_IN_CSV",
    "resolve_output_header",
]

CSV = "csv"  # a CSV task's function, for one input row
NOINPUT = "noinput"  # a noinput task's function (or one value its generator yielded)
FINISH = "finish"  # the finish hook

LIST_OF_ROWS_IN_CSV = "a CSV task writes at most one row per input row"


class _Keep:
    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # Outcome.state when the call handed no new state on


class Raised:
    """The exception a task function raised (passed to :func:`interpret` instead of a result)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_NOKEY = object()  # a dict key no input row has: maps the `error` column to an empty cell


class Header:
    """An output header (contract 2.5), with what mapping a row onto it needs."""

    __slots__ = ("columns", "width", "error_index", "keys")

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.width = len(self.columns)
        self.error_index = self.columns.index("error")
        # The input row mapped onto the header: every column by name, but `error` never from it.
        self.keys = [(_NOKEY if c == "error" else c) for c in self.columns]

    def input_row(self, row: Mapping[str, Any], error: str | None) -> list[Any]:
        """ "The input row is written" (contract 2.3): mapped by column name, with ``error``."""
        cells = [row.get(k) for k in self.keys]  # type: ignore[call-overload]
        cells[self.error_index] = error
        return cells

    def error_row(self, error: str) -> list[Any]:
        """A row with nothing but ``error``."""
        cells: list[Any] = [None] * self.width
        cells[self.error_index] = error
        return cells

    def dict_row(self, d: Mapping[Any, Any]) -> list[Any]:
        """A dict written by column name; keys that are not columns are ignored."""
        return [d.get(c) for c in self.columns]

    def pad(self, row: Sequence[Any]) -> Sequence[Any]:
        """A row with fewer cells than the header, padded with empty cells."""
        if len(row) < self.width:
            return list(row) + [None] * (self.width - len(row))
        return row


@dataclass(frozen=True)
class Outcome:
    """What follows one call (see the module docstring)."""

    rows: tuple[Sequence[Any], ...] = ()  # output rows, mapped onto the header
    success: int = 0
    failure: int = 0
    state: Any = KEEP  # the next call's `it`, or KEEP
    end: bool = False  # the job ends after this call (STOP, Next(STOP, ...), a noinput error)
    warning: str | None = None  # a line for the job log


_STOP_NOW = Outcome(end=True)


def _is_rowlike(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict))


def _is_list_of_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and _is_rowlike(value[0])


def _too_long(row: Sequence[Any], header: Header) -> str:
    return f"row has {len(row)} cells, the output header has {header.width}"


def _dict_outcome(d: Mapping[Any, Any], header: Header) -> tuple[list[Any], int, int]:
    error = d.get("error")
    ok = error is None or error == ""
    return header.dict_row(d), int(ok), int(not ok)


def interpret(kind: str, result: Any, header: Header, row: Mapping[str, Any] | None = None) -> Outcome:
    """The outcome of one call of ``kind`` (:data:`CSV`, :data:`NOINPUT` or :data:`FINISH`) that
    returned ``result`` (a :class:`Raised` when it raised). ``row`` is the input row of a CSV
    call."""
    if kind == FINISH:
        return _finish(result, header)
    state = KEEP
    end = False
    if result is STOP:
        return _STOP_NOW
    if isinstance(result, Raised):
        text = exception_text(result.exc)
        if kind == CSV:
            assert row is not None
            return Outcome((header.input_row(row, text),), failure=1, warning=f"raised {text}")
        return Outcome((header.error_row(text),), failure=1, end=True, warning=f"call raised {text}; the job ends")
    if isinstance(result, Next):
        if result.state is STOP:
            end = True
        else:
            state = result.state
        if not result.has_result:
            # A CSV row handing state on is a success; a noinput call is not counted.
            return Outcome(success=int(kind == CSV), state=state, end=end)
        result = result.result
        if result is STOP:
            return Outcome(state=state, end=True)
    if kind == CSV:
        assert row is not None
        outcome = _csv(result, header, row)
    else:
        outcome = _noinput(result, header)
    if state is KEEP and not end:
        return outcome
    return Outcome(outcome.rows, outcome.success, outcome.failure, state, end or outcome.end, outcome.warning)


def _csv(result: Any, header: Header, row: Mapping[str, Any]) -> Outcome:
    if result is None or result is OK:
        return Outcome((header.input_row(row, None),), success=1)
    if isinstance(result, str):
        return Outcome((header.input_row(row, result or "unspecified error"),), failure=1)
    if isinstance(result, dict):
        cells, ok, failed = _dict_outcome(result, header)
        return Outcome((cells,), success=ok, failure=failed)
    if isinstance(result, (list, tuple)):
        if not result:
            return Outcome(success=1)
        if isinstance(result, list) and _is_rowlike(result[0]):
            text = LIST_OF_ROWS_IN_CSV if all(_is_rowlike(r) for r in result) else invalid_return(result)
            return Outcome((header.input_row(row, text),), failure=1)
        if len(result) > header.width:
            return Outcome((header.input_row(row, _too_long(result, header)),), failure=1)
        return Outcome((header.pad(result),), success=1)
    return Outcome((header.input_row(row, invalid_return(result)),), failure=1)


def _noinput(result: Any, header: Header) -> Outcome:
    if result is None or result is OK:
        return Outcome(success=1)
    if isinstance(result, str):
        return Outcome((header.error_row(result or "unspecified error"),), failure=1)
    if isinstance(result, dict):
        cells, ok, failed = _dict_outcome(result, header)
        return Outcome((cells,), success=ok, failure=failed)
    if isinstance(result, (list, tuple)):
        if not result:
            return Outcome()
        if not _is_list_of_rows(result):
            if len(result) > header.width:
                return Outcome((header.error_row(_too_long(result, header)),), failure=1)
            return Outcome((header.pad(result),), success=1)
        if not all(_is_rowlike(r) for r in result):
            return Outcome((header.error_row(invalid_return(result)),), failure=1, end=True)
        rows: list[Sequence[Any]] = []
        success = failure = 0
        for r in result:
            if isinstance(r, dict):
                cells, ok, failed = _dict_outcome(r, header)
                rows.append(cells)
                success += ok
                failure += failed
            elif len(r) > header.width:
                rows.append(header.error_row(_too_long(r, header)))
                failure += 1
            else:
                rows.append(header.pad(r))
                success += 1
        return Outcome(tuple(rows), success=success, failure=failure)
    return Outcome((header.error_row(invalid_return(result)),), failure=1, end=True)


def _finish(result: Any, header: Header) -> Outcome:
    """``finish`` (contract 2.1): its rows are written, not counted; a failure is one failure."""
    if isinstance(result, Raised):
        text = exception_text(result.exc)
        return Outcome((header.error_row(f"finish: {text}"),), failure=1, warning=f"finish raised {text}")
    if result is None:
        return Outcome()
    if isinstance(result, str):
        return Outcome((header.error_row(f"finish: {result}" if result else "finish: unspecified error"),), failure=1)
    candidates: list[Any]
    if isinstance(result, dict):
        candidates = [result]
    elif _is_list_of_rows(result):
        candidates = result
    elif isinstance(result, (list, tuple)):
        candidates = [result] if result else []
    else:
        candidates = [None]
    rows: list[Sequence[Any]] = []
    failure = 0
    for r in candidates:
        if isinstance(r, dict):
            rows.append(header.dict_row(r))
        elif isinstance(r, (list, tuple)) and len(r) <= header.width:
            rows.append(header.pad(r))
        else:
            rows.append(header.error_row(f"finish: {invalid_return(r if r is not None else result)}"))
            failure += 1
    return Outcome(tuple(rows), failure=failure)


def resolve_output_header(spec: TaskSpec, input_header: list[str] | None, logger: logging.Logger) -> list[str]:
    """Contract 2.5."""
    header: Any = spec.output_header
    if callable(header):
        try:
            header = header()
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in a plugin must not end the job thread
            logger.warning("output_header raised %s; using the default header", exception_text(exc))
            header = None
        if not (isinstance(header, (list, tuple)) and header and all(isinstance(c, str) for c in header)):
            if header is not None:
                logger.warning("output_header returned %r; using the default header", header)
            header = None
    if header:
        columns = list(header)
    elif spec.is_noinput:
        columns = []
    elif spec.fields:
        columns = list(spec.fields)
    else:
        columns = list(input_header or [])
    if "error" not in columns:
        columns.append("error")
    return columns
