"""Deprecated: paths of the SQLite store's job files, for a console that still reads them by path.

They move the file out of the database (``SQLiteStore.file_path``, not part of the Store
interface); they go once nothing calls them. Everything else reads a job's files as streams
(``Engine.open_input``, ``open_output``, ``read_log``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kzconsole.engine.models import JobRecord

__all__ = ["DeprecatedPaths"]

_JOB_ID = re.compile(r"[0-9a-f]{32}")


class DeprecatedPaths:
    """Mixed into the Engine facade (``data_dir`` and ``store`` are the engine's)."""

    data_dir: Path
    store: Any

    def job_dir(self, job_id: str) -> Path:
        """Deprecated: the SQLite store's folder of a job."""
        if not _JOB_ID.fullmatch(job_id):  # never a path: a job id is 32 hex characters
            raise ValueError(f"not a job id: {job_id!r}")
        return self.data_dir / "jobs" / job_id

    def _local_path(self, job: JobRecord, kind: str) -> Path | None:
        self.job_dir(job.id)
        file_path = getattr(self.store, "file_path", None)  # SQLite only: see the module docstring
        if file_path is None:
            return None
        path: Path = file_path(job.id, kind)
        return path if path.exists() else None

    def input_path(self, job: JobRecord) -> Path | None:
        """Deprecated: use ``Engine.open_input``."""
        return self._local_path(job, "input") if job.input_path else None

    def output_path(self, job: JobRecord) -> Path | None:
        """Deprecated: use ``Engine.open_output``."""
        if job.output_path:
            return Path(job.output_path)
        return self._local_path(job, "output")

    def log_path(self, job: JobRecord) -> Path:
        """Deprecated: use ``Engine.read_log``."""
        return self._local_path(job, "log") or self.job_dir(job.id) / "job.log"
