"""What a job's own arguments may be: account ids and the pause after each row.

The facade refuses bad values from every caller (command line, console, API) before anything is
stored; the command line and the configuration call the same checks up front, so that their
message names the option or the key. Each check returns the value or raises ValueError with
what was expected and what was given.
"""

from __future__ import annotations

import re

ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")

# A day. A pause is waited for between rows (a stop does not wait for it), so a larger one is a
# mistake, and an unbounded one overflows the store's integers and the clock's arithmetic.
MAX_WAIT_MS = 86_400_000


def check_account_id(value: object) -> str:
    """An account id: 32 lowercase hex characters, as Kazoo writes them (stored as given, so an
    upper-case id would be another account)."""
    if isinstance(value, str) and ACCOUNT_ID.fullmatch(value):
        return value
    hint = ""
    if isinstance(value, str) and ACCOUNT_ID.fullmatch(value.lower()):
        hint = " (in lower case)"
    raise ValueError(f"expected an account id: 32 lowercase hex characters{hint}, got {value!r}")


def check_wait_ms(value: object) -> int:
    """The pause after each row, in milliseconds: a whole number from 0 to MAX_WAIT_MS."""
    # bool is an int in Python, but True is a mistake, not 1 ms.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WAIT_MS:
        return value
    raise ValueError(f"expected a whole number of milliseconds from 0 to {MAX_WAIT_MS} (a day), got {value!r}")


def check_job_arguments(**values: object) -> None:
    """Refuse a bad account id (any keyword but ``wait_ms``) or pause (``wait_ms``) before anything
    is stored: EngineError naming the argument. None values are not given, so not checked."""
    from kzconsole.engine.errors import EngineError

    for name, value in values.items():
        if value is None:
            continue
        check = check_wait_ms if name == "wait_ms" else check_account_id
        try:
            check(value)
        except ValueError as exc:
            raise EngineError(f"{name}: {exc}") from None
