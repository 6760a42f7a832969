"""The row loop: runs one job (CSV or noinput) to its end, with the return-value rules of contract
2.3, verifiers (2.4), the output header (2.5), stops, pauses, checkpoints and the output fallback
(4.3, 4.4).

A run works on a job the scheduler already claimed (status ``executing``, ``owner`` = this engine).
Durability comes from checkpoints: every ``send_progress_after_processed`` rows and at least once a
second the output is flushed and the store records, in one compare-and-set update, the counts, the
number of input rows whose outcome is in the output (``rows_done``), the output's length in bytes
(``output_offset``) and the iterator state. A resumed run truncates the output to that length,
skips that many input rows and restores the state, so every input row gets exactly one outcome.
"""

from __future__ import annotations

import errno
import json
import logging
import operator
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.csvio import CsvBatchWriter, iter_records, plain_row
from kzconsole.engine.events import EventBus, JobChanged, JobLogged, JobProgressed
from kzconsole.engine.logs import bound_to_job, close_job_logger, flush_job_logger, job_logger
from kzconsole.engine.models import STOPPED_BY_OPERATOR, JobRecord, JobStatus
from kzconsole.engine.store.base import Fenced, Store, StoreError
from kzconsole.plugin import INIT, OK, STOP, Context, Next, TaskSpec

log = logging.getLogger("kzconsole.engine.runner")

LIST_OF_ROWS_IN_CSV = "a CSV task writes at most one row per input row"
_NOKEY = object()  # a dict key no input row has: maps the `error` column to an empty cell


@dataclass
class JobControl:
    """What other threads may change while a job runs: stop, shutdown, the pause."""

    wait_after_row_ms: int
    stop: threading.Event = field(default_factory=threading.Event)  # operator stop
    shutdown: threading.Event = field(default_factory=threading.Event)  # engine stopping: leave it resumable
    wakeup: threading.Event = field(default_factory=threading.Event)  # interrupts the pause
    row_started: float | None = None  # monotonic time the current row (call) started; None between rows

    def request_stop(self) -> None:
        self.stop.set()
        self.wakeup.set()

    def request_shutdown(self) -> None:
        self.shutdown.set()
        self.wakeup.set()

    def set_wait(self, ms: int) -> None:
        self.wait_after_row_ms = ms
        self.wakeup.set()  # a shortened pause takes effect now


class _Abandoned(Exception):
    """The job was taken from us (removed, or claimed by another engine): stop without writing."""


class _InternalError(Exception):
    pass


