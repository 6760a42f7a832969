"""The engine's data: job records, statuses, and the plugin specs re-exported from the plugin API.

Records are frozen dataclasses: threads hand them around (to the console, to the command line)
without locks, and a change is always a new record read back from the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kzconsole.plugin import JOB_KEYS, Context, TaskSpec, TriggerSpec, VerifierSpec, Where

__all__ = [
    "JobStatus",
    "JobRecord",
    "EngineLease",
    "Takeover",
    "TaskSpec",
    "VerifierSpec",
    "TriggerSpec",
    "Where",
    "Context",
    "PUBLIC_JOB_KEYS",
]


class JobStatus(str, Enum):
    """Contract 4.2. Stored as the plain string value."""

    PENDING = "pending"
    EXECUTING = "executing"
    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"
    STOPPED = "stopped"
    INTERNAL_ERROR = "internal_error"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.EXECUTING)

    @classmethod
    def from_counts(cls, success: int, failure: int) -> JobStatus:
        """The status of a job that ran to its end (contract 4.2)."""
        if failure == 0:
            return cls.SUCCESS
        if success == 0:
            return cls.FAILURE
        return cls.PARTIAL


STOPPED_BY_OPERATOR = "stopped by operator"  # the record's `error` of a job an operator stopped

PUBLIC_JOB_KEYS = JOB_KEYS  # the keys of a job in JSON (contract 4.1), in this order


@dataclass(frozen=True)
class JobRecord:
    """One job. The first block is the public record of contract 4.1; the second is the
    engine's bookkeeping (never shown in ``--json`` output)."""

    id: str
    account_id: str
    auth_account_id: str
    category: str
    action: str
    file_name: str | None
    status: JobStatus
    created: float
    start_timestamp: float | None = None
    end_timestamp: float | None = None
    total_count: int | None = None
    success_count: int = 0
    failure_count: int = 0
    node: str | None = None
    output_rows: int = 0
    wait_after_row_ms: int = 500
    error: str | None = None

    # --- bookkeeping ---
    input_path: str | None = None  # names the stored input (its place in a SQLite store); None: noinput
    output_path: str | None = None  # None: the output is in the store; else the local fallback file (4.3)
    queued_at: float | None = None  # set by `start`: the job waits in this order for a free slot
    stop_requested: bool = False  # an operator asked it to stop (seen by the owning engine)
    owner: str | None = None  # engine id holding it while executing; None: nobody (resumable)
    rows_done: int = 0  # input rows (or noinput calls) whose outcome is persisted
    output_offset: int = 0  # bytes of output that belong to those rows
    state: str | None = None  # JSON of the iterator state after rows_done (None: INIT)
    resumable: bool = True  # False once the state failed a JSON round trip (or a generator task)
    finishing: bool = False  # rows are done; only finish() and the final write remain
    claim: int = 0  # fencing token: +1 at every claim; writes about a running job expect it (store.base)

    def public(self) -> dict[str, Any]:
        """The record as the contract's JSON object."""
        out = {key: getattr(self, key) for key in PUBLIC_JOB_KEYS}
        out["status"] = self.status.value
        for key in ("created", "start_timestamp", "end_timestamp"):
            if out[key] is not None:
                out[key] = int(out[key])
        return out

    def replace(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    @property
    def task_name(self) -> str:
        return f"{self.category}/{self.action}"

    @property
    def is_noinput(self) -> bool:
        return self.input_path is None

    @property
    def processed(self) -> int:
        return self.success_count + self.failure_count


JOB_FIELDS = tuple(f.name for f in dataclasses.fields(JobRecord))


@dataclass(frozen=True)
class EngineLease:
    """An engine's heartbeat in the store: how other engines tell that it is alive, and what
    ``kzconsole nodes`` shows about it (contract 9)."""

    node: str  # unique per engine process: "<node name>:<pid>:<random>" (jobs' owner)
    host: str
    pid: int
    started: float
    expires: float  # the engine is dead once the store's now() > expires (it renews every second)
    name: str = ""  # the node name (--node, engine.node, else the host name): jobs' `node`
    version: str = ""  # kzconsole's version
    slots: int = 0  # tasks.max_running
    running: int = 0  # jobs it ran at its last heartbeat
    tasks: tuple[str, ...] = ()  # "category/action" of every task in its catalog

    @property
    def node_name(self) -> str:
        return self.name or self.node


@dataclass(frozen=True)
class Takeover:
    """A job one engine resumed (or ended ``internal_error``) after the engine running it died."""

    job_id: str
    from_engine: str | None  # the dead engine's id (None: a job released at shutdown)
    to_engine: str
    to_name: str  # the node name of the engine that took it
    at: float  # on the store's clock
    rows_done: int  # where it resumed
    outcome: str  # "resumed" | "internal_error"


@dataclass(frozen=True)
class Firing:
    """One firing of a trigger (contract 2.6 and the ``triggers --json`` shape of section 7).

    ``key`` identifies the firing across engines sharing a store (for a cron trigger the UTC
    boundary it belongs to, e.g. ``minutely:1764320400``), so that it runs once, not once per engine.
    """

    id: int
    trigger: str
    key: str
    node: str
    started: float
    ended: float | None = None
    status: str = "running"  # running | ok | failed | skipped
    reason: str | None = None
    functions: tuple[dict[str, Any], ...] = ()  # {"function", "ok", "error", "seconds"}
    databases: tuple[dict[str, Any], ...] = ()  # {"name", "kind", "ok"}

    def public(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "started": self.started,
            "ended": self.ended,
            "status": self.status,
            "reason": self.reason,
            "functions": [dict(f) for f in self.functions],
            "databases": [dict(d) for d in self.databases],
        }
