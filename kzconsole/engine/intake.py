"""Taking a job in: the checks of contract 3.3 on a task and its input, and the new record.

:func:`check_job_input` is what both ``Engine.add_job`` (which then stores the job) and
``Engine.check_input`` (the console's form, before anything is created) run, so the two always
agree. Nothing here touches the store.
"""

from __future__ import annotations

import csv
import os
import uuid
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from kzconsole.engine.errors import EngineError, JobRejected
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.models import JobRecord, JobStatus
from kzconsole.plugin import TaskSpec

__all__ = ["InputReport", "check_job_input", "new_job", "safe_file_name", "private_dir", "new_job_id", "take_in"]


@dataclass(frozen=True)
class InputReport:
    """What the checks of contract 3.3 found. ``errors`` is the contract's ``errors`` object
    (empty: a job would be created); ``header`` and ``total_rows`` describe a CSV input (None for
    none); ``file_name`` is a JSON envelope's; ``preview`` is the header and the first data rows of
    the input as it would be stored (JSON converted), when asked for."""

    errors: dict[str, Any] = field(default_factory=dict)
    header: list[str] | None = None
    total_rows: int | None = None
    file_name: str | None = None
    preview: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# The destination given for no input (never written: there is nothing to check).
_NOWHERE = Path(os.devnull)


def new_job_id() -> str:
    return uuid.uuid4().hex


def private_dir(path: Path) -> Path:
    """``path`` as a folder, made with every missing parent mode 0700 whatever the umask
    (mkdir(parents=True) would give the parents the umask's mode): job files are nobody else's
    business."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


def safe_file_name(name: str | None) -> str | None:
    """A user-given file name (``--file-name``, a JSON envelope's) as shown and used to name
    downloads: its last path component only, without control characters."""
    if name is None:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return None if name in ("", ".", "..") else name[:255]


def _missing_input(spec: TaskSpec) -> dict[str, Any]:
    # As the original: a CSV task given nothing misses every mandatory field too.
    errors: dict[str, Any] = {"expected_content": "text/csv"}
    if spec.mandatory:
        errors["missing_mandatory_fields"] = list(spec.mandatory)
    return errors


def _preview(path: Path, rows: int) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        return list(islice((r for r in csv.reader(f) if r), rows + 1))


def check_job_input(
    spec: TaskSpec,
    input: str | os.PathLike[str] | BinaryIO | None,
    dest: Path,
    *,
    fmt: str | None = None,
    preview: int = 0,
) -> InputReport:
    """Check ``input`` (a path or a binary stream; None: no input) for ``spec`` and, when it is
    acceptable CSV input, leave it at ``dest`` as it would be stored. ``OSError`` reading it is
    raised."""
    from kzconsole.engine.csvio import check_input, sniff_format

    if input is None:
        return InputReport(errors={} if spec.is_noinput else _missing_input(spec))
    path = Path(os.fspath(input)) if isinstance(input, (str, os.PathLike)) else None
    name = path.name if path is not None else None
    check = check_input(input, dest, fmt=sniff_format(name, fmt), mandatory=spec.mandatory)
    has_input = bool(check.errors) or check.header is not None
    if spec.is_noinput:
        errors = {"expected_content": "none"} if has_input else {}
        return InputReport(errors=errors, file_name=check.file_name)
    if not has_input:  # an empty JSON array: the same as no input
        return InputReport(errors=_missing_input(spec), file_name=check.file_name)
    shown: list[list[str]] = []
    if preview:
        # A rejected CSV is shown as it is (nothing was kept at dest); JSON as the CSV it becomes.
        source = (
            dest
            if dest.exists()
            else (path if path is not None and not check.ok and sniff_format(name, fmt) == "csv" else None)
        )
        if source is not None:
            shown = _preview(source, preview)
    return InputReport(
        errors=dict(check.errors),
        header=check.header,
        total_rows=check.total_rows,
        file_name=check.file_name,
        preview=shown,
    )


def new_job(
    job_id: str,
    category: str,
    action: str,
    *,
    account_id: str,
    auth_account_id: str,
    file_name: str | None,
    total: int | None,
    has_input: bool,
    wait_ms: int,
    created: float,
    queued: bool,
) -> JobRecord:
    """A new pending job record."""
    return JobRecord(
        id=job_id,
        account_id=account_id,
        auth_account_id=auth_account_id,
        category=category,
        action=action,
        file_name=file_name,
        status=JobStatus.PENDING,
        created=created,
        total_count=total,
        wait_after_row_ms=wait_ms,
        input_path=f"jobs/{job_id}/in.csv" if has_input else None,
        queued_at=created if queued else None,
    )


def take_in(
    spec: TaskSpec,
    lifecycle: JobLifecycle,
    *,
    input: str | os.PathLike[str] | BinaryIO | None,
    fmt: str | None,
    file_name: str | None,
    account_id: str,
    auth_account_id: str,
    wait_ms: int,
    queued: bool,
    incoming: Path,
) -> JobRecord:
    """``Engine.add_job``: check ``input`` for ``spec`` and create the job (JobRejected, storing
    nothing, when a check fails). The input is checked (and converted, for JSON) into a private
    file of this process under ``incoming``, then handed to the store with the record."""
    job_id = new_job_id()
    input_name = os.path.basename(os.fspath(input)) if isinstance(input, (str, os.PathLike)) else None
    checked = private_dir(incoming) / f"{job_id}.csv" if input is not None else None
    try:
        try:
            report = check_job_input(spec, input, checked or _NOWHERE, fmt=fmt)
        except OSError as exc:
            raise EngineError(f"cannot read the input {input_name or '-'}: {exc.strerror or exc}") from exc
        if report.errors:
            raise JobRejected(report.errors)
        has_input = report.header is not None
        job = new_job(
            job_id,
            spec.category,
            spec.action,
            account_id=account_id,
            auth_account_id=auth_account_id,
            file_name=(
                safe_file_name(file_name) or safe_file_name(report.file_name) or (input_name if has_input else None)
            )
            or None,
            total=report.total_rows,
            has_input=has_input,
            wait_ms=wait_ms,
            created=lifecycle.clock.time(),
            queued=queued,
        )
        if has_input:
            assert checked is not None
            with open(checked, "rb") as f:
                return lifecycle.create(job, f)
        return lifecycle.create(job)
    finally:
        if checked is not None:
            try:
                checked.unlink()
            except FileNotFoundError:
                pass
