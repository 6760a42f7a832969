"""Job logs: each job has a log file under its folder, fed by ``ctx.log``, by anything the plugin
prints, and by the engine's own lines about the job.

Plugins print from job threads; ``sys.stdout``/``sys.stderr`` are replaced (once, while an engine
runs jobs) by a router that sends a job thread's writes to that job's log and everything else to
the original stream, so a ``--json`` document on stdout is never mixed with plugin output.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Callable

_current = threading.local()

LINE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class JobLogHandler(logging.Handler):
    """Writes a job's log lines to its file and hands each line to ``on_line`` (the event bus)."""

    def __init__(self, path: Path, on_line: Callable[[str], None] | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self.on_line = on_line
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self.setFormatter(logging.Formatter(LINE_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.lock:  # type: ignore[union-attr]
                self._file.write(line + "\n")
            if self.on_line is not None:
                self.on_line(line)
        except Exception:  # noqa: BLE001 - logging must never raise into a plugin
            self.handleError(record)

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            super().close()


def job_logger(job_id: str, path: Path, on_line: Callable[[str], None] | None = None) -> logging.Logger:
    """A fresh logger for one run of a job (the plugin's ``ctx.log``).

    It is made directly, not through ``logging.getLogger``: registered loggers live as long as the
    process (one per job run: a slow leak in an engine that runs for months), and registering or
    leveling one clears the level cache of every logger (the Nth job paid O(N)). It has no parent,
    so its lines go to the job's log only.
    """
    logger = logging.Logger(f"kzconsole.job.{job_id}", logging.DEBUG)
    logger.propagate = False
    logger.addHandler(JobLogHandler(path, on_line))
    return logger


def close_job_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class _StreamRouter(io.TextIOBase):
    """Stands in for sys.stdout/stderr: a job thread's writes go to its log, others pass through."""

    def __init__(self, original: io.TextIOBase, level: int) -> None:
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

    def __getattr__(self, name: str):
        return getattr(self.original, name)


_install_lock = threading.Lock()


def install_stream_router() -> None:
    """Route job threads' prints to their logs (idempotent)."""
    with _install_lock:
        if not isinstance(sys.stdout, _StreamRouter) and sys.stdout is not None:
            sys.stdout = _StreamRouter(sys.stdout, logging.INFO)  # type: ignore[assignment]
        if not isinstance(sys.stderr, _StreamRouter) and sys.stderr is not None:
            sys.stderr = _StreamRouter(sys.stderr, logging.WARNING)  # type: ignore[assignment]


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
    """The engine's recent log records, for the console's Logs view (polled, never pushed).

    Records are kept with a sequence number; :meth:`since` returns the ones after a given number,
    so a view that was hidden catches up in one call.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        super().__init__(logging.DEBUG)
        from collections import deque

        self._records: deque[tuple[int, float, str, str, str]] = deque(maxlen=capacity)
        self._seq = 0

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

    def since(self, seq: int) -> tuple[int, list[tuple[float, str, str, str]]]:
        """Records after ``seq``: (last sequence number, [(created, level, logger, message)])."""
        with self.lock:  # type: ignore[union-attr]
            last = self._seq
            if seq >= last:
                return last, []
            items = [r[1:] for r in self._records if r[0] > seq]
        return last, items
