"""A job's output: the CSV rows a run writes, in batches, to the job's ``output`` file in the
store, with the fallback of contract 4.3.

Every append names the offset it expects (what this sink has written so far), so the stored output
is always exactly this run's bytes: a resumed run's first append cuts the rows written after its
last checkpoint, and a retried append cannot write twice. Every append carries the run's ``claim``:
a fenced append means the job was taken from this run (:class:`RunAbandoned`).

Rows are rendered a batch at a time, and held until the run's next step (a checkpoint, at least
once a second) stores them with the record in one write, or until :attr:`OutputSink.HOLD_BYTES`
are held. Rows after the last checkpoint were never kept by a crash anyway (a resume cuts them
off), so holding them loses nothing; and a step is one write instead of one write per batch plus
the step (on PostgreSQL each write is a round trip and a durable commit).

A step may be *in flight* (sent, its outcome not known until the run's next write: a checkpoint
the store overlaps with the next rows, ``JobStep.overlap``): its bytes are kept apart
(:meth:`OutputSink.sent`) until that write confirms them (:meth:`OutputSink.landed`), or are put
back in front of the rows not stored yet if it failed (:meth:`OutputSink.unsend`), so that they are
stored again at their offset (an append at an offset is idempotent) or moved to the fallback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kzconsole.engine.csvout import CsvBatchWriter, plain_row
from kzconsole.engine.store.base import Fenced, Store, StoreError

__all__ = ["OutputSink", "RunAbandoned", "RunFailed"]


class RunAbandoned(Exception):
    """The job was taken from this run (removed, or claimed by another engine): stop without
    writing anything more."""


class RunFailed(Exception):
    """The engine cannot go on with the job (its input or output is unusable): it ends
    ``internal_error`` with this message."""


class OutputSink:
    """The output CSV of one run. When the store cannot take an append (other than a fence), what
    it holds is copied to ``task_out.<id>.csv`` in the fallback folder and writing goes on there
    (``path`` names it then; ``on_fallback`` is told)."""

    BATCH_ROWS = 512  # rows rendered at a time
    HOLD_BYTES = 1 << 20  # rendered output held for the next step at most (then stored at once)

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
        self._flight = bytearray()  # sent with a step whose outcome is not known yet (after offset)
        # Told whether that step was stored (True) or not (False) when flush() finds out first.
        self.on_flight: Callable[[bool], None] | None = None
        # Rows of plain cells not written yet: flush() renders them in one CsvBatchWriter call.
        # The row loop appends input rows here itself (they are plain by construction).
        self.rows: list[list[Any] | tuple[Any, ...]] = []
        self._batch = CsvBatchWriter()
        self._unstored = bytearray()  # rendered, not yet known to be stored
        self.path: Path | None = None  # the fallback file, once writing goes there
        self._file: Any = None
        if fallback is not None:
            # A resumed job whose output had moved to the fallback goes on there.
            self._resume_local(Path(fallback))
        elif offset:
            try:
                size = store.file_size(job_id, "output") or 0
            except Fenced:
                raise RunAbandoned() from None
            except StoreError as exc:
                raise RunFailed(f"cannot resume: the stored output cannot be read: {exc}") from exc
            if size < offset:
                raise RunFailed(
                    f"cannot resume: the stored output holds {size} bytes, fewer than the {offset}"
                    " of its last checkpoint (it was truncated, or lost in a crash of the machine)"
                )

    def _resume_local(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RunFailed(f"cannot resume: the output {path} cannot be opened: {exc}") from exc
        f = os.fdopen(fd, "r+b", buffering=0)
        size = os.fstat(fd).st_size
        if size < self.offset:
            # truncate() would pad with NUL bytes: rows the checkpoint counts are gone.
            f.close()
            raise RunFailed(
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
            self.batch()

    def batch(self) -> None:
        """A batch of rows is complete: render it, and hold it for the next step unless
        :attr:`HOLD_BYTES` are held (then store them now) or writing goes to the local fallback."""
        if self.rows:
            self._unstored += self._batch.render(self.rows).encode("utf-8")
            self.rows.clear()
        if self._file is not None or len(self._unstored) >= self.HOLD_BYTES:
            self.flush()

    def pending(self) -> tuple[int, bytes] | None:
        """The rows not stored yet, rendered, for the caller to store with a checkpoint: (the
        offset they go at, their bytes); :meth:`stored` once they are. None when there is nothing
        to store, or writing goes to the local fallback (then they are written there now)."""
        if self._file is not None:
            self.flush()
            return None
        if self.rows:
            self._unstored += self._batch.render(self.rows).encode("utf-8")
            self.rows.clear()
        if not self._unstored:
            return None
        return self.end, bytes(self._unstored)

    @property
    def end(self) -> int:
        """The output's length, the bytes of a step in flight included."""
        return self.offset + len(self._flight)

    def stored(self) -> None:
        """What :meth:`pending` gave is in the store."""
        self.offset += len(self._unstored)
        self._unstored.clear()

    def sent(self) -> None:
        """What :meth:`pending` gave went with a step whose outcome is not known yet."""
        self._flight += self._unstored
        self._unstored.clear()

    def landed(self) -> None:
        """The step in flight is stored (the run's next write was accepted)."""
        self.offset += len(self._flight)
        self._flight.clear()

    def unsend(self) -> None:
        """The step in flight may not be stored: its bytes go back in front of the others."""
        self._unstored[:0] = self._flight
        self._flight.clear()

    def flush(self, *, sync: bool = False) -> int:
        """Store the rows not stored yet; return the output's length in bytes. ``sync``: make it
        durable (the job's end)."""
        if self.rows:
            self._unstored += self._batch.render(self.rows).encode("utf-8")
            self.rows.clear()
        data = bytes(self._unstored)
        self._unstored.clear()
        if self._file is not None:
            self._write_local(data, sync)
        elif data or sync or self._flight:
            flight = bool(self._flight)
            try:
                # After a step in flight: the store settles that step first (this same thread's
                # next write about the job), so a refusal or failure of it shows here.
                self.offset = self.store.append_file(
                    self.job_id, "output", data, offset=self.end, claim=self.claim, sync=sync
                )
                self._flight.clear()
            except Fenced:
                raise RunAbandoned() from None
            except StoreError as exc:
                data = bytes(self._flight) + data
                self._flight.clear()
                if flight and self.on_flight is not None:
                    self.on_flight(False)
                self._switch_to_fallback(exc, data)
            else:
                if flight and self.on_flight is not None:
                    self.on_flight(True)
                if sync:
                    self._write_local(b"", True)
        return self.offset

    def _write_local(self, data: bytes, sync: bool) -> None:
        try:
            _write_all(self._file, data)
            if sync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise RunFailed(f"cannot write the output to {self.path}: {exc}") from exc
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
            raise RunFailed(
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

    def close_local(self) -> None:
        """Finish the local fallback file, if writing went there (its rows, its fsync): the run's
        last step stores what remains with the record otherwise."""
        if self._file is not None:
            self.flush(sync=True)
            self._file.close()
            self._file = None


def _write_all(f: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file, which may take fewer bytes than given (a disk
    filling up does that before it fails)."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]
