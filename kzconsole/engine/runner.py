"""The row loop: runs one claimed job (CSV or noinput) to its end, in the calling thread.

What a return value means is :func:`kzconsole.engine.results.interpret` (contract 2.3); where the
rows go is :class:`kzconsole.engine.output.OutputSink` (4.3, 4.4); every change of the job's record
is a :class:`kzconsole.engine.lifecycle.JobLifecycle` method. This module is the loop between
them: verifiers (2.4), the output header (2.5), the pause, stops, shutdowns, ticks and checkpoints.

Durability comes from checkpoints: every ``send_progress_after_processed`` rows and at least once a
second (pauses included) the output is stored and the record gets, in one compare-and-set update
expecting this run's ``claim``, the counts, the number of input rows whose outcome is in the output
(``rows_done``), the output's length in bytes (``output_offset``) and the iterator state. A resumed
run cuts the output back to that length, skips that many input rows and restores the state, so
every input row gets exactly one outcome. The numbers of the input rows that failed go to the job's
``failed`` file at the same checkpoints, cut back the same way on a resume.

A checkpoint reads the record it gets back: a stop or a pause change asked by another process lands
at the next checkpoint at the latest, so within a second (plus the current row) of being asked,
whether or not the executor heard of it sooner.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from collections.abc import Mapping
from typing import Any, Callable, Iterator, Protocol

from kzconsole.engine.cells import exception_text
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.control import JobControl
from kzconsole.engine.csvio import iter_records
from kzconsole.engine.events import EventBus, JobLogged, JobProgressed
from kzconsole.engine.lifecycle import JobLifecycle, Progress
from kzconsole.engine.logs import (
    bound_to_job,
    close_job_logger,
    flush_job_logger,
    job_log_handler,
    job_logger,
)
from kzconsole.engine.models import STOPPED_BY_OPERATOR, JobRecord, JobStatus
from kzconsole.engine.output import OutputSink, RunAbandoned, RunFailed
from kzconsole.engine.results import CSV, FINISH, KEEP, NOINPUT, Header, Outcome, Raised, interpret
from kzconsole.engine.store.base import Fenced, Store, StoreError
from kzconsole.plugin import INIT, OK, Context, TaskSpec

__all__ = ["JobRun", "resolve_output_header"]

log = logging.getLogger("kzconsole.engine.runner")

class NextClaim(Protocol):
    """How a run's last step may also claim the next queued job for its thread (the scheduler's
    job threads): entered around that step, it gives ``claim_queued``'s keyword arguments (None:
    claim nothing, the engine is stopping) and is told what was claimed, before it is left."""

    def __enter__(self) -> Mapping[str, Any] | None: ...

    def __exit__(self, *exc: object) -> None: ...

    def claimed(self, jobs: list[JobRecord]) -> None: ...


CHECKPOINT_S = 1.0  # contract 4.3: counts are persisted at least this often
TICK_S = 0.2  # progress events at most this often


def _state_json(it: Any) -> str | None:
    """The iterator state as JSON if it survives a round trip, else raise ValueError."""
    if it is INIT:
        return None
    text = json.dumps(it)
    if json.loads(text) != it:
        raise ValueError(f"it does not survive a JSON round trip: {it!r:.200}")
    return text


def _state_from_json(text: str | None) -> Any:
    return INIT if text is None else json.loads(text)


def resolve_output_header(spec: TaskSpec, input_header: list[str] | None, logger: logging.Logger) -> list[str]:
    """Contract 2.5."""
    header: Any = spec.output_header
    if callable(header):
        try:
            header = header()
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in a plugin must not end the job thread
            logger.warning("output_header raised %s; using the default header", exception_text(exc))
            header = None
        if not (
            isinstance(header, (list, tuple)) and header and all(isinstance(c, str) for c in header)
        ):
            if header is not None:
                logger.warning("output_header returned %r; using the default header", header)
            header = None
    if header:
        columns = list(header)
    elif spec.is_noinput:
        columns = []
    elif spec.fields:
        columns = list(spec.fields)
    else:
        columns = list(input_header or [])
    if "error" not in columns:
        columns.append("error")
    return columns


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
        self._failed: list[int] = []  # failed input rows not stored yet (1-based data rows)
        self._failed_offset = 0  # bytes of the `failed` file that belong to this run's rows
        self._last_ckpt_rows = self.rows_done
        self._last_ckpt_time = 0.0
        self._next_tick = 0.0
        self._rate_rows = self.rows_done
        self._rate_time = 0.0
        self._rate = 0.0
        self.logger = job_logger(job.id, store, job.claim, self._log_line)

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
            self.it = _state_from_json(job.state) if resumed else INIT
            input_header = self._open_input() if not self.spec.is_noinput else None
            self.header = Header(resolve_output_header(self.spec, input_header, self.logger))
            self.sink = OutputSink(
                self.store,
                job.id,
                job.claim,
                fallback_dir=self.fallback_dir,
                offset=job.output_offset if resumed else 0,
                fallback=job.output_path if resumed else None,
                on_fallback=self._on_fallback,
            )
            if resumed:
                self._resume_failed()
                self.logger.info(
                    "resumed by %s at row %d (%d succeeded, %d failed so far)",
                    self.node, job.rows_done + 1, self.success, self.failure,
                )
            else:
                self.sink.write(self.header.columns)
                self.logger.info("started by %s", self.node)
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
        except BaseException as exc:  # noqa: BLE001 - an engine bug (or a stray SystemExit) must not kill the engine
            log.exception("job %s: unexpected engine error", job.id)
            self.logger.error("internal error: %s", exception_text(exc))
            return self._finalize(JobStatus.INTERNAL_ERROR, f"engine error: {exception_text(exc)}")

    def _open_input(self) -> list[str]:
        try:
            stream = self.store.open_file(self.job.id, "input")
        except StoreError as exc:
            raise RunFailed(f"cannot read the input: {exc}") from exc
        if stream is None:
            raise RunFailed("cannot read the input: the stored input is gone")
        try:
            input_header, self._rows = iter_records(stream, skip=self.job.rows_done)
        except (OSError, ValueError) as exc:
            stream.close()
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
        mandatory = spec.mandatory
        verifiers = self.verifiers
        check_cols = [c for c in input_header if c in verifiers]
        verify_needed = bool(check_cols or mandatory)
        order = {c: i for i, c in enumerate(input_header)}
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
        getter = operator.itemgetter(*columns) if fast_cells else None  # type: ignore[misc]
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
                bad: list[str] | None = None
                if verify_needed:
                    for col in mandatory:
                        if row.get(col) is None:
                            bad = [col]
                            break
                    for col in check_cols:
                        value = row[col]
                        if value is None:
                            continue
                        try:
                            valid = verifiers[col](value)
                        except BaseException:  # noqa: BLE001 - fail closed, also on sys.exit()
                            valid = False
                        if not valid:
                            if bad is None:
                                bad = []
                            if col not in bad:
                                bad.append(col)
                    if bad is not None:
                        bad.sort(key=lambda c: order.get(c, len(order)))
                if bad is not None:
                    self.failure += 1
                    self._failed.append(done + 1)
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
                            sink.flush()
                    else:
                        outcome = interpret(CSV, result, header, row)
                        if outcome.warning is not None:
                            self.logger.warning("row %d %s", done + 1, outcome.warning)
                        if outcome.failure:
                            self._failed.append(done + 1)
                        self._apply(outcome)
                        if outcome.state is not KEEP:
                            it = outcome.state
                        if outcome.end:
                            self.it = it
                            return True
                done += 1
                if done >= next_ckpt:
                    self.rows_done = done
                    self.success += ok
                    self.output_rows += ok
                    ok = 0
                    self.it = it
                    self._checkpoint()
                    next_ckpt = self._last_ckpt_rows + progress_every
                now = monotonic()
                if now >= next_tick:
                    self.rows_done = done
                    self.success += ok
                    self.output_rows += ok
                    ok = 0
                    self.it = it
                    self._tick(now)
                    next_tick = self._next_tick
                    next_ckpt = self._last_ckpt_rows + progress_every
                wait = control.wait_after_row_ms
                if wait > 0:
                    # A pause may checkpoint (at least once a second): counts must be current.
                    self.rows_done = done
                    self.success += ok
                    self.output_rows += ok
                    ok = 0
                    self.it = it
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

    # ------------------------------------------------------- failed rows

    def _resume_failed(self) -> None:
        """Keep the failed rows the last checkpoint counted; what a crash left after is cut at the
        next append (the numbers are in increasing order)."""
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
        return "".join(f"{n}\n" for n in self._failed).encode("ascii")

    def _store_failed(self) -> None:
        """The failed rows on their own (when a step could not store them with the record)."""
        if not self._failed:
            return
        data = self._failed_bytes()
        try:
            self._failed_offset = self.store.append_file(
                self.job.id, "failed", data, offset=self._failed_offset, claim=self.job.claim
            )
        except Fenced:
            raise RunAbandoned() from None
        except StoreError as exc:
            # Only `restart --failed-only` needs it: the job goes on without it.
            self.logger.warning("the list of failed rows could not be stored: %s", exc)
        self._failed.clear()

    # ------------------------------------------------- pause, ticks, state

    def _pause(self, wait_ms: int) -> None:
        control = self.control
        control.wakeup.clear()
        if control.stop.is_set() or control.shutdown.is_set():
            return
        clock = self.clock
        deadline = clock.monotonic() + wait_ms / 1000.0
        while True:
            now = clock.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return
            # A long pause still checkpoints once a second: a stop asked elsewhere lands on time.
            checkpoint_in = self._last_ckpt_time + CHECKPOINT_S - now
            if checkpoint_in <= 0:
                self._checkpoint()
                if control.stop.is_set() or control.shutdown.is_set():
                    return
                continue
            if clock.wait(control.wakeup, min(remaining, checkpoint_in)):
                if control.stop.is_set() or control.shutdown.is_set():
                    return
                control.wakeup.clear()
                # the pause may have been changed: recompute from the new value
                deadline = min(deadline, clock.monotonic() + control.wait_after_row_ms / 1000.0)

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
            return _state_json(self.it)
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
            output_path=self._output_location(),
            note=self.note,
        )

    def _step(self, save: Callable[[Progress, dict[str, tuple[int | None, bytes]]], Any], *, final: bool = False) -> Any:
        """One step of the run (a checkpoint, the release, the end), stored with everything the
        run has not stored yet (output rows, failed rows, log lines) in one store call. When the
        store cannot take that step whole (an output it cannot write: contract 4.3's fallback),
        it is stored part by part, the output through the sink's fallback."""
        sink = self.sink
        output = sink.pending() if sink is not None else None
        offset = (output[0] + len(output[1]) if output else sink.offset) if sink is not None else None
        progress = self._progress(offset)  # before the log is taken: it may log a warning
        appends: dict[str, tuple[int | None, bytes]] = {}
        if output:
            appends["output"] = output
        elif final and sink is not None and sink.path is None:
            appends["output"] = (sink.offset, b"")  # the last step makes the stored output durable
        if self._failed:
            appends["failed"] = (self._failed_offset, self._failed_bytes())
        handler = job_log_handler(self.logger)
        lines = handler.take()
        if lines:
            appends["log"] = (None, lines)
        try:
            result = save(progress, appends)
        except Fenced:
            raise RunAbandoned() from None
        except StoreError as exc:
            log.warning("job %s: storing a step in one write failed (%s); storing it part by part", self.job.id, exc)
            handler.put_back(lines)
            if sink is not None:
                offset = sink.flush()  # falls back to the local file if the store cannot take it
            self._store_failed()
            flush_job_logger(self.logger)
            return save(self._progress(offset), {})
        if output:
            assert sink is not None
            sink.stored()
        if "failed" in appends:
            self._failed_offset += len(appends["failed"][1])
            self._failed.clear()
        return result

    def _checkpoint(self, *, finishing: bool = False) -> None:
        updated = self._step(lambda progress, appends: self.lifecycle.checkpoint(
            self.job, progress, finishing=finishing, appends=appends))
        if updated is None:
            raise RunAbandoned()
        self._last_ckpt_rows = self.rows_done
        self._last_ckpt_time = self.clock.monotonic()
        # What other processes asked since (a stop, a new pause) is in the record we got back:
        # it lands here even if the executor heard nothing of it (issue 11.1).
        control = self.control
        if updated.stop_requested and not control.stop.is_set():
            control.request_stop()
        if updated.wait_after_row_ms != control.wait_after_row_ms:
            control.set_wait(updated.wait_after_row_ms)

    def _output_location(self) -> str | None:
        path = self.sink.path if self.sink is not None else None
        return None if path is None else str(path)

    def _on_fallback(self, target: Any, reason: str) -> None:
        self.note = f"output written to {target} (the output location could not be written: {reason})"
        self.logger.warning("%s", self.note)

    def _leave_for_resume(self) -> JobRecord | None:
        """Graceful engine shutdown: persist everything and release the job for the next engine."""
        self._state_for_checkpoint()  # a state that cannot be saved shows here
        if not self.resumable:
            reason = "the engine shut down and this job cannot be resumed (its state does not survive a JSON round trip)"
            if self.spec.is_generator:
                reason = "the engine shut down and this job cannot be resumed (a generator task)"
            return self._finalize(JobStatus.INTERNAL_ERROR, reason)
        self.logger.info("engine shutting down: the job will resume at row %d", self.rows_done + 1)
        if self.sink is not None:
            self.sink.close_local()
        self._step(lambda progress, appends: self.lifecycle.release(self.job, progress, appends=appends),
                   final=True)
        return None

    def _finalize(self, status: JobStatus, error: str | None) -> JobRecord | None:
        if self.sink is not None:
            try:
                self.sink.close_local()
            except RunFailed as exc:
                status, error = JobStatus.INTERNAL_ERROR, str(exc)
        self.logger.info(
            "finished: %s (%d succeeded, %d failed%s)",
            status.value, self.success, self.failure,
            f" of {self.job.total_count}" if self.job.total_count is not None else "",
        )
        next_claim = self.next_claim

        def finish(progress: Progress, appends: dict[str, tuple[int | None, bytes]]) -> JobRecord | None:
            if next_claim is None:
                return self.lifecycle.finish(self.job, status, progress, error, appends=appends)[0]
            with next_claim as claim_next:
                updated, claimed = self.lifecycle.finish(
                    self.job, status, progress, error, appends=appends, claim_next=claim_next)
                next_claim.claimed(claimed)
            return updated

        try:
            updated = self._step(finish, final=True)
        except RunAbandoned:
            self.logger.warning("the job was removed or taken over by another engine; stopping")
            return None
        except RunFailed as exc:  # the output could be stored nowhere
            updated = self.lifecycle.finish(self.job, JobStatus.INTERNAL_ERROR, self._progress(None), str(exc))[0]
        if updated is None:
            self.logger.warning("the job was removed while it ran; its final state is not stored")
            return None
        self._emit_progress()
        return updated
