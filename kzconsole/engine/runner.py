"""The row loop: runs one claimed job (CSV or noinput) to its end, in the calling thread.

What a return value means is :func:`kzconsole.engine.results.interpret` (contract 2.3); which
cells are invalid, :mod:`kzconsole.engine.verify` (2.4); where the rows go,
:class:`kzconsole.engine.output.OutputSink` (4.3, 4.4); how a step is stored,
:mod:`kzconsole.engine.steps`. This module is the loop between them: the pause, stops, shutdowns,
ticks and checkpoints.

Durability comes from checkpoints: every ``send_progress_after_processed`` rows and at least once a
second (pauses included) the record gets, in one compare-and-set update expecting this run's
``claim``, the counts, the number of input rows whose outcome is stored (``rows_done``), the
output's length (``output_offset``) and the iterator state. A resumed run cuts the output back to
that length, skips that many input rows and restores the state: every input row gets exactly one
outcome.

A checkpoint reads the record it gets back: a stop or a pause change asked by another process lands
at the next checkpoint at the latest, so within a second (plus the current row) of being asked,
whether or not the executor heard of it sooner; 1.1 s where a fast checkpoint overlaps the next
rows (PostgreSQL: its record is read at the run's next write, see steps.py).
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Iterator
from typing import Any

from kzconsole.engine.cells import exception_text
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.control import JobControl, pause
from kzconsole.engine.events import EventBus, JobLogged, JobProgressed
from kzconsole.engine.lifecycle import JobLifecycle, Progress
from kzconsole.engine.logs import bound_to_job, close_job_logger, flush_job_logger, job_log_handler, job_logger
from kzconsole.engine.models import STOPPED_BY_OPERATOR, JobRecord, JobStatus
from kzconsole.engine.output import OutputSink, RunAbandoned, RunFailed
from kzconsole.engine.records import open_stored_rows
from kzconsole.engine.results import (
    CSV,
    FINISH,
    KEEP,
    NOINPUT,
    Header,
    Outcome,
    Raised,
    interpret,
    resolve_output_header,
)
from kzconsole.engine.steps import NextClaim, RunSteps, state_from_json, state_json
from kzconsole.engine.store.base import Store, StoreError
from kzconsole.engine.verify import row_check
from kzconsole.plugin import INIT, OK, Context, TaskSpec

__all__ = ["JobRun", "resolve_output_header"]

log = logging.getLogger("kzconsole.engine.runner")

CHECKPOINT_S = 1.0  # contract 4.3: counts are persisted at least this often
TICK_S = 0.2  # progress events at most this often


class JobRun:
    """One run (or resumed run) of a claimed job, in the calling thread."""

    def __init__(
        self,
        job: JobRecord,
        spec: TaskSpec,
        verifiers: dict[str, Callable[[str], Any]],
        *,
        lifecycle: JobLifecycle,
        store: Store,
        control: JobControl,
        events: EventBus,
        fallback_dir: str,
        progress_every: int = 1000,
        clock: Clock = SYSTEM_CLOCK,
        next_claim: NextClaim | None = None,
    ) -> None:
        self.job = job
        self.next_claim = next_claim
        self.spec = spec
        self.verifiers = verifiers
        self.lifecycle = lifecycle
        self.store = store
        self.node = lifecycle.node
        self.control = control
        self.events = events
        self.fallback_dir = fallback_dir
        self.progress_every = max(1, int(progress_every))
        self.clock = clock
        self.success = job.success_count
        self.failure = job.failure_count
        self.rows_done = job.rows_done
        self.output_rows = job.output_rows
        self.resumable = job.resumable and not spec.is_generator
        self.note: str | None = job.error  # the record's `error` (fallback location)
        self.it: Any = INIT
        self.sink: OutputSink | None = None
        self.header = Header(["error"])
        self._rows: Iterator[dict[str, Any]] | None = None  # the input reader (closed at the end)
        self._rows_complete = False  # the input ran out (CSV): a stop after that changes nothing
        self._last_ckpt_rows = self.rows_done
        self._last_ckpt_time = 0.0
        self._next_tick = 0.0
        self._rate_rows = self.rows_done
        self._rate_time = 0.0
        self._rate = 0.0
        self.logger = job_logger(job.id, store, job.claim, self._log_line)
        self._log = job_log_handler(self.logger)
        self.steps = RunSteps(
            job, lifecycle=lifecycle, store=store, logger=self.logger, log_handler=self._log, progress=self._progress
        )

    def _log_line(self, line: str) -> None:
        self.events.emit(JobLogged(self.job.id, line))

    # ------------------------------------------------------------------- run

    def run(self) -> JobRecord | None:
        """Run to the end; return the final record (None if the job was taken from us or the
        engine is shutting down and the job stays resumable)."""
        try:
            with bound_to_job(self.logger):
                return self._run()
        finally:
            close_job_logger(self.logger)
            if self._rows is not None:
                self._rows.close()  # type: ignore[attr-defined]

    def _run(self) -> JobRecord | None:
        job = self.job
        resumed = job.rows_done > 0 or job.output_offset > 0 or job.finishing
        ctx = Context(
            account_id=job.account_id,
            auth_account_id=job.auth_account_id,
            job_id=job.id,
            category=job.category,
            action=job.action,
            log=self.logger,
            stop_event=self.control.stop,
        )
        try:
            self.it = state_from_json(job.state) if resumed else INIT
            input_header = self._open_input() if not self.spec.is_noinput else None
            self.header = Header(resolve_output_header(self.spec, input_header, self.logger))
            self.sink = self.steps.sink = OutputSink(
                self.store,
                job.id,
                job.claim,
                fallback_dir=self.fallback_dir,
                offset=job.output_offset if resumed else 0,
                fallback=job.output_path if resumed else None,
                on_fallback=self._on_fallback,
            )
            if resumed:
                self.steps.resume_failed()
                self._log.note(
                    "INFO",
                    f"resumed by {self.node} at row {job.rows_done + 1}"
                    f" ({self.success} succeeded, {self.failure} failed so far)",
                )
            else:
                self.sink.write(self.header.columns)
                self._log.note("INFO", f"started by {self.node}")
            now = self.clock.monotonic()
            self._last_ckpt_time = self._rate_time = now
            stopped = False
            if not job.finishing:
                if self.spec.is_noinput:
                    stopped = self._run_noinput(ctx)
                else:
                    assert input_header is not None
                    stopped = self._run_csv(ctx, input_header)
            if self.control.shutdown.is_set() and not stopped and not self._rows_complete:
                return self._leave_for_resume()
            if self.spec.finish is not None:
                # Rows are done: record that, so a crash during finish() does not replay rows.
                self._checkpoint(finishing=True)
                self._call_finish(ctx)
            else:
                # No finish hook: nothing can crash between the rows and the final update, which
                # records everything; only the warning about an unsaveable state is still due.
                self._state_for_checkpoint()
            if self.control.stop.is_set() and not self._rows_complete:
                return self._finalize(JobStatus.STOPPED, STOPPED_BY_OPERATOR)
            return self._finalize(JobStatus.from_counts(self.success, self.failure), self.note)
        except RunAbandoned:
            self.logger.warning("the job was removed or taken over by another engine; stopping")
            return None
        except RunFailed as exc:
            self.logger.error("internal error: %s", exc)
            return self._finalize(JobStatus.INTERNAL_ERROR, str(exc))
        except BaseException as exc:
            log.exception("job %s: unexpected engine error", job.id)
            self.logger.error("internal error: %s", exception_text(exc))
            return self._finalize(JobStatus.INTERNAL_ERROR, f"engine error: {exception_text(exc)}")

    def _open_input(self) -> list[str]:
        try:
            input_header, self._rows = open_stored_rows(self.store, self.job.id, skip=self.job.rows_done)
        except (StoreError, OSError, ValueError) as exc:
            raise RunFailed(f"cannot read the input: {exc}") from exc
        return input_header

    # ------------------------------------------------------------- CSV loop

    def _run_csv(self, ctx: Context, input_header: list[str]) -> bool:
        """Returns True if the job ended by STOP (or an operator stop)."""
        rows = self._rows
        assert rows is not None
        spec = self.spec
        fn = spec.function
        header = self.header
        keys = header.keys
        width = header.width
        pad_fields = [f for f in spec.fields if f not in input_header]
        bad_fields = row_check(input_header, spec.mandatory, self.verifiers)
        failed = self.steps.failed
        sink = self.sink
        assert sink is not None
        # The hot path (a row that returned OK) appends the input row's cells to the sink's batch
        # itself: they come from the CSV reader, and the batch writer checks them anyway.
        pending = sink.rows
        batch_rows = sink.BATCH_ROWS
        control = self.control
        stop_set = control.stop.is_set
        shutdown_set = control.shutdown.is_set
        clock = self.clock
        # The real clock's monotonic() is time.monotonic: calling the builtin directly saves two
        # Python calls a row. An injected clock (tests) is used as it is.
        monotonic = time.monotonic if type(clock) is Clock else clock.monotonic
        progress_every = self.progress_every
        it = self.it
        # The output row of an OK row: one C-level itemgetter when the header is columns of the row
        # dict followed by `error` (the default header); a comprehension otherwise, or when the
        # task deleted a column from the dict it was given.
        columns = keys[:-1]
        known = set(input_header) | set(pad_fields)
        fast_cells = header.error_index == width - 1 and len(columns) >= 2 and known.issuperset(columns)
        getter = operator.itemgetter(*columns) if fast_cells else None
        tail = (None,)

        # Counters live in locals between the points where something reads them from `self`
        # (a checkpoint, a tick, a pause, a non-trivial result, the end): attribute updates were a
        # tenth of the loop's time. `ok` counts OK rows (one success and one output row each) not
        # yet added.
        done = self.rows_done
        ok = 0
        next_ckpt = self._last_ckpt_rows + progress_every
        next_tick = self._next_tick
        try:
            for row in rows:
                if stop_set() or shutdown_set():
                    self.it = it
                    return stop_set()
                for f in pad_fields:
                    row[f] = None
                bad = bad_fields(row) if bad_fields is not None else None
                if bad is not None:
                    self.failure += 1
                    failed.append(done + 1)
                    self._write(header.input_row(row, "bad field(s): " + ", ".join(bad)))
                else:
                    control.row_started = monotonic()
                    try:
                        result = fn(ctx, it, row)
                    except BaseException as exc:  # noqa: BLE001 - a plugin's SystemExit fails its row
                        result = Raised(exc)
                    control.row_started = None
                    if result is None or result is OK:
                        ok += 1
                        if getter is not None:
                            try:
                                pending.append(getter(row) + tail)
                            except KeyError:
                                pending.append([row.get(k) for k in keys])  # type: ignore[call-overload]
                        else:
                            pending.append([row.get(k) for k in keys])  # type: ignore[call-overload]
                        if len(pending) >= batch_rows:
                            sink.batch()
                    else:
                        outcome = interpret(CSV, result, header, row)
                        if outcome.warning is not None:
                            self.logger.warning("row %d %s", done + 1, outcome.warning)
                        if outcome.failure:
                            failed.append(done + 1)
                        self._apply(outcome)
                        if outcome.state is not KEEP:
                            it = outcome.state
                        if outcome.end:
                            self.it = it
                            return True
                done += 1
                now = monotonic()
                wait = control.wait_after_row_ms
                if done >= next_ckpt or now >= next_tick or wait > 0:
                    # A checkpoint, a tick or a pause (which may checkpoint: at least once a
                    # second) reads the counts from `self`: make them current.
                    self.rows_done = done
                    self.success += ok
                    self.output_rows += ok
                    ok = 0
                    self.it = it
                    if done >= next_ckpt:
                        self._checkpoint()
                    if now >= next_tick:
                        self._tick(now)
                        next_tick = self._next_tick
                    if wait > 0:
                        self._pause(wait)
                    next_ckpt = self._last_ckpt_rows + progress_every
            self.it = it
            self._rows_complete = True
            return False
        finally:
            self.rows_done = done
            self.success += ok
            self.output_rows += ok

    # ---------------------------------------------------------- noinput loop

    def _run_noinput(self, ctx: Context) -> bool:
        fn = self.spec.function
        control = self.control
        clock = self.clock
        header = self.header
        gen = fn(ctx) if self.spec.is_generator else None
        it = self.it
        while True:
            if control.stop.is_set() or control.shutdown.is_set():
                self.it = it
                return control.stop.is_set()
            control.row_started = clock.monotonic()
            try:
                if gen is not None:
                    try:
                        result = next(gen)
                    except StopIteration:
                        result = None
                        gen = None
                        self.it = it
                        return True
                else:
                    result = fn(ctx, it)
            except BaseException as exc:  # noqa: BLE001
                result = Raised(exc)
            finally:
                control.row_started = None
            outcome = interpret(NOINPUT, result, header)
            if outcome.warning is not None:
                self.logger.warning("%s", outcome.warning)
            self._apply(outcome)
            if outcome.state is not KEEP:
                it = outcome.state
            if outcome.end:
                self.it = it
                if gen is not None:
                    gen.close()
                return True
            self.rows_done += 1
            self.it = it
            if self.rows_done - self._last_ckpt_rows >= self.progress_every:
                self._checkpoint()
            now = clock.monotonic()
            if now >= self._next_tick:
                self._tick(now)
            wait = control.wait_after_row_ms
            if wait > 0:
                self._pause(wait)

    # ------------------------------------------------------------ writing

    def _write(self, cells: Any) -> None:
        self.sink.write(cells)  # type: ignore[union-attr]
        self.output_rows += 1

    def _apply(self, outcome: Outcome) -> None:
        """Write an outcome's rows and count its successes and failures."""
        for cells in outcome.rows:
            self._write(cells)
        self.success += outcome.success
        self.failure += outcome.failure

    def _call_finish(self, ctx: Context) -> None:
        finish = self.spec.finish
        if finish is None:
            return
        try:
            result = finish(ctx, self.it)
        except BaseException as exc:  # noqa: BLE001
            result = Raised(exc)
        outcome = interpret(FINISH, result, self.header)
        if outcome.warning is not None:
            self.logger.warning("%s", outcome.warning)
        self._apply(outcome)

    # ------------------------------------------------- pause, ticks, state

    def _pause(self, wait_ms: int) -> None:
        # A long pause still checkpoints once a second: a stop asked elsewhere lands on time.
        pause(
            self.control,
            self.clock,
            wait_ms,
            checkpoint_at=lambda: self._last_ckpt_time + CHECKPOINT_S,
            checkpoint=self._checkpoint,
        )

    def _tick(self, now: float) -> None:
        """At most 5 times a second: progress event; at least once a second: checkpoint."""
        self._next_tick = now + TICK_S
        elapsed = now - self._rate_time
        if elapsed >= 0.5:
            instant = (self.rows_done - self._rate_rows) / elapsed
            self._rate = instant if self._rate == 0 else 0.5 * self._rate + 0.5 * instant
            self._rate_rows = self.rows_done
            self._rate_time = now
        if now - self._last_ckpt_time >= CHECKPOINT_S:
            self._checkpoint()
        else:
            flush_job_logger(self.logger)
        self._emit_progress()

    def _emit_progress(self) -> None:
        started = self.control.row_started
        self.events.emit(
            JobProgressed(
                job_id=self.job.id,
                success=self.success,
                failure=self.failure,
                rows_done=self.rows_done,
                total=self.job.total_count,
                output_rows=self.output_rows,
                rows_per_second=self._rate,
                wait_after_row_ms=self.control.wait_after_row_ms,
                stopping=self.control.stop.is_set(),
                row_seconds=(self.clock.monotonic() - started) if started is not None else 0.0,
            )
        )

    def _state_for_checkpoint(self) -> str | None:
        if not self.resumable:
            return None
        try:
            return state_json(self.it)
        except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, RecursionError, a broken __eq__
            self.resumable = False
            self.logger.warning("this job cannot be resumed after a crash: %s", exc)
            return None

    def _progress(self, offset: int | None) -> Progress:
        return Progress(
            success=self.success,
            failure=self.failure,
            rows_done=self.rows_done,
            output_rows=self.output_rows,
            output_offset=offset,
            state=self._state_for_checkpoint(),
            resumable=self.resumable,
            output_path=None if self.sink is None or self.sink.path is None else str(self.sink.path),
            note=self.note,
        )

    def _checkpoint(self, *, finishing: bool = False) -> None:
        updated = self.steps.checkpoint(finishing=finishing)
        self._last_ckpt_rows = self.rows_done
        self._last_ckpt_time = self.clock.monotonic()
        # What other processes asked since (a stop, a new pause) is in the record we got back:
        # it lands here even if the executor heard nothing of it (issue 11.1).
        control = self.control
        if updated.stop_requested and not control.stop.is_set():
            control.request_stop()
        if updated.wait_after_row_ms != control.wait_after_row_ms:
            control.set_wait(updated.wait_after_row_ms)

    def _on_fallback(self, target: Any, reason: str) -> None:
        self.note = f"output written to {target} (the output location could not be written: {reason})"
        self.logger.warning("%s", self.note)

    def _leave_for_resume(self) -> JobRecord | None:
        """Graceful engine shutdown: persist everything and release the job for the next engine."""
        self._state_for_checkpoint()  # a state that cannot be saved shows here
        if not self.resumable:
            reason = (
                "the engine shut down and this job cannot be resumed (its state does not survive a JSON round trip)"
            )
            if self.spec.is_generator:
                reason = "the engine shut down and this job cannot be resumed (a generator task)"
            return self._finalize(JobStatus.INTERNAL_ERROR, reason)
        self.logger.info("engine shutting down: the job will resume at row %d", self.rows_done + 1)
        self.steps.release()
        return None

    def _finalize(self, status: JobStatus, error: str | None) -> JobRecord | None:
        updated = self.steps.finish(status, error, self.next_claim)
        if updated is not None:
            self._emit_progress()
        return updated
