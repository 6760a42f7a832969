"""The one owner of a job's state: every change a job goes through is one method here.

Each method is one compare-and-set on the store (:meth:`Store.update_job` with ``expect``, or the
store's own atomic claim) and one event (:class:`JobChanged`, or :class:`JobDeleted` for a
removal). Nothing else in the engine writes a job's status, its counters or its ownership; there
are no hand-built column dictionaries elsewhere.

The states (contract 4.2)::

    create ──> pending ──queue──> pending+queued ──claim──> executing ──finish──> success | failure
       │          │                                            │  ▲                   | partial
       │          └──stop──> stopped                           │  │ take_over         | stopped
       │                                                       │  └── (dead owner)    | internal_error
       │                                                       ├──checkpoint (counts, state; stop asked
       │                                                       │   elsewhere comes back in the record)
       │                                                       └──release (graceful shutdown: owner None)
       └── remove (any status but executing)

The operator's methods (:meth:`queue`, :meth:`stop`, :meth:`set_wait`, :meth:`remove`) take the
record the caller saw and retry on a record that changed underneath (another process), so they
report what they did to the job as it is. The engine's methods (:meth:`checkpoint`, :meth:`finish`,
:meth:`fail`, :meth:`release`) expect the job still ``executing`` under the run's own ``claim``
(the fencing token): they return None when the job was taken from the run (removed, or taken over
by another engine), and the run then stops without writing anything more.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from kzconsole.engine.clock import Clock
from kzconsole.engine.errors import InvalidJobState, JobNotFound
from kzconsole.engine.events import EventBus, JobChanged, JobDeleted
from kzconsole.engine.models import STOPPED_BY_OPERATOR, JobRecord, JobStatus
from kzconsole.engine.store.base import Claim, JobStep, Store

__all__ = ["JobLifecycle", "Progress"]

# What a run appends to its job's files with a step: kind -> (offset to cut at or None, bytes).
Appends = Mapping[str, tuple["int | None", bytes]]

_EXECUTING = JobStatus.EXECUTING.value
_PENDING = JobStatus.PENDING.value


@dataclass(frozen=True)
class Progress:
    """What a run has done so far: the counters a checkpoint or the end of a run records."""

    success: int
    failure: int
    rows_done: int
    output_rows: int
    output_offset: int | None  # None: unknown (the output could not be closed); left as stored
    state: str | None
    resumable: bool
    output_path: str | None  # the local fallback file, or None (the output is in the store)
    note: str | None  # the record's `error` while it runs (where the output went)

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "success_count": self.success,
            "failure_count": self.failure,
            "rows_done": self.rows_done,
            "output_rows": self.output_rows,
            "state": self.state,
            "resumable": self.resumable,
            "output_path": self.output_path,
            "error": self.note,
        }
        if self.output_offset is not None:
            out["output_offset"] = self.output_offset
        return out


class JobLifecycle:
    """Job state changes over one store, for the engine ``node``, announced on ``events``."""

    def __init__(self, store: Store, events: EventBus, clock: Clock, node: str, node_name: str | None = None) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.node = node  # the engine's id: the owner of the jobs it runs
        self.node_name = node_name or node  # what those jobs record as their `node` (contract 9)

    def _changed(self, job: JobRecord | None) -> JobRecord | None:
        if job is not None:
            self.events.emit(JobChanged(job))
        return job

    @staticmethod
    def _refuse_unless_pending(job: JobRecord, running: str) -> None:
        if job.status.is_finished:
            raise InvalidJobState(f"job {job.id} is already finished ({job.status.value})")
        if job.status is JobStatus.EXECUTING:
            raise InvalidJobState(f"job {job.id} is already running{running}")

    def _reread(self, job: JobRecord) -> JobRecord:
        current = self.store.get_job(job.id)
        if current is None:
            raise JobNotFound(f"no job {job.id}")
        return current

    # ----------------------------------------------------------------- creating

    def create(self, job: JobRecord, input: BinaryIO | None = None) -> JobRecord:
        """A new job (and its stored input): both or neither."""
        self.store.create_job(job, input=input)
        self.events.emit(JobChanged(job))
        return job

    # ------------------------------------------------------------ the operator

    def queue(self, job: JobRecord, *, once: bool = False) -> JobRecord:
        """``start``: a pending job waits for a free slot, in start order. Starting a job that
        waits already changes nothing; with ``once`` it is refused as started (the REST API's
        ``task already started``: of two concurrent starts, exactly one is answered the job)."""
        while True:
            self._refuse_unless_pending(job, "")
            if job.queued_at is not None:
                if once:
                    raise InvalidJobState(f"job {job.id} is already started (waiting for a free slot)")
                return job
            updated = self.store.update_job(
                job.id, {"queued_at": self.clock.time()}, expect={"status": _PENDING, "queued_at": None}
            )
            if updated is not None:
                return self._changed(updated)  # type: ignore[return-value]
            job = self._reread(job)

    def stop(self, job: JobRecord) -> JobRecord:
        """A pending job is stopped at once; an executing one is asked to stop (its engine stops
        it before its next row: the record every checkpoint gets back carries the request)."""
        while True:
            if job.status is JobStatus.PENDING:
                updated = self.store.update_job(
                    job.id,
                    {
                        "status": JobStatus.STOPPED.value,
                        "end_timestamp": self.clock.time(),
                        "error": STOPPED_BY_OPERATOR,
                        "queued_at": None,
                    },
                    expect={"status": _PENDING},
                )
            elif job.status is JobStatus.EXECUTING:
                if job.stop_requested:
                    return job
                updated = self.store.update_job(job.id, {"stop_requested": True}, expect={"status": _EXECUTING})
            else:
                raise InvalidJobState(f"job {job.id} is not running ({job.status.value})")
            if updated is not None:
                return self._changed(updated)  # type: ignore[return-value]
            job = self._reread(job)

    def set_wait(self, job: JobRecord, wait_ms: int) -> JobRecord:
        """The pause after each row of a pending or running job."""
        while True:
            if job.status.is_finished:
                raise InvalidJobState(f"job {job.id} is already finished ({job.status.value})")
            updated = self.store.update_job(
                job.id, {"wait_after_row_ms": int(wait_ms)}, expect={"status": job.status.value}
            )
            if updated is not None:
                return self._changed(updated)  # type: ignore[return-value]
            job = self._reread(job)

    def remove(self, job: JobRecord) -> JobRecord:
        """Delete a job that is not running, with its files (and its local output fallback)."""
        while True:
            if job.status is JobStatus.EXECUTING:
                raise InvalidJobState(f"job {job.id} is running; stop it first")
            removed = self.store.delete_job(job.id, expect={"status": job.status.value})
            if removed is not None:
                break
            job = self._reread(job)
        if removed.output_path:  # the fallback is this engine's own file, not the store's
            try:
                os.unlink(removed.output_path)
            except OSError:
                pass
        self.events.emit(JobDeleted(job.id))
        return removed

    # ------------------------------------------------------------- the engine

    def claim_queued(
        self, limit: int, *, tasks: Collection[str] | None = None, served: Collection[str] | None = None
    ) -> list[JobRecord]:
        """Take up to ``limit`` queued jobs for this engine, in start order: those whose task is
        in ``tasks`` (the engine's catalog), and those whose task no live engine has (``served``:
        the tasks of every live engine), to end them (contract 9)."""
        claimed = self.store.claim_queued(
            self.node, limit, self.clock.time(), name=self.node_name, tasks=tasks, served=served
        )
        for job in claimed:
            self.events.emit(JobChanged(job))
        return claimed

    def claim(self, job: JobRecord) -> JobRecord:
        """Take a pending job to run it here and now (``tasks run``), queued or not."""
        while True:
            self._refuse_unless_pending(job, f" on {job.node}")
            updated = self.store.update_job(
                job.id,
                {
                    "status": _EXECUTING,
                    "owner": self.node,
                    "node": self.node_name,
                    "start_timestamp": self.clock.time(),
                    "queued_at": None,
                    "claim": job.claim + 1,
                },
                expect={"status": _PENDING, "claim": job.claim},
            )
            if updated is not None:
                return self._changed(updated)  # type: ignore[return-value]
            job = self._reread(job)

    def take_over(self, job: JobRecord) -> JobRecord | None:
        """Resume here an executing job whose engine is dead (None: another engine was first)."""
        return self._changed(
            self.store.update_job(
                job.id,
                {"owner": self.node, "node": self.node_name, "claim": job.claim + 1},
                expect={"status": _EXECUTING, "owner": job.owner, "claim": job.claim},
            )
        )

    def fail_orphan(self, job: JobRecord, reason: str) -> JobRecord | None:
        """End an executing job whose engine is dead and that cannot be resumed."""
        return self._changed(
            self.store.update_job(
                job.id,
                {**self._failure(reason), "finishing": False, "claim": job.claim + 1},
                expect={"status": _EXECUTING, "owner": job.owner, "claim": job.claim},
            )
        )

    def _failure(self, reason: str) -> dict[str, Any]:
        """The changes that end a job ``internal_error`` with ``reason``."""
        return {
            "status": JobStatus.INTERNAL_ERROR.value,
            "owner": None,
            "error": reason,
            "end_timestamp": self.clock.time(),
        }

    @staticmethod
    def _mine(job: JobRecord) -> dict[str, Any]:
        """Still executing under the claim this run got: every write of a run expects it."""
        return {"status": _EXECUTING, "claim": job.claim}

    def fail(self, job: JobRecord, reason: str) -> JobRecord | None:
        """End a job this engine claimed but cannot run (its task is not in the catalog)."""
        return self._changed(self.store.update_job(job.id, self._failure(reason), expect=self._mine(job)))

    def _save(
        self,
        job: JobRecord,
        changes: dict[str, Any],
        appends: Appends | None,
        *,
        sync: bool = False,
        claim_next: Claim | None = None,
        overlap: bool = False,
    ) -> tuple[JobRecord | None, list[JobRecord]]:
        step = JobStep(changes, self._mine(job), appends or {}, job.claim, sync, claim_next, overlap)
        updated, claimed = self.store.save_job(job.id, step)
        self._changed(updated)
        for other in claimed:
            self.events.emit(JobChanged(other))
        return updated, claimed

    def checkpoint(
        self,
        job: JobRecord,
        progress: Progress,
        *,
        finishing: bool = False,
        appends: Appends | None = None,
        overlap: bool = False,
    ) -> JobRecord | None:
        """Persist a run's progress (contract 4.3), with what it appends to the job's files
        (``appends``: kind -> (offset, bytes)) in the same step. The returned record is the job as
        stored: a stop or a pause change asked by another process since is in it. With
        ``overlap`` the store may answer before the step is stored (``JobStep.overlap``): the
        record is then the one of the previous step."""
        changes = progress.changes()
        if finishing:
            changes["finishing"] = True
        return self._save(job, changes, appends, overlap=overlap)[0]

    def finish(
        self,
        job: JobRecord,
        status: JobStatus,
        progress: Progress,
        error: str | None,
        *,
        appends: Appends | None = None,
        claim_next: Claim | None = None,
    ) -> tuple[JobRecord | None, list[JobRecord]]:
        """The end of a run: its final status and counts (its last appends made durable); with
        ``claim_next`` the next queued job is claimed in
        the same step. Returns (the final record or None, the jobs claimed)."""
        changes = progress.changes()
        changes.update(
            {
                "status": status.value,
                "end_timestamp": self.clock.time(),
                "owner": None,
                "error": error,
                "finishing": False,
                "stop_requested": False,
            }
        )
        return self._save(job, changes, appends, sync=True, claim_next=claim_next)

    def release(self, job: JobRecord, progress: Progress, *, appends: Appends | None = None) -> JobRecord | None:
        """Graceful shutdown: the run's progress is persisted and the job stays executing with no
        owner, for the next engine."""
        changes = progress.changes()
        changes["owner"] = None
        return self._save(job, changes, appends, sync=True)[0]
