"""The job files of the SQLite store: small ones in the database, larger ones beside it.

A file of at most :data:`INLINE_MAX` bytes is a row of the ``job_files`` table (its bytes in
``data``), written in the same transaction as whatever else the store does: a tiny job costs no
folder, no inode and no fsync, and its files are exactly as durable as its record. A file that
grows past that moves, whole, to ``<folder of the db file>/jobs/<id>/`` (``in.csv``, ``out.csv``,
``job.log``, ``failed.txt``; folders 0700, files 0600) and its row keeps ``data`` NULL. A file
with no row at all is looked for there too: that is where every file of a store made before
``job_files`` existed is.

Every method that writes runs inside the store's write transaction (``conn`` holds the write
lock), so a claim checked by the caller cannot change while the bytes are written.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from kzconsole.engine.store.base import StoreError, check_kind

__all__ = ["JobFiles", "INLINE_MAX", "MIGRATION"]

INLINE_MAX = 64 * 1024

# The schema step that makes the table (the store lists it in its MIGRATIONS). WITHOUT ROWID: the
# rows live in the primary key's b-tree, so writing one touches one tree, not a table and an index.
MIGRATION = (
    """
    CREATE TABLE job_files (
        job_id TEXT NOT NULL,
        kind   TEXT NOT NULL,
        data   BLOB,
        PRIMARY KEY (job_id, kind)
    ) WITHOUT ROWID
    """,
)


@functools.lru_cache(maxsize=8)
def _upsert(count: int) -> str:
    """The statement writing ``count`` rows of job_files (kept by count: a step has one to four)."""
    return "INSERT OR REPLACE INTO job_files (job_id, kind, data) VALUES " + ", ".join(["(?, ?, ?)"] * count)


_NAMES = {"input": "in.csv", "output": "out.csv", "log": "job.log", "failed": "failed.txt"}
# Ids that may name a folder (the engine's are 32 hex characters; tests use short names).
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until all of ``data`` is written (a disk filling up takes part of a write first)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _copy_into(src: BinaryIO, fd: int) -> None:
    """Copy a stream to its end into an open file descriptor, in constant memory: in the kernel
    (sendfile) when the stream is a regular file, else through a 1 MiB buffer."""
    try:
        src_fd = src.fileno()
        regular = stat.S_ISREG(os.fstat(src_fd).st_mode)
        position = src.tell() if regular else 0
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        regular = False
    if regular:
        while True:
            sent = os.sendfile(fd, src_fd, position, 1 << 24)
            if sent == 0:
                break
            position += sent
        src.seek(position)
        return
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            return
        _write_all(fd, chunk)


class StagedInput:
    """An input read before the transaction that stores it: its bytes when small, else a private
    temporary file in the job's folder (fsynced) that the transaction renames into place."""

    def __init__(self, data: bytes | None, part: Path | None) -> None:
        self.data = data
        self.part = part

    def discard(self) -> None:
        if self.part is not None:
            JobFiles.discard(self.part)


