"""Jobs: kzconsole looking after itself. ``export`` writes every job record as CSV; a ``daily``
trigger removes finished jobs (and their files) once they are older than a retention period. The
original kept every job forever.

Options (``[plugin_options.jobs]``)::

    retention_days = 30   # remove finished jobs that ended more than this many days ago; 0 keeps them all

Try it::

    kzconsole tasks add jobs export --wait-ms 0 --run
    kzconsole triggers run daily
"""

from __future__ import annotations

import logging

from kzconsole.plugin import JOB_KEYS, STOP, Next, runtime, task, trigger

log = logging.getLogger("kzconsole.plugins.jobs")

RECORD_KEYS = list(JOB_KEYS)  # the export's header: a job record's keys, in the contract's order
FINISHED = frozenset({"success", "failure", "partial", "stopped", "internal_error"})
DEFAULT_RETENTION_DAYS = 30
DAY_S = 86400


@task(
    "jobs",
    "export",
    description="Writes every job record as CSV, newest first",
    doc=(
        "One row per job with the keys of a job record (the JSON of `tasks show --json`) as "
        "columns, this export job included. Timestamps are Unix seconds; the `error` column is "
        "the record's note (why a job ended internal_error, was stopped, ...), not a failure of "
        "the export."
    ),
    output_header=RECORD_KEYS,
)
def export(ctx, it):
    # Rows are lists, not dicts: a dict whose "error" is set would count as a failed row, and here
    # `error` is just the record's note.
    rows = [[job.get(key) for key in RECORD_KEYS] for job in runtime().jobs()]
    # A noinput task may write many rows in one call; Next(STOP, rows) writes them, then ends.
    return Next(STOP, rows)


def retention_days() -> float:
    """``[plugin_options.jobs] retention_days``, checked."""
    value = runtime().options("jobs").get("retention_days", DEFAULT_RETENTION_DAYS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"plugin_options.jobs.retention_days must be a number >= 0, got {value!r}")
    return float(value)


@trigger("daily")
def remove_old_jobs():
    """Remove finished jobs whose ``end_timestamp`` is more than ``retention_days`` ago."""
    days = retention_days()
    if days == 0:
        return  # 0 keeps every job, as the original did
    rt = runtime()
    cutoff = rt.now() - days * DAY_S
    old = [
        job
        for job in rt.jobs()
        if job["status"] in FINISHED and job["end_timestamp"] is not None and job["end_timestamp"] < cutoff
    ]
    failed: list[str] = []
    for job in old:
        try:
            rt.remove_job(job["id"])
        except Exception as exc:  # noqa: BLE001 - one job that cannot go must not keep the others
            log.warning("could not remove job %s: %s", job["id"], exc)
            failed.append(f"{job['id']}: {exc}")
    log.info("removed %d finished job(s) that ended more than %g days ago", len(old) - len(failed), days)
    if failed:
        # Raising marks this function as failed in the firing's record, with the reason.
        raise RuntimeError(f"could not remove {len(failed)} job(s); first: {failed[0]}")
