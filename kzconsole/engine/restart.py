"""``tasks restart``: a new job with the same task, input and accounts, or (``failed_only``) with
only the input rows of a finished job that failed, as its runs recorded them in its ``failed``
file (one input row number per line, exactly once across resumes)."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from kzconsole.engine.clock import Clock
from kzconsole.engine.csvout import CsvRowWriter
from kzconsole.engine.errors import EngineError, InvalidJobState
from kzconsole.engine.intake import new_job, new_job_id
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.models import JobRecord
from kzconsole.engine.store.base import Store

__all__ = ["restarted"]

_SPOOL_BYTES = 8 << 20  # a failed-rows input bigger than this goes to a temporary file


def _failed_rows(store: Store, job: JobRecord) -> Iterator[int]:
    stream = store.open_file(job.id, "failed")
    if stream is None:
        return
    with stream:
        for line in stream:
            if line.endswith(b"\n"):
                yield int(line)


def _select_rows(source: BinaryIO, wanted: Iterator[int], dest: BinaryIO) -> int:
    """Write the header and the data rows numbered in ``wanted`` (increasing, 1-based, blank
    lines not counted, as the runner numbers them) of the CSV ``source`` to ``dest``."""
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    out = io.TextIOWrapper(dest, encoding="utf-8", newline="", write_through=True)
    writer = CsvRowWriter(out.write)
    rows = (row for row in csv.reader(text, strict=True) if row)
    writer.writerow(next(rows))
    written = 0
    target = next(wanted, None)
    for number, row in enumerate(rows, 1):
        if target is None:
            break
        if number == target:
            writer.writerow([cell or None for cell in row])
            written += 1
            target = next(wanted, None)
    out.flush()
    out.detach()
    return written


def restarted(job: JobRecord, *, lifecycle: JobLifecycle, clock: Clock, start: bool, failed_only: bool) -> JobRecord:
    """Create the restarted job (see the module docstring)."""
    store = lifecycle.store
    new_id = new_job_id()

    def record(total: int | None) -> JobRecord:
        return new_job(
            new_id,
            job.category,
            job.action,
            account_id=job.account_id,
            auth_account_id=job.auth_account_id,
            file_name=job.file_name,
            total=total,
            has_input=job.input_path is not None,
            wait_ms=job.wait_after_row_ms,
            created=clock.time(),
            queued=start,
        )

    if not failed_only:
        if job.input_path is None:
            return lifecycle.create(record(None))
        source = store.open_file(job.id, "input")
        if source is None:
            raise EngineError(f"the input of job {job.id} is gone")
        with source:
            return lifecycle.create(record(job.total_count), source)

    if not job.status.is_finished:
        raise InvalidJobState(
            f"job {job.id} is not finished ({job.status.value}): only a finished job's failed rows can run again"
        )
    if job.input_path is None:
        raise InvalidJobState(f"job {job.id} takes no input: it has no failed rows to run again")
    if store.file_size(job.id, "failed") is None and job.failure_count:
        raise InvalidJobState(f"job {job.id} has no list of its failed rows (it ran before kzconsole kept one)")
    wanted = _failed_rows(store, job)
    first = next(wanted, None)
    if first is None:
        raise InvalidJobState(f"no input row of job {job.id} failed: nothing to run again")
    source = store.open_file(job.id, "input")
    if source is None:
        raise EngineError(f"the input of job {job.id} is gone")

    def again() -> Iterator[int]:
        yield first
        yield from wanted

    with source, tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as selected:
        total = _select_rows(source, again(), selected)  # type: ignore[arg-type]
        selected.seek(0)
        return lifecycle.create(record(total), selected)  # type: ignore[arg-type]