class OutputSink:
    """The output CSV, appended to the job's ``output`` file in the store in batches, with the
    fallback of contract 4.3: when the store cannot take an append (not a fence), what it holds is
    copied to ``task_out.<id>.csv`` in the fallback folder and writing goes on there.

    Every append names the offset it expects (what this sink wrote so far), so the stored output is
    always exactly this run's bytes: a resumed run's first append cuts the rows written after its
    last checkpoint, and a retried append cannot write twice.
    """

    BATCH_ROWS = 512

    def __init__(
        self,
        store: Store,
        job_id: str,
        claim: int,
        *,
        fallback_dir: str,
        offset: int,
        fallback: str | None,
        on_fallback: Callable[[Path, str], None],
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.claim = claim
        self.fallback_path = Path(fallback_dir) / f"task_out.{job_id}.csv"
        self.on_fallback = on_fallback
        self.offset = offset  # bytes of output stored (in the store, or in the fallback file)
        # Rows of plain cells not written yet: flush() renders them in one CsvBatchWriter call.
        # The row loop appends input rows here itself (they are plain by construction).
        self.rows: list[list[Any] | tuple[Any, ...]] = []
        self._batch = CsvBatchWriter()
        self.path: Path | None = None  # the fallback file, once writing goes there
        self._file: Any = None
        if fallback is not None:
            # A resumed job whose output had moved to the fallback goes on there.
            self._resume_local(Path(fallback))
        elif offset:
            try:
                size = store.file_size(job_id, "output") or 0
            except Fenced:
                raise _Abandoned() from None
            except StoreError as exc:
                raise _InternalError(f"cannot resume: the stored output cannot be read: {exc}") from exc
            if size < offset:
                raise _InternalError(
                    f"cannot resume: the stored output holds {size} bytes, fewer than the {offset}"
                    " of its last checkpoint (it was truncated, or lost in a crash of the machine)"
                )

    def _resume_local(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _InternalError(f"cannot resume: the output {path} cannot be opened: {exc}") from exc
        f = os.fdopen(fd, "r+b", buffering=0)
        size = os.fstat(fd).st_size
        if size < self.offset:
            # truncate() would pad with NUL bytes: rows the checkpoint counts are gone.
            f.close()
            raise _InternalError(
                f"cannot resume: the output {path} holds {size} bytes, fewer than the {self.offset} of"
                " its last checkpoint (it was truncated, or lost in a crash of the machine)"
            )
        if size != self.offset:
            f.truncate(self.offset)
        f.seek(self.offset)
        self._file = f
        self.path = path

    def write(self, cells: list[Any] | tuple[Any, ...]) -> None:
        self.rows.append(plain_row(cells))
        if len(self.rows) >= self.BATCH_ROWS:
            self.flush()

    def flush(self, *, sync: bool = False) -> int:
        """Store the buffered rows; return the output's length in bytes. ``sync``: make it
        durable (the job's end)."""
        data = b""
        if self.rows:
            data = self._batch.render(self.rows).encode("utf-8")
            self.rows.clear()
        if self._file is not None:
            self._write_local(data, sync)
        elif data or sync:
            try:
                self.offset = self.store.append_file(
                    self.job_id, "output", data, offset=self.offset, claim=self.claim, sync=sync
                )
            except Fenced:
                raise _Abandoned() from None
            except StoreError as exc:
                self._switch_to_fallback(exc, data)
                if sync:
                    self._write_local(b"", True)
        return self.offset

    def _write_local(self, data: bytes, sync: bool) -> None:
        try:
            _write_all(self._file, data)
            if sync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise _InternalError(f"cannot write the output to {self.path}: {exc}") from exc
        self.offset += len(data)

    def _switch_to_fallback(self, exc: StoreError, pending: bytes) -> None:
        target = self.fallback_path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            new = os.fdopen(fd, "r+b", buffering=0)
            try:
                self._copy_stored(new)
                _write_all(new, pending)
            except BaseException:
                new.close()
                raise
        except (OSError, StoreError) as exc2:
            raise _InternalError(
                f"cannot write the output to the store ({exc}) nor to the fallback {target} ({exc2})"
            ) from exc2
        self._file = new
        self.path = target
        self.offset += len(pending)  # the checkpoint must count the bytes moved, or a resume cuts rows off
        reason = exc.__cause__.strerror if isinstance(exc.__cause__, OSError) and exc.__cause__.strerror else exc
        self.on_fallback(target, f"{reason}")

    def _copy_stored(self, dest: Any) -> None:
        """What the store holds of this output (the first ``offset`` bytes) into ``dest``."""
        if not self.offset:
            return
        src = self.store.open_file(self.job_id, "output")
        if src is None:
            raise StoreError("the stored output is gone")
        with src:
            remaining = self.offset
            while remaining:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    raise StoreError(f"the stored output holds fewer than {self.offset} bytes")
                _write_all(dest, chunk)
                remaining -= len(chunk)

    def close(self) -> int:
        offset = self.flush(sync=True)
        if self._file is not None:
            self._file.close()
            self._file = None
        return offset


def _write_all(f: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file, which may take fewer bytes than given (a disk
    filling up does that before it fails)."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


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


def _safe_text(convert: Callable[[Any], str], value: Any) -> str:
    """repr() or str() of a plugin's object; a broken __repr__/__str__ must fail a row, not the job."""
    try:
        return convert(value)
    except BaseException as exc:  # noqa: BLE001
        return f"<{type(value).__name__} object: {convert.__name__}() raised {type(exc).__name__}>"


def _invalid(value: Any) -> str:
    return f"invalid return value: {_safe_text(repr, value)[:200]}"


def _exception_text(exc: BaseException) -> str:
    message = _safe_text(str, exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _is_rowlike(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict))


def resolve_output_header(spec: TaskSpec, input_header: list[str] | None, logger: logging.Logger) -> list[str]:
    """Contract 2.5."""
    header: Any = spec.output_header
    if callable(header):
        try:
            header = header()
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in a plugin must not end the job thread
            logger.warning("output_header raised %s; using the default header", _exception_text(exc))
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
        store: Store,
        data_dir: Path,
        node: str,
        control: JobControl,
        events: EventBus,
        fallback_dir: str,
        progress_every: int = 1000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.job = job
        self.spec = spec
        self.verifiers = verifiers
        self.store = store
        self.data_dir = data_dir
        self.node = node
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
        self._rows: Iterator[dict[str, Any]] | None = None  # the input reader (closed at the end)
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
                self._rows.close()

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
            input_header: list[str] | None = None
            rows: Iterator[dict[str, Any]] | None = None
            if not self.spec.is_noinput:
                try:
                    stream = self.store.open_file(job.id, "input")
                except StoreError as exc:
                    raise _InternalError(f"cannot read the input: {exc}") from exc
                if stream is None:
                    raise _InternalError("cannot read the input: the stored input is gone")
                try:
                    input_header, rows = iter_records(stream, skip=job.rows_done)
                except (OSError, ValueError) as exc:
                    stream.close()
                    raise _InternalError(f"cannot read the input: {exc}") from exc
                self._rows = rows
            self.header = resolve_output_header(self.spec, input_header, self.logger)
            self.sink = OutputSink(
                self.store,
                job.id,
                job.claim,
                fallback_dir=self.fallback_dir,
                offset=job.output_offset if resumed else 0,
                fallback=job.output_path if resumed else None,
                on_fallback=self._on_fallback,
            )
            if not resumed:
                self.sink.write(self.header)
            if resumed:
                self.logger.info(
                    "resumed by %s at row %d (%d succeeded, %d failed so far)",
                    self.node, job.rows_done + 1, self.success, self.failure,
                )
            else:
                self.logger.info("started by %s", self.node)
            now = self.clock.monotonic()
            self._last_ckpt_time = self._rate_time = now
            stopped = False
            if not job.finishing:
                if self.spec.is_noinput:
                    stopped = self._run_noinput(ctx)
                else:
                    assert rows is not None and input_header is not None
                    stopped = self._run_csv(ctx, rows, input_header)
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
        except _Abandoned:
            self.logger.warning("the job was removed or taken over by another engine; stopping")
            return None
        except _InternalError as exc:
            self.logger.error("internal error: %s", exc)
            return self._finalize(JobStatus.INTERNAL_ERROR, str(exc))
        except BaseException as exc:  # noqa: BLE001 - an engine bug (or a stray SystemExit) must not kill the engine
            log.exception("job %s: unexpected engine error", job.id)
            self.logger.error("internal error: %s", _exception_text(exc))
            return self._finalize(JobStatus.INTERNAL_ERROR, f"engine error: {_exception_text(exc)}")

    _rows_complete = False  # set when the input ran out (CSV) - a stop after that changes nothing

    # ------------------------------------------------------------- CSV loop

    def _run_csv(self, ctx: Context, rows: Iterator[dict[str, Any]], input_header: list[str]) -> bool:
        """Returns True if the job ended by STOP (or an operator stop)."""
        spec = self.spec
        fn = spec.function
        header = self.header
        keys = [(_NOKEY if c == "error" else c) for c in header]
        error_index = header.index("error")
        width = len(header)
        pad_fields = [f for f in spec.fields if f not in input_header]
        mandatory = spec.mandatory
        verifiers = self.verifiers
        check_cols = [c for c in input_header if c in verifiers]
        verify_needed = bool(check_cols or mandatory)
        sink = self.sink
        assert sink is not None
        write = sink.write
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
        fast_cells = error_index == width - 1 and len(columns) >= 2 and known.issuperset(columns)
        getter = operator.itemgetter(*columns) if fast_cells else None
        tail = (None,)

        def input_row(row: dict[str, Any], error: str | None) -> list[Any]:
            cells = [row.get(k) for k in keys]
            cells[error_index] = error
            return cells

        # Counters live in locals between the points where something reads them from `self`
        # (a checkpoint, a tick, a non-trivial result, the end): attribute updates were a tenth of
        # the loop's time. `ok` counts OK rows (one success and one output row each) not yet added.
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
                        order = {c: i for i, c in enumerate(input_header)}
                        bad.sort(key=lambda c: order.get(c, len(order)))
                stop = False
                if bad is not None:
                    self.failure += 1
                    write(input_row(row, "bad field(s): " + ", ".join(bad)))
                    self.output_rows += 1
                else:
                    control.row_started = monotonic()
                    try:
                        result = fn(ctx, it, row)
                    except BaseException as exc:  # noqa: BLE001 - a plugin's SystemExit fails its row
                        result = _Raised(exc)
                    control.row_started = None
                    if result is None or result is OK:
                        ok += 1
                        if getter is not None:
                            try:
                                pending.append(getter(row) + tail)
                            except KeyError:
                                pending.append([row.get(k) for k in keys])
                        else:
                            pending.append([row.get(k) for k in keys])
                        if len(pending) >= batch_rows:
                            sink.flush()
                    else:
                        self.rows_done = done
                        stop, it = self._csv_result(result, row, it, input_row, width)
                if stop:
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
                    self._pause(wait)
            self.it = it
            self._rows_complete = True
            return False
        finally:
            self.rows_done = done
            self.success += ok
            self.output_rows += ok

    def _csv_result(self, result: Any, row: dict[str, Any], it: Any, input_row, width: int) -> tuple[bool, Any]:
        """Apply one non-trivial return value of a CSV task; return (stop, new iterator)."""
        if result is STOP:
            return True, it
        if isinstance(result, _Raised):
            self._fail_row(input_row(row, _exception_text(result.exc)))
            self.logger.warning("row %d raised %s", self.rows_done + 1, _exception_text(result.exc))
            return False, it
        stop_after = False
        if isinstance(result, Next):
            if result.state is STOP:
                stop_after = True
            else:
                it = result.state
            if not result.has_result:
                self.success += 1
                return stop_after, it
            result = result.result
            if result is STOP:
                return True, it
            if result is None or result is OK:
                self.success += 1
                self._write(input_row(row, None))
                return stop_after, it
        if isinstance(result, str):
            self._fail_row(input_row(row, result or "unspecified error"))
        elif isinstance(result, dict):
            self._write_dict(result)
        elif isinstance(result, (list, tuple)):
            if not result:
                self.success += 1
            elif isinstance(result, list) and _is_rowlike(result[0]):
                if all(_is_rowlike(r) for r in result):
                    self._fail_row(input_row(row, LIST_OF_ROWS_IN_CSV))
                else:
                    self._fail_row(input_row(row, _invalid(result)))
            elif len(result) > width:
                self._fail_row(input_row(row, f"row has {len(result)} cells, the output header has {width}"))
            else:
                self.success += 1
                self._write(self._pad(result, width))
        else:
            self._fail_row(input_row(row, _invalid(result)))
        return stop_after, it

    # ---------------------------------------------------------- noinput loop

    def _run_noinput(self, ctx: Context) -> bool:
        fn = self.spec.function
        control = self.control
        clock = self.clock
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
                        result = STOP
                else:
                    result = fn(ctx, it)
            except BaseException as exc:  # noqa: BLE001
                result = _Raised(exc)
            control.row_started = None
            stop, it = self._noinput_result(result, it)
            if stop:
                self.it = it
                if gen is not None:
                    gen.close()
                return True
            self.rows_done += 1
            if self.rows_done - self._last_ckpt_rows >= self.progress_every:
                self.it = it
                self._checkpoint()
            now = clock.monotonic()
            if now >= self._next_tick:
                self.it = it
                self._tick(now)
            wait = control.wait_after_row_ms
            if wait > 0:
                self._pause(wait)

    def _noinput_result(self, result: Any, it: Any) -> tuple[bool, Any]:
        if result is STOP:
            return True, it
        if isinstance(result, _Raised):
            text = _exception_text(result.exc)
            self.logger.warning("call raised %s; the job ends", text)
            self._fail_row(self._error_row(text))
            return True, it
        stop_after = False
        if isinstance(result, Next):
            if result.state is STOP:
                stop_after = True
            else:
                it = result.state
            if not result.has_result:
                return stop_after, it
            result = result.result
            if result is STOP:
                return True, it
        width = len(self.header)
        if result is None or result is OK:
            self.success += 1
        elif isinstance(result, str):
            self._fail_row(self._error_row(result or "unspecified error"))
        elif isinstance(result, dict):
            self._write_dict(result)
        elif isinstance(result, (list, tuple)):
            if not result:
                pass
            elif isinstance(result, list) and _is_rowlike(result[0]):
                if not all(_is_rowlike(r) for r in result):
                    self._fail_row(self._error_row(_invalid(result)))
                    return True, it
                for r in result:
                    if isinstance(r, dict):
                        self._write_dict(r)
                    elif len(r) > width:
                        self._fail_row(self._error_row(f"row has {len(r)} cells, the output header has {width}"))
                    else:
                        self.success += 1
                        self._write(self._pad(r, width))
            elif len(result) > width:
                self._fail_row(self._error_row(f"row has {len(result)} cells, the output header has {width}"))
            else:
                self.success += 1
                self._write(self._pad(result, width))
        else:
            self._fail_row(self._error_row(_invalid(result)))
            return True, it
        return stop_after, it

    # ------------------------------------------------------------ writing

    def _write(self, cells: list[Any] | tuple[Any, ...]) -> None:
        self.sink.write(cells)  # type: ignore[union-attr]
        self.output_rows += 1

    def _fail_row(self, cells: list[Any]) -> None:
        self.failure += 1
        self._write(cells)

    def _write_dict(self, d: dict[Any, Any]) -> None:
        error = d.get("error")
        if error is None or error == "":
            self.success += 1
        else:
            self.failure += 1
        self._write([d.get(c) for c in self.header])

    def _error_row(self, text: str) -> list[Any]:
        cells: list[Any] = [None] * len(self.header)
        cells[self.header.index("error")] = text
        return cells

    @staticmethod
    def _pad(row: list[Any] | tuple[Any, ...], width: int) -> list[Any] | tuple[Any, ...]:
        if len(row) < width:
            return list(row) + [None] * (width - len(row))
        return row

    # ------------------------------------------------------------- finish

    def _call_finish(self, ctx: Context) -> None:
        finish = self.spec.finish
        if finish is None:
            return
        try:
            with_result = finish(ctx, self.it)
        except BaseException as exc:  # noqa: BLE001
            self.logger.warning("finish raised %s", _exception_text(exc))
            self._fail_row(self._error_row(f"finish: {_exception_text(exc)}"))
            return
        result = with_result
        width = len(self.header)
        if result is None:
            return
        if isinstance(result, str):
            self._fail_row(self._error_row(f"finish: {result}" if result else "finish: unspecified error"))
            return
        rows: list[Any]
        if isinstance(result, dict):
            rows = [result]
        elif isinstance(result, list) and result and _is_rowlike(result[0]):
            rows = result
        elif isinstance(result, (list, tuple)):
            rows = [result] if result else []
        else:
            rows = [None]
        for r in rows:
            if isinstance(r, dict):
                self._write([r.get(c) for c in self.header])
            elif isinstance(r, (list, tuple)) and len(r) <= width:
                self._write(self._pad(r, width))
            else:
                self._fail_row(self._error_row(f"finish: {_invalid(r if r is not None else result)}"))

    # ------------------------------------------------- pause, ticks, state

    def _pause(self, wait_ms: int) -> None:
        control = self.control
        control.wakeup.clear()
        if control.stop.is_set() or control.shutdown.is_set():
            return
        deadline = self.clock.monotonic() + wait_ms / 1000.0
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return
            if self.clock.wait(control.wakeup, remaining):
                if control.stop.is_set() or control.shutdown.is_set():
                    return
                control.wakeup.clear()
                # the pause may have been changed: recompute from the new value
                deadline = min(deadline, self.clock.monotonic() + control.wait_after_row_ms / 1000.0)

    def _tick(self, now: float) -> None:
        """At most 5 times a second: progress event; at least once a second: checkpoint."""
        self._next_tick = now + 0.2
        elapsed = now - self._rate_time
        if elapsed >= 0.5:
            instant = (self.rows_done - self._rate_rows) / elapsed
            self._rate = instant if self._rate == 0 else 0.5 * self._rate + 0.5 * instant
            self._rate_rows = self.rows_done
            self._rate_time = now
        if now - self._last_ckpt_time >= 1.0:
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

    def _checkpoint(self, *, finishing: bool = False) -> None:
        assert self.sink is not None
        offset = self.sink.flush()
        state = self._state_for_checkpoint()
        changes: dict[str, Any] = {
            "success_count": self.success,
            "failure_count": self.failure,
            "rows_done": self.rows_done,
            "output_rows": self.output_rows,
            "output_offset": offset,
            "state": state,
            "resumable": self.resumable,
            "output_path": self._output_location(),
            "error": self.note,
        }
        if finishing:
            changes["finishing"] = True
        flush_job_logger(self.logger)
        updated = self.store.update_job(self.job.id, changes, expect=self._mine)
        if updated is None:
            raise _Abandoned()
        self._last_ckpt_rows = self.rows_done
        self._last_ckpt_time = self.clock.monotonic()
        # What other processes asked since (a stop, a new pause) is in the record we got back:
        # it lands here even if no poll of the scheduler saw it (issue 11.1).
        control = self.control
        if updated.stop_requested and not control.stop.is_set():
            control.request_stop()
        if updated.wait_after_row_ms != control.wait_after_row_ms:
            control.set_wait(updated.wait_after_row_ms)

    @property
    def _mine(self) -> dict[str, Any]:
        """The compare-and-set of every write about this run: still ours, still running."""
        return {"claim": self.job.claim, "status": JobStatus.EXECUTING.value}

    def _output_location(self) -> str | None:
        path = self.sink.path if self.sink is not None else None
        return None if path is None else str(path)

    def _on_fallback(self, target: Path, reason: str) -> None:
        self.note = f"output written to {target} (the output location could not be written: {reason})"
        self.logger.warning("%s", self.note)

    def _leave_for_resume(self) -> JobRecord | None:
        """Graceful engine shutdown: persist everything and release the job for the next engine."""
        self._checkpoint()
        if not self.resumable:
            reason = "the engine shut down and this job cannot be resumed (its state does not survive a JSON round trip)"
            if self.spec.is_generator:
                reason = "the engine shut down and this job cannot be resumed (a generator task)"
            return self._finalize(JobStatus.INTERNAL_ERROR, reason)
        assert self.sink is not None
        self.sink.close()
        updated = self.store.update_job(self.job.id, {"owner": None}, expect=self._mine)
        self.logger.info("engine shutting down: the job will resume at row %d", self.rows_done + 1)
        if updated is not None:
            self.events.emit(JobChanged(updated))
        return None

    def _finalize(self, status: JobStatus, error: str | None) -> JobRecord | None:
        offset = None
        if self.sink is not None:
            try:
                offset = self.sink.close()
            except _InternalError as exc:
                status, error = JobStatus.INTERNAL_ERROR, str(exc)
        changes: dict[str, Any] = {
            "status": status.value,
            "end_timestamp": self.clock.time(),
            "success_count": self.success,
            "failure_count": self.failure,
            "rows_done": self.rows_done,
            "output_rows": self.output_rows,
            "owner": None,
            "error": error,
            "finishing": False,
            "stop_requested": False,
        }
        if offset is not None:
            changes["output_offset"] = offset
        if self.sink is not None:
            changes["output_path"] = self._output_location()
        flush_job_logger(self.logger)
        updated = self.store.update_job(self.job.id, changes, expect=self._mine)
        if updated is None:
            self.logger.warning("the job was removed while it ran; its final state is not stored")
            return None
        self.logger.info(
            "finished: %s (%d succeeded, %d failed%s)",
            status.value, self.success, self.failure,
            f" of {self.job.total_count}" if self.job.total_count is not None else "",
        )
        self._emit_progress()
        self.events.emit(JobChanged(updated))
        return updated


class _Raised:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