class JobFiles:
    """The job files of the store whose database file is in ``folder``."""

    def __init__(self, folder: Path, describe: str) -> None:
        self.dir = folder / "jobs"
        self._dir = str(self.dir)
        self.describe = describe  # "store /path/kz.db", for messages

    # ------------------------------------------------------------------ places

    def folder(self, job_id: str) -> Path | None:
        """The job's folder (whether or not it exists); None for an id that cannot name one."""
        if not _SAFE_ID.fullmatch(job_id):
            return None
        return self.dir / job_id

    def check(self, job_id: str, kind: str) -> None:
        """Raise unless ``kind`` is a file kind and ``job_id`` can name a folder (no Path made)."""
        check_kind(kind)
        if not _SAFE_ID.fullmatch(job_id):
            raise StoreError(f"{self.describe}: {job_id!r} cannot be a job id with files")

    def path(self, job_id: str, kind: str) -> Path:
        check_kind(kind)
        folder = self.folder(job_id)
        if folder is None:
            raise StoreError(f"{self.describe}: {job_id!r} cannot be a job id with files")
        return folder / _NAMES[kind]

    def _error(self, doing: str, kind: str, job_id: str, exc: OSError) -> StoreError:
        return StoreError(f"{self.describe}: {doing} the {kind} of job {job_id!r} failed: {exc.strerror or exc}")

    @staticmethod
    def _make_folder(folder: Path) -> None:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except FileNotFoundError:  # the jobs folder itself: made with the first file on disk
            os.makedirs(folder.parent, 0o700, exist_ok=True)
            os.mkdir(folder, 0o700)

    def _open_for_write(self, path: Path, flags: int = 0) -> int:
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
        except FileNotFoundError:
            self._make_folder(path.parent)
            return os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)

    @staticmethod
    def discard(part: Path) -> None:
        try:
            part.unlink()
        except OSError:
            pass
        try:
            part.parent.rmdir()  # only if the part was all there was
        except OSError:
            pass

    # ------------------------------------------------------------------ input

    def stage(self, job_id: str, kind: str, src: BinaryIO) -> StagedInput:
        """Read ``src`` to its end before the transaction (it may be long): kept in memory when
        small, else copied to a temporary file in the job's folder."""
        path = self.path(job_id, kind)
        head = src.read(INLINE_MAX + 1)
        if len(head) <= INLINE_MAX:
            return StagedInput(bytes(head), None)
        part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            fd = self._open_for_write(part)
        except OSError as exc:
            raise self._error("storing", kind, job_id, exc) from exc
        try:
            _write_all(fd, head)
            _copy_into(src, fd)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.discard(part)
            raise
        os.close(fd)
        return StagedInput(None, part)

    def install(self, conn: sqlite3.Connection, job_id: str, kind: str, staged: StagedInput) -> None:
        """Make a staged input the job's file (in the write transaction of its record)."""
        if staged.part is not None:
            os.replace(staged.part, self.path(job_id, kind))
            conn.execute("INSERT OR REPLACE INTO job_files (job_id, kind, data) VALUES (?, ?, NULL)", (job_id, kind))
        else:
            conn.execute(
                "INSERT OR REPLACE INTO job_files (job_id, kind, data) VALUES (?, ?, ?)", (job_id, kind, staged.data)
            )

    # ------------------------------------------------------------------ appends

    def _row(self, conn: sqlite3.Connection, job_id: str, kind: str) -> tuple[bool, bytes | None]:
        """(whether the file is in the database, its bytes there)."""
        row = conn.execute("SELECT data FROM job_files WHERE job_id = ? AND kind = ?", (job_id, kind)).fetchone()
        if row is None:
            return self.absent(job_id, kind)
        return row[0] is not None, row[0]

    def absent(self, job_id: str, kind: str) -> tuple[bool, bytes]:
        """What a file with no row is: one of a store made before job_files, or none yet (one
        stat: a string path is cheaper than a Path, and this is on every tiny job's way). Which
        of the two does not change while the job runs (no code of this schema makes a file
        without its row), so the store looks before its write transaction: a stat gives up the
        GIL, and taking it back with the write lock held keeps every other writer waiting."""
        return not os.path.exists(f"{self._dir}/{job_id}/{_NAMES[kind]}"), b""

    def append(
        self, conn: sqlite3.Connection, job_id: str, kind: str, data: bytes, offset: int | None, sync: bool
    ) -> int:
        """Append (after cutting at ``offset``); return the new size. In a write transaction."""
        inline, current = self._row(conn, job_id, kind)
        size, row = self._put(job_id, kind, inline, current, data, offset, sync)
        if row is not None:
            conn.execute(_upsert(1), row)
        return size

    def append_many(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        appends: Mapping[str, tuple[int | None, bytes]],
        sync: bool,
        on_disk: set[str],
        absent: Mapping[str, tuple[bool, bytes]],
    ) -> None:
        """Several appends to one job's files, each as :meth:`append`, with one read of their
        rows and one write of those kept in the database: a job's step (its output, log and
        failed rows) is then two statements, not two per file. In a write transaction.
        ``absent``: :meth:`absent` of each kind, looked at before the transaction (see there).

        ``on_disk``: the kinds whose bytes went to a file of the folder by a plain append, which
        a rolled-back transaction does not undo: a retry of the same step skips them (and adds to
        the set). What is in the database is rolled back with the transaction, so it is redone."""
        kinds = [kind for kind in appends if kind not in on_disk]
        if not kinds:
            return
        marks = ", ".join("?" * len(kinds))
        found = dict(
            conn.execute(f"SELECT kind, data FROM job_files WHERE job_id = ? AND kind IN ({marks})", (job_id, *kinds))
        )
        rows: list[Any] = []
        for kind in kinds:
            offset, data = appends[kind]
            if kind in found:
                inline, current = found[kind] is not None, found[kind]
            else:
                inline, current = absent[kind]
            _, row = self._put(job_id, kind, inline, current, data, offset, sync)
            if row is not None:
                rows.extend(row)
            elif not inline:
                on_disk.add(kind)
        if rows:
            count = len(rows) // 3
            conn.execute(_upsert(count), rows)

    def _put(
        self, job_id: str, kind: str, inline: bool, current: bytes | None, data: bytes, offset: int | None, sync: bool
    ) -> tuple[int, tuple[str, str, bytes | None] | None]:
        """Append to a file whose row was read (``inline``: its bytes are ``current``): the new
        size, and the row to write (None: none to write)."""
        if inline:
            assert current is not None
            size = len(current)
            if offset is not None:
                self._check_offset(job_id, kind, size, offset)
                current = current[:offset]
            if not data and len(current) == size:
                return size, None  # nothing to change (what is in this database is as durable as its rows)
            content = current + data if data else current
            if len(content) <= INLINE_MAX:
                return len(content), (job_id, kind, content)
            # Grown past the limit: the whole file moves to the job's folder.
            size = self._write_file(job_id, kind, content, None, sync, truncate=True)
            return size, (job_id, kind, None)
        return self._write_file(job_id, kind, data, offset, sync), None

    def _check_offset(self, job_id: str, kind: str, size: int, offset: int) -> None:
        if offset > size:
            raise StoreError(
                f"{self.describe}: the {kind} of job {job_id!r} holds {size} bytes, fewer than the {offset} expected"
            )

    def _write_file(
        self, job_id: str, kind: str, data: bytes, offset: int | None, sync: bool, *, truncate: bool = False
    ) -> int:
        path = self.path(job_id, kind)
        try:
            fd = self._open_for_write(path, os.O_TRUNC if truncate else 0)
            try:
                size = os.fstat(fd).st_size
                if offset is not None:
                    self._check_offset(job_id, kind, size, offset)
                    if offset < size:
                        os.ftruncate(fd, offset)
                    size = offset
                if data:
                    os.lseek(fd, size, os.SEEK_SET)
                    _write_all(fd, data)
                    size += len(data)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error("writing", kind, job_id, exc) from exc
        return size

    # ------------------------------------------------------------------ reading

    def open(self, conn: sqlite3.Connection, job_id: str, kind: str) -> BinaryIO | None:
        check_kind(kind)
        if self.folder(job_id) is None:
            return None
        row = conn.execute("SELECT data FROM job_files WHERE job_id = ? AND kind = ?", (job_id, kind)).fetchone()
        if row is not None and row[0] is not None:
            return io.BytesIO(row[0])
        try:
            return open(self.path(job_id, kind), "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("reading", kind, job_id, exc) from exc

    def size(self, conn: sqlite3.Connection, job_id: str, kind: str) -> int | None:
        check_kind(kind)
        if self.folder(job_id) is None:
            return None
        row = conn.execute(
            "SELECT length(data), data IS NULL FROM job_files WHERE job_id = ? AND kind = ?", (job_id, kind)
        ).fetchone()
        if row is not None and not row[1]:
            return int(row[0])
        try:
            return self.path(job_id, kind).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("reading", kind, job_id, exc) from exc

    # ------------------------------------------------------------------ removal

    def delete_rows(self, conn: sqlite3.Connection, job_id: str) -> None:
        conn.execute("DELETE FROM job_files WHERE job_id = ?", (job_id,))

    def remove_folder(self, job_id: str) -> None:
        """After the commit that deleted the job: its folder, if it has one."""
        folder = self.folder(job_id)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
