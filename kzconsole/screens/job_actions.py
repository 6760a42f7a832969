"""The rules and keys of the console's job actions, for the jobs list and the job view alike:
which action applies to a job now (:func:`why_not`), the pause scale, the keys, and a fresh stream
of a job's file. The actions themselves are the app's (:mod:`kzconsole.actions`): they open
screens, and screens import this module.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding

from kzconsole.engine import JobRecord, JobStatus

PAUSE_STEPS = [0, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000]

# action -> (verb for the question, past participle for the report)
BULK_VERBS = {
    "start": ("Start", "started"),
    "stop": ("Stop", "stopped"),
    "restart": ("Restart", "restarted"),
    "restart_failed": ("Re-run the failed rows of", "re-run"),
    "delete": ("Delete", "deleted"),
}


def job_action_bindings(*, many: bool) -> list[Binding]:
    """The keys that act on a job, for the jobs list (``many``: on the marked jobs if there are
    any) and the job view (a new job opens)."""
    then = "; the marked jobs if any" if many else ""
    new = then or "; opens it"
    return [
        Binding("s", "start", "Start", tooltip=f"start a pending job (it waits for a free slot){then}"),
        Binding("x", "stop", "Stop", tooltip=f"stop: a pending job at once, a running one before its next row{then}"),
        Binding("r", "restart", "Restart", tooltip=f"a new job with the same task, input and accounts, queued{new}"),
        Binding(
            "F",
            "restart_failed",
            "Re-run failed",
            tooltip=f"a new job of the failed rows only (same task and accounts), queued{new}",
        ),
        Binding("d", "delete", "Delete", tooltip=f"delete the job and its files (asks first){then}"),
    ]


PAUSE_BINDINGS = [
    Binding(
        "plus", "pause(1)", "Slower", key_display="+", tooltip="longer pause after each row (0, 10, 25 ... 10000 ms)"
    ),
    Binding("minus", "pause(-1)", "Faster", key_display="-", tooltip="shorter pause after each row"),
]


def next_pause(current: int, step: int) -> int:
    """The next pause on the PAUSE_STEPS scale, up (step > 0) or down."""
    if step > 0:
        return next((p for p in PAUSE_STEPS if p > current), max(current, PAUSE_STEPS[-1]) * 2)
    lower = [p for p in PAUSE_STEPS if p < current]
    return lower[-1] if lower else 0


def why_not(action: str, job: JobRecord) -> str | None:
    """Why ``action`` does not apply to ``job`` now (one line for the message line), or None."""
    status = job.status
    if action == "start":
        if status is JobStatus.EXECUTING:
            return "it is already running"
        if status.is_finished:
            return f"it is finished ({status.value}): r restarts it as a new job"
        if job.queued_at is not None:
            return "it is already started (queued, waiting for a free slot)"
    elif action == "stop":
        if status.is_finished:
            return f"it is finished ({status.value})"
        if job.stop_requested:
            return "a stop is already asked: it stops before its next row"
    elif action == "delete":
        if status is JobStatus.EXECUTING:
            return "it is running: stop it first (x)"
    elif action == "pause":
        if status.is_finished:
            return f"it is finished ({status.value}): its pause no longer matters"
    elif action == "input":
        if job.is_noinput:
            return "its task takes no input"
    elif action == "restart_failed":
        if not status.is_finished:
            return "it has not finished: its failed rows are not known yet"
        if not job.failure_count:
            return "no row failed"
        if job.is_noinput:
            return "its task takes no input: there are no rows to re-run (r restarts it)"
    return None


def open_stream(engine: Any, job_id: str, kind: str) -> Any:
    """A fresh binary stream of a job's file (the record read again: a running job's output may
    have moved to its fallback place)."""
    job = engine.get_job(job_id)
    return engine.open_input(job) if kind == "input" else engine.open_output(job)
