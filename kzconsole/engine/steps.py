"""How a run stores its steps: each checkpoint, its release at a shutdown and its end are one
:class:`~kzconsole.engine.lifecycle.JobLifecycle` call carrying everything the run has not stored
yet (output rows, failed input rows, log lines), so that a step is one store write (one SQLite
transaction); and the last step of a scheduler's job thread may claim its next job too
(:class:`NextClaim`).

The failed rows (1-based input row numbers, one decimal number and ``\\n`` each, in increasing
order) go to the job's ``failed`` file with the same steps as the output, so they are exactly once
across resumes: a resumed run keeps those the last checkpoint counted and cuts the rest at its
first step.

**Overlapped checkpoints.** A checkpoint that follows the previous step closely (rows are fast:
the 1,000-row checkpoints of a big job) asks the store to overlap it with the next rows
(``JobStep.overlap``): on PostgreSQL it is sent and the run goes on while the server stores it,
instead of waiting for a round trip 1,000 times per million rows. The record it returns is then the
previous step's, and its own outcome comes with the run's next write: until then its output and
failed rows are *in flight* (kept, and stored again at their offsets if that write fails). The
durability rule is the same (a step's rows and counts commit together, a resume starts after the
last committed step), and so, nearly, is promptness: only a step less than :data:`OVERLAP_S`
after the previous one is overlapped, so a stop asked elsewhere and read from the record lands
within a second and :data:`OVERLAP_S` of being asked instead of within a second (the step after
the overlapped one is at most a second later; and the changes feed delivers a stop at once anyway).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

from kzconsole.engine.lifecycle import JobLifecycle, Progress
from kzconsole.engine.logs import JobLogHandler, flush_job_logger
from kzconsole.engine.models import JobRecord, JobStatus
from kzconsole.engine.output import OutputSink, RunAbandoned, RunFailed
from kzconsole.engine.store.base import Claim, Fenced, Store, StoreError
from kzconsole.plugin import INIT

__all__ = ["NextClaim", "RunSteps", "state_json", "state_from_json"]

log = logging.getLogger("kzconsole.engine.runner")

Appends = dict[str, tuple["int | None", bytes]]

OVERLAP_S = 0.1  # a checkpoint this soon after the previous step may overlap the next rows


def _failed_text(rows: list[int]) -> bytes:
    """Failed input rows as the ``failed`` file holds them."""
    return "".join(f"{n}\n" for n in rows).encode("ascii")


def state_json(it: Any) -> str | None:
    """The iterator state as JSON if it survives a round trip, else raise ValueError."""
    if it is INIT:
        return None
    text = json.dumps(it)
    if json.loads(text) != it:
        raise ValueError(f"it does not survive a JSON round trip: {it!r:.200}")
    return text


def state_from_json(text: str | None) -> Any:
    return INIT if text is None else json.loads(text)


class NextClaim(Protocol):
    """How a run's last step may also claim the next queued job for its thread (the scheduler's
    job threads): entered around that step, it gives the claim to make (None: claim nothing, the
    engine is stopping) and is told what was claimed, before it is left."""

    def __enter__(self) -> Claim | None: ...

    def __exit__(self, *exc: object) -> None: ...

    def claimed(self, jobs: list[JobRecord]) -> None: ...


@dataclass(eq=False)
class RunSteps:
    """The steps of one run of ``job``. ``progress(offset)`` is the run's progress with the
    output's length ``offset``; ``logger`` is the job's logger and ``log_handler`` its store
    handler."""

    job: JobRecord
    _: KW_ONLY
    lifecycle: JobLifecycle
    store: Store
    logger: logging.Logger
    log_handler: JobLogHandler
    progress: Callable[[int | None], Progress]
    sink: OutputSink | None = field(default=None, init=False)
    failed: list[int] = field(default_factory=list, init=False)  # failed input rows not stored yet
    # Bytes of the `failed` file that belong to this run's rows.
    _failed_offset: int = field(default=0, init=False)
    _failed_flight: list[int] = field(default_factory=list, init=False)  # failed rows of a step in flight
    _last_step: float | None = field(default=None, init=False)  # when the last step was stored (monotonic)

    # ------------------------------------------------------------ failed rows

    def resume_failed(self) -> None:
        """Keep the failed rows the last checkpoint counted; what a crash left after them is cut
        at the next step."""
        stream = self.store.open_file(self.job.id, "failed")
        if stream is None:
            return
        keep = 0
        with stream:
            for line in stream:
                if not line.endswith(b"\n") or int(line) > self.job.rows_done:
                    break
                keep += len(line)
        self._failed_offset = keep

    def _failed_bytes(self) -> bytes:
        return _failed_text(self.failed)

    def _failed_end(self) -> int:
        return self._failed_offset + len(_failed_text(self._failed_flight))

    def _flight_settled(self, stored: bool) -> None:
        """The failed rows of the step in flight: stored, or back to be stored with the next."""
        if stored:
            self._failed_offset = self._failed_end()
        else:
            self.failed[:0] = self._failed_flight
        self._failed_flight = []

    def _unsend(self) -> None:
        """A step in flight may not be stored: its rows go back to be stored with the next."""
        if self.sink is not None:
            self.sink.unsend()
        self._flight_settled(False)

    def _store_failed(self) -> None:
        """The failed rows on their own (when a step could not store them with the record)."""
        if not self.failed:
            return
        try:
            self._failed_offset = self.store.append_file(
                self.job.id, "failed", self._failed_bytes(), offset=self._failed_offset, claim=self.job.claim
            )
        except Fenced:
            raise RunAbandoned() from None
        except StoreError as exc:
            # Only `restart --failed-only` needs it: the job goes on without it.
            self.logger.warning("the list of failed rows could not be stored: %s", exc)
        self.failed.clear()

    # ------------------------------------------------------------------ steps

    def _step(
        self, save: Callable[[Progress, Appends, bool], Any], *, final: bool = False, overlap: bool = False
    ) -> Any:
        """One step, stored with everything not stored yet in one store call. When the store
        cannot take the step whole (an output it cannot write: contract 4.3's fallback), it is
        stored part by part, the output through the sink's fallback. With ``overlap`` the store
        may answer before the step is stored (see the module's docstring)."""
        sink = self.sink
        output = sink.pending() if sink is not None else None
        offset = (output[0] + len(output[1]) if output else sink.end) if sink is not None else None
        progress = self.progress(offset)  # before the log is taken: it may log a warning
        appends: Appends = {}
        if output:
            appends["output"] = output
        elif final and sink is not None and sink.path is None:
            appends["output"] = (sink.end, b"")  # the last step makes the stored output durable
        if self.failed:
            appends["failed"] = (self._failed_end(), self._failed_bytes())
        lines = self.log_handler.take()
        if lines:
            appends["log"] = (None, lines)
            # Log lines are appended at the end, not at an offset: a step carrying some is never
            # in flight, so no later line can be stored before them.
            overlap = False
        now = self.lifecycle.clock.monotonic()
        overlap = overlap and self._last_step is not None and now - self._last_step < OVERLAP_S
        try:
            result = save(progress, appends, overlap)
        except Fenced:
            raise RunAbandoned() from None
        except StoreError as exc:
            log.warning("job %s: storing a step in one write failed (%s); storing it part by part", self.job.id, exc)
            self._unsend()
            self.log_handler.put_back(lines)
            if sink is not None:
                offset = sink.flush()  # falls back to the local file if the store cannot take it
            self._store_failed()
            flush_job_logger(self.logger)
            return save(self.progress(offset), {}, False)
        self._last_step = now
        # This write was accepted: the step in flight before it is stored.
        if sink is not None:
            sink.landed()
            # A flush of the sink between two steps (a large output) settles one in flight too.
            sink.on_flight = self._flight_settled
        self._flight_settled(True)
        if output:
            assert sink is not None
            if overlap:
                sink.sent()
            else:
                sink.stored()
        if "failed" in appends:
            if overlap:
                self._failed_flight = list(self.failed)
            else:
                self._failed_offset += len(appends["failed"][1])
            self.failed.clear()
        return result

    def checkpoint(self, *, finishing: bool = False) -> JobRecord:
        """A checkpoint; the record as stored (RunAbandoned when the job is no longer ours)."""
        updated = self._step(
            lambda progress, appends, overlap: self.lifecycle.checkpoint(
                self.job, progress, finishing=finishing, appends=appends, overlap=overlap
            ),
            overlap=not finishing,
        )
        if updated is None:
            raise RunAbandoned()
        return updated

    def release(self) -> None:
        """Graceful shutdown: everything stored, the job left for the next engine."""
        if self.sink is not None:
            self.sink.close_local()
        self._step(lambda progress, appends, _: self.lifecycle.release(self.job, progress, appends=appends), final=True)

    def finish(self, status: JobStatus, error: str | None, next_claim: NextClaim | None) -> JobRecord | None:
        """The end of the run: its final record, or None when the job was taken from it."""
        if self.sink is not None:
            try:
                self.sink.close_local()
            except RunFailed as exc:
                status, error = JobStatus.INTERNAL_ERROR, str(exc)
        counts = self.progress(None)
        total = f" of {self.job.total_count}" if self.job.total_count is not None else ""
        self.log_handler.note(
            "INFO", f"finished: {status.value} ({counts.success} succeeded, {counts.failure} failed{total})"
        )

        def finish(progress: Progress, appends: Appends, _: bool) -> JobRecord | None:
            if next_claim is None:
                return self.lifecycle.finish(self.job, status, progress, error, appends=appends)[0]
            with next_claim as claim_next:
                updated, claimed = self.lifecycle.finish(
                    self.job, status, progress, error, appends=appends, claim_next=claim_next
                )
                next_claim.claimed(claimed)
            return updated

        try:
            updated = self._step(finish, final=True)
        except RunAbandoned:
            self.logger.warning("the job was removed or taken over by another engine; stopping")
            return None
        except RunFailed as exc:  # the output could be stored nowhere
            updated = self.lifecycle.finish(self.job, JobStatus.INTERNAL_ERROR, self.progress(None), str(exc))[0]
        if updated is None:
            self.logger.warning("the job was removed while it ran; its final state is not stored")
        return updated
