"""Job logs: each job has a ``log`` file in the store, fed by ``ctx.log``, by anything the plugin
prints, and by the engine's own lines about the job.

Plugins print from job threads; ``sys.stdout``/``sys.stderr`` are replaced (once, while an engine
runs jobs) by a router that sends a job thread's writes to that job's log and everything else to
the original stream, so a ``--json`` document on stdout is never mixed with plugin output.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from kzconsole.engine.store.base import Store, StoreError

_current = threading.local()

LINE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class JobLogHandler(logging.Handler):
    """Keeps a job's log lines for its ``log`` file in the store and hands each line to
    ``on_line`` (the event bus) at once.

    Lines reach the store in batches (one fenced append per :meth:`flush`, which the runner calls
    at its ticks, checkpoints and end), and by themselves once ``FLUSH_S`` passed since the last
    batch, so a row that logs and then runs for long still shows its lines to other processes. A
    store failure or a fenced append loses those lines, never the job: the runner learns of both
    at its next checkpoint.
    """

    FLUSH_S = 0.5
    MAX_PENDING = 256 * 1024

    def __init__(
        self,
        store: Store,
        job_id: str,
        claim: int | None,
        on_line: Callable[[str], None] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logging.DEBUG)
        self.store = store
        self.job_id = job_id
        self.claim = claim
        self.on_line = on_line
        self._monotonic = monotonic
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._last_flush = monotonic()
        self._flush_lock = threading.Lock()
        self.setFormatter(logging.Formatter(LINE_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._keep(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into a plugin
            self.handleError(record)

    def note(self, level: str, message: str) -> None:
        """A line of the engine's own about the job, formatted as :meth:`emit` would, without the
        cost of a LogRecord (two a job: a tiny job's set-up was half logging)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self._keep(f"{stamp} {level:<7} {message}")

    def _keep(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(data)
            self._pending_bytes += len(data)
            due = self._pending_bytes >= self.MAX_PENDING or self._monotonic() - self._last_flush >= self.FLUSH_S
        if self.on_line is not None:
            self.on_line(line)
        if due:
            self.flush()

    def take(self) -> bytes:
        """The lines kept so far, handed to the caller to store (with a checkpoint)."""
        with self.lock:  # type: ignore[union-attr]
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._last_flush = self._monotonic()
        return data

    def put_back(self, data: bytes) -> None:
        """Lines :meth:`take` gave that could not be stored: kept for the next flush, first."""
        if data:
            with self.lock:  # type: ignore[union-attr]
                self._pending.insert(0, data)
                self._pending_bytes += len(data)

    def flush(self) -> None:
        """Append the lines kept so far to the job's log in the store."""
        with self._flush_lock:
            with self.lock:  # type: ignore[union-attr]
                if not self._pending:
                    return
                data = b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                self._last_flush = self._monotonic()
            try:
                self.store.append_file(self.job_id, "log", data, claim=self.claim)
            except StoreError as exc:
                # Not raised: the plugin's call must go on; the checkpoint reports the store.
                sys_log.warning("job %s: %d bytes of its log are lost: %s", self.job_id, len(data), exc)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()


sys_log = logging.getLogger("kzconsole.engine.logs")


def job_logger(
    job_id: str, store: Store, claim: int | None, on_line: Callable[[str], None] | None = None
) -> logging.Logger:
    """A fresh logger for one run of a job (the plugin's ``ctx.log``), writing to the job's log in
    ``store`` with the run's ``claim``.

    It is made directly, not through ``logging.getLogger``: registered loggers live as long as the
    process (one per job run: a slow leak in an engine that runs for months), and registering or
    leveling one clears the level cache of every logger (the Nth job paid O(N)). It has no parent,
    so its lines go to the job's log only.
    """
    logger = logging.Logger(f"kzconsole.job.{job_id}", logging.DEBUG)  # noqa: LOG001 - see above
    logger.propagate = False
    logger.addHandler(JobLogHandler(store, job_id, claim, on_line))
    return logger


def flush_job_logger(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.flush()


def job_log_handler(logger: logging.Logger) -> JobLogHandler:
    """The store handler of a logger made by :func:`job_logger`."""
    (handler,) = (h for h in logger.handlers if isinstance(h, JobLogHandler))
    return handler


def close_job_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class _StreamRouter(io.TextIOBase):
    """Stands in for sys.stdout/stderr: a job thread's writes go to its log, others pass through."""

    def __init__(self, original: TextIO, level: int) -> None:
        self.original = original
        self.level = level
        self._buffers = threading.local()

    def write(self, text: str) -> int:
        logger = getattr(_current, "logger", None)
        if logger is None:
            return self.original.write(text)
        pending = getattr(self._buffers, "text", "") + text
        *lines, rest = pending.split("\n")
        self._buffers.text = rest
        for line in lines:
            logger.log(self.level, line)
        return len(text)

    def flush(self) -> None:
        if getattr(_current, "logger", None) is None:
            self.original.flush()

    def flush_pending(self, logger: logging.Logger) -> None:
        """Log this thread's last line when it did not end with a newline."""
        rest = getattr(self._buffers, "text", "")
        if rest:
            self._buffers.text = ""
            logger.log(self.level, rest)

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_install_lock = threading.Lock()


def install_stream_router() -> None:
    """Route job threads' prints to their logs (idempotent)."""
    with _install_lock:
        if not isinstance(sys.stdout, _StreamRouter) and sys.stdout is not None:
            sys.stdout = _StreamRouter(sys.stdout, logging.INFO)
        if not isinstance(sys.stderr, _StreamRouter) and sys.stderr is not None:
            sys.stderr = _StreamRouter(sys.stderr, logging.WARNING)


class bound_to_job:
    """While inside, prints from this thread go to ``logger``."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __enter__(self) -> None:
        self._previous = getattr(_current, "logger", None)
        _current.logger = self.logger

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _StreamRouter):
                stream.flush_pending(self.logger)
        _current.logger = self._previous


class LogBuffer(logging.Handler):
    """The engine's recent log records, for the console's Logs view.

    Records are kept with a sequence number; :meth:`since` returns the ones after a given number,
    so a view that was hidden catches up in one call. ``on_record(created, level, logger,
    message)`` is called for each record as it comes (the engine emits ``EngineLogged`` there); a
    record logged while it runs (a subscriber logging) is kept but not passed on again.
    """

    def __init__(self, capacity: int = 10_000, on_record: Callable[[float, str, str, str], None] | None = None) -> None:
        super().__init__(logging.DEBUG)
        from collections import deque

        self._records: deque[tuple[int, float, str, str, str]] = deque(maxlen=capacity)
        self._seq = 0
        self._on_record = on_record
        self._passing = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # noqa: BLE001
            message = str(record.msg)
        with self.lock:  # type: ignore[union-attr]
            self._seq += 1
            self._records.append((self._seq, record.created, record.levelname, record.name, message))
        if self._on_record is not None and not getattr(self._passing, "on", False):
            self._passing.on = True
            try:
                self._on_record(record.created, record.levelname, record.name, message)
            finally:
                self._passing.on = False

    def since(self, seq: int) -> tuple[int, list[tuple[float, str, str, str]]]:
        """Records after ``seq``: (last sequence number, [(created, level, logger, message)])."""
        with self.lock:  # type: ignore[union-attr]
            last = self._seq
            if seq >= last:
                return last, []
            items = [r[1:] for r in self._records if r[0] > seq]
        return last, items
