"""The errors the engine facade raises; ``str()`` of each is the message for the operator."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """An operation that cannot be done; ``str()`` is the message for the operator."""


class JobNotFound(EngineError):
    pass


class InvalidJobState(EngineError):
    """The job's status does not allow the operation (``already finished``, ``not running``)."""


class JobRejected(EngineError):
    """Contract 3.3: the job was not created; ``errors`` holds every problem found."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__(describe_errors(errors))


def describe_errors(errors: dict[str, Any]) -> str:
    """One line naming every problem of a contract 3.3 ``errors`` object."""
    parts = []
    if "unknown_task" in errors:
        parts.append(f"unknown task {errors['unknown_task']}")
    if "expected_content" in errors:
        if errors["expected_content"] == "none":
            parts.append("this task takes no input, but input was given")
        else:
            parts.append("this task needs CSV input (--input FILE)")
    if "csv" in errors:
        err = errors["csv"]
        where = f"line {err['line']}: " if err.get("line") is not None else ""
        parts.append(f"invalid input: {where}{err['message']}")
    if "missing_mandatory_fields" in errors:
        parts.append("missing mandatory column(s): " + ", ".join(errors["missing_mandatory_fields"]))
    if "missing_mandatory_values" in errors:
        mv = errors["missing_mandatory_values"]
        lines = ", ".join(str(n) for n in mv["lines"][:20])
        more = "" if mv["count"] <= 20 else f" (and {mv['count'] - 20} more)"
        parts.append(f"empty mandatory value(s) on line(s) {lines}{more}")
    return "; ".join(parts) or "rejected"
