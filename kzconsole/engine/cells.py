"""Text of a plugin's objects, for every place the engine writes one (an output cell, an error
message, a log line): a plugin's object whose ``__repr__`` or ``__str__`` raises must fail its row
(or show as a note), never end the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["safe_text", "exception_text", "invalid_return"]


def safe_text(convert: Callable[[Any], str], value: Any) -> str:
    """``convert(value)`` (``str`` or ``repr``), or a note saying it raised."""
    try:
        return convert(value)
    except BaseException as exc:  # noqa: BLE001 - even sys.exit() in a __repr__ is the plugin's fault
        return f"<{type(value).__name__} object: {convert.__name__}() raised {type(exc).__name__}>"


def exception_text(exc: BaseException) -> str:
    """``ExceptionType: message`` (contract 2.3): the class's bare name; just the name when the
    message is empty."""
    message = safe_text(str, exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def invalid_return(value: Any) -> str:
    """The ``error`` of a return value the contract does not know (contract 2.3)."""
    return f"invalid return value: {safe_text(repr, value)[:200]}"
