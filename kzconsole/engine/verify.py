"""Contract 2.4: the cells of a row a CSV task's function must not see.

Before a CSV task's function is called for a row, a ``None`` cell in a mandatory column is invalid,
and each non-empty cell whose column has a verifier in the task's category is passed to it (declared
column or not); a falsy result or an exception makes the cell invalid (fail closed: a verifier that
forgets to return rejects). The row is then a failure naming the invalid columns in input-header
order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["row_check"]


def row_check(
    input_header: Sequence[str], mandatory: Sequence[str], verifiers: Mapping[str, Callable[[str], Any]]
) -> Callable[[Mapping[str, Any]], list[str] | None] | None:
    """A function giving a row's invalid columns (None: none), or None when no row of this input
    can have any (no mandatory column, no verifier for its columns): the row loop then checks
    nothing."""
    check_cols = [c for c in input_header if c in verifiers]
    if not (check_cols or mandatory):
        return None
    order = {c: i for i, c in enumerate(input_header)}
    checks = [(c, verifiers[c]) for c in check_cols]

    def bad_fields(row: Mapping[str, Any]) -> list[str] | None:
        bad: list[str] | None = None
        for col in mandatory:
            if row.get(col) is None:
                bad = [col]
                break
        for col, verify in checks:
            value = row[col]
            if value is None:
                continue
            try:
                valid = verify(value)
            except BaseException:  # noqa: BLE001 - fail closed, also on sys.exit()
                valid = False
            if not valid:
                if bad is None:
                    bad = []
                if col not in bad:
                    bad.append(col)
        if bad is not None:
            bad.sort(key=lambda c: order.get(c, len(order)))
        return bad

    return bad_fields
