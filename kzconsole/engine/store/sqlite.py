"""The default store: one SQLite file under the data dir, shared by every process on the host.

A command line, a console and an engine may use the file at once, so:

- the file is in WAL mode (readers never wait for the writer) with ``synchronous=NORMAL``;
- every write is one ``BEGIN IMMEDIATE`` transaction: it takes the write lock up front, so it can
  wait for it in SQLite's busy handler instead of failing when a read would upgrade to a write;
- every transaction is retried on "database is locked"/"busy" for up to ``timeout`` seconds (60 by
  default), so contention is a delay for the user, never an error;
- each thread has its own connection (SQLite connections are not meant to be shared between
  threads mid-transaction).

A job's files (input, output, log, failed rows) are kept by :mod:`.sqlite_files`: small ones as
rows of this database (written in the same transaction as the record they go with), larger ones
in ``<folder of the db file>/jobs/<id>/``. Writes to them are fenced by holding the write lock
while the job's ``claim`` is checked and the bytes are written, so no takeover can slip in
between. :meth:`SQLiteStore.save_job` makes a job's step (its appends, its record, the next job's
claim) one transaction.

The changes feed is a table (``changes``) that every write transaction about a job, a firing or an
engine adds a row to; its ``seq`` (the rowid: pruning never removes the newest row, so a new one is
always the largest yet, in commit order) is the feed's position. Readers poll ``PRAGMA
data_version`` (a few microseconds, no I/O) and read the table only when another connection
committed. The oldest rows are pruned as new ones come.

The schema is versioned with ``PRAGMA user_version``: :data:`MIGRATIONS` is the ordered list of
steps, and ``len(MIGRATIONS)`` is the version this code writes. A file from a newer kzconsole is
refused rather than touched.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar

from kzconsole.engine.models import JOB_FIELDS, EngineLease, JobRecord, JobStatus
from kzconsole.engine.store.base import Claim, Fenced, JobStep, StoreChange, StoreError, check_append
from kzconsole.engine.store.job_query import JobQuery
from kzconsole.engine.store.job_regex import regexp_match
from kzconsole.engine.store.query import Dialect, JobRows, Statement, document_options, select_statement
from kzconsole.engine.store.sql import (
    FLAG_FIELDS,
    JOB_COLUMNS,
    NewerSchema,
    SQLStore,
    check_fields,
    job_from_row,
    with_flags,
)
from kzconsole.engine.store.sqlite_files import MIGRATION as FILES_MIGRATION
from kzconsole.engine.store.sqlite_files import JobFiles

__all__ = ["SQLiteStore", "MIGRATIONS", "SCHEMA_VERSION"]

T = TypeVar("T")

log = logging.getLogger("kzconsole.engine.store.sqlite")

# ---------------------------------------------------------------------------------------- schema

# MIGRATIONS[i] takes a file from version i to version i + 1. Never edit a released step: files in
# the field were built by it. Add a new step instead (and a column per new JobRecord field).
# Each step is a tuple of single statements: executescript() would COMMIT our open transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema.
    (
        """
        CREATE TABLE jobs (
            id                TEXT PRIMARY KEY NOT NULL,
            account_id        TEXT NOT NULL,
            auth_account_id   TEXT NOT NULL,
            category          TEXT NOT NULL,
            action            TEXT NOT NULL,
            file_name         TEXT,
            status            TEXT NOT NULL,
            created           REAL NOT NULL,
            start_timestamp   REAL,
            end_timestamp     REAL,
            total_count       INTEGER,
            success_count     INTEGER NOT NULL DEFAULT 0,
            failure_count     INTEGER NOT NULL DEFAULT 0,
            node              TEXT,
            output_rows       INTEGER NOT NULL DEFAULT 0,
            wait_after_row_ms INTEGER NOT NULL DEFAULT 500,
            error             TEXT,
            input_path        TEXT,
            output_path       TEXT,
            queued_at         REAL,
            stop_requested    INTEGER NOT NULL DEFAULT 0,
            owner             TEXT,
            rows_done         INTEGER NOT NULL DEFAULT 0,
            output_offset     INTEGER NOT NULL DEFAULT 0,
            state             TEXT,
            resumable         INTEGER NOT NULL DEFAULT 1,
            finishing         INTEGER NOT NULL DEFAULT 0
        )
        """,
        # list_jobs newest first, unfiltered and per account / status, with LIMIT/OFFSET.
        "CREATE INDEX jobs_created ON jobs (created DESC, id DESC)",
        "CREATE INDEX jobs_account_created ON jobs (account_id, created DESC, id DESC)",
        "CREATE INDEX jobs_status_created ON jobs (status, created DESC, id DESC)",
        # claim_queued: the queue in order. Partial, so it stays as small as the queue and the
        # planner never picks it over jobs_status_created for a status filter.
        "CREATE INDEX jobs_queue ON jobs (queued_at, id) WHERE status = 'pending' AND queued_at IS NOT NULL",
        """
        CREATE TABLE engines (
            node    TEXT PRIMARY KEY NOT NULL,
            host    TEXT NOT NULL,
            pid     INTEGER NOT NULL,
            started REAL NOT NULL,
            expires REAL NOT NULL
        )
        """,
        # AUTOINCREMENT: a pruned firing's id is never handed out again.
        """
        CREATE TABLE firings (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            trigger   TEXT NOT NULL,
            key       TEXT NOT NULL,
            node      TEXT NOT NULL,
            started   REAL NOT NULL,
            ended     REAL,
            status    TEXT NOT NULL,
            reason    TEXT,
            functions TEXT NOT NULL DEFAULT '[]',
            databases TEXT NOT NULL DEFAULT '[]',
            UNIQUE (trigger, key)
        )
        """,
        "CREATE INDEX firings_started ON firings (started DESC, id DESC)",
        "CREATE INDEX firings_trigger_started ON firings (trigger, started DESC, id DESC)",
        "CREATE INDEX firings_trigger_status ON firings (trigger, status)",
    ),
    # 2: the fencing token, the changes feed; job files belong to the store (a relative
    # output_path only ever named the store's own out.csv: NULL now says so).
    (
        "ALTER TABLE jobs ADD COLUMN claim INTEGER NOT NULL DEFAULT 0",
        "UPDATE jobs SET output_path = NULL WHERE output_path IS NOT NULL AND substr(output_path, 1, 1) != '/'",
        """
        CREATE TABLE changes (
            seq    INTEGER PRIMARY KEY AUTOINCREMENT,
            kind   TEXT NOT NULL,
            job_id TEXT,
            origin TEXT NOT NULL
        )
        """,
    ),
    # 3: API keys and their tokens (owner: api; contract 8.2), both by hash only.
    (
        """
        CREATE TABLE api_keys (
            id         TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL,
            name       TEXT,
            superadmin INTEGER NOT NULL DEFAULT 0,
            created    REAL NOT NULL,
            key_hash   TEXT NOT NULL UNIQUE
        )
        """,
        """
        CREATE TABLE api_tokens (
            token_hash TEXT PRIMARY KEY NOT NULL,
            key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
            expires    REAL NOT NULL
        )
        """,
        "CREATE INDEX api_tokens_key ON api_tokens (key_id)",
        "CREATE INDEX api_tokens_expires ON api_tokens (expires)",
    ),
    # 4 (owner: query): job queries (store/query.py): indexes for the orders of the jobs list and
    # one holding the text that words and regular expressions search, so that filters and sorts
    # read an index, not every job. What an index costs each job counts as much (the engine writes a job three times
    # or more, and job throughput is measured): the text, task, account and file never change, so
    # their entries are written once. The status, counts and times of a running job change at every
    # checkpoint: their orders read jobs_settled, the finished jobs' fixed values (partial: a job
    # enters it once, when it finishes), and sort the pending and running ones apart.
    # The expressions are store/query.py's, character for character: SQLite uses an index on an
    # expression, or a partial one, only for the same expression (tests/store/test_sqlite_query.py).
    # Keys end with (created, id) in one direction, so one index serves both directions.
    (
        "DROP INDEX jobs_account_created",
        "CREATE INDEX jobs_account ON jobs (account_id, created, id)",
        (
            "CREATE INDEX jobs_text ON jobs (created, id, account_id, lower(category || '/' || action),"
            " lower(id || ' ' || category || '/' || action || ' ' || account_id || ' ' || coalesce(file_name, '')))"
        ),
        "CREATE INDEX jobs_task ON jobs (category, action, created, id)",
        "CREATE INDEX jobs_file ON jobs (coalesce(file_name, ''), created, id)",
        (
            "CREATE INDEX jobs_settled ON jobs (created, id, status, account_id, success_count, failure_count,"
            " total_count, start_timestamp, end_timestamp) WHERE status NOT IN ('pending', 'executing')"
        ),
    ),
    # 5: small job files in the database (see sqlite_files); the changes feed without
    # AUTOINCREMENT (its sqlite_sequence row was one more page written by every commit). Readers
    # holding a position of the old table get a `reset` (their position is past the new one).
    FILES_MIGRATION
    + (
        "DROP TABLE changes",
        """
        CREATE TABLE changes (
            seq    INTEGER PRIMARY KEY,
            kind   TEXT NOT NULL,
            job_id TEXT,
            origin TEXT NOT NULL
        )
        """,
    ),
    # 6: what `kzconsole nodes` shows about each engine, and the jobs taken over from dead ones.
    (
        "ALTER TABLE engines ADD COLUMN name TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE engines ADD COLUMN version TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE engines ADD COLUMN slots INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE engines ADD COLUMN running INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE engines ADD COLUMN tasks TEXT NOT NULL DEFAULT '[]'",
        """
        CREATE TABLE takeovers (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id      TEXT NOT NULL,
            from_engine TEXT,
            to_engine   TEXT NOT NULL,
            to_name     TEXT NOT NULL,
            at          REAL NOT NULL,
            rows_done   INTEGER NOT NULL,
            outcome     TEXT NOT NULL
        )
        """,
        "CREATE INDEX takeovers_at ON takeovers (at DESC, id DESC)",
        "CREATE INDEX takeovers_from ON takeovers (from_engine, at DESC)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


# The changes feed keeps about this many rows; a reader further behind gets a `reset`.
_CHANGES_KEPT = 50_000
_PRUNE_EVERY = 1024
# How often wait_changes looks at PRAGMA data_version.
_WAIT_POLL_S = 0.02
_ENGINE_COLUMNS = "node, host, pid, started, expires, name, version, slots, running, tasks"

# SQLite's own wait for a lock, per attempt. Shorter than the overall deadline so the retry loop
# also covers the cases the busy handler does not (WAL recovery, a busy COMMIT). Tests lower it.
_BUSY_TIMEOUT_S = 5.0

# WAL checkpoints. SQLite runs one inside the COMMIT of whichever connection finds the WAL at
# wal_autocheckpoint pages: it copies the pages into the database file and, with
# synchronous=NORMAL, fsyncs the WAL and the database: milliseconds (more when the disk is busy)
# against 30-80 us for the commit itself. In an engine that COMMIT is a job thread's last step,
# made holding the scheduler's claim lock (every other job thread waits for it), or the thread
# adding jobs. So a handle that writes often checkpoints in a thread of its own, every
# _CHECKPOINT_EVERY commits (about 600 pages for tiny jobs: 11 a creation, 8 an end; SQLite's
# default is every 1000 pages, so the WAL and the database are synced about as often as before).
# wal_autocheckpoint stays as a bound, raised so that the committing connections do not race
# that thread for the same work: if the thread falls behind (or the handle writes too little to
# start it), a commit at that many pages checkpoints, as SQLite always does.
_CHECKPOINT_EVERY = 64
_AUTOCHECKPOINT_PAGES = 4000

# SQLITE_BUSY and SQLITE_LOCKED; extended codes keep the primary code in the low byte.
_TRANSIENT_CODES = frozenset({5, 6})
_NOT_A_DATABASE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def _is_transient(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _TRANSIENT_CODES:
        return True
    message = str(exc).lower()
    return "database is locked" in message or "busy" in message or "table is locked" in message


def _is_not_a_database(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _NOT_A_DATABASE_CODES:
        return True
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


# update_job's statements by shape (see there); only shapes whose fields passed _check_fields.
_UPDATE_SQL: dict[tuple[tuple[str, ...], tuple[tuple[str, bool], ...]], str] = {}


@functools.lru_cache(maxsize=64)
def _feed_sql(count: int) -> str:
    """The statement adding ``count`` rows to the changes feed (kept by count: a step adds one to
    three, a claim of the scheduler up to max_running)."""
    return "INSERT INTO changes (kind, job_id, origin) VALUES " + ", ".join(["(?, ?, ?)"] * count)


def _claimed_jobs(rows: list[Any]) -> list[JobRecord]:
    """The records of claimed rows, in the queue's order (RETURNING gives no order guarantee)."""
    jobs = [job_from_row(row) for row in rows]
    jobs.sort(key=lambda job: (job.queued_at, job.id))
    return jobs


# -------------------------------------------------------------------------------- job queries

_IDS_PER_STATEMENT = 500  # job_documents: well under SQLite's bound on a statement's parameters
_STREAM_BATCH = 4096  # rows fetched at a time by iter_jobs: constant memory, few round trips
_FLIP_AFTER = 1000  # offsets past which a sorted order is read from its nearer end


class _SQLiteDialect(Dialect):
    """SQLite's side of store/query.py. The planner has no statistics here (no ANALYZE: they go
    stale, and plans would change under the operator), so it cannot tell a status that 60% of the
    jobs have from one that five have; the index to read is named instead, for a bounded worst case:
    one walk of one index, never the text built job by job."""

    # The index walked by each order but created's and id's (jobs_created, the primary key).
    SORT_INDEX: ClassVar[Mapping[str, str]] = {"task": "jobs_task", "account": "jobs_account", "file": "jobs_file"}

    def sorts(self, query: JobQuery) -> bool:
        """Whether the order is sorted rather than walked (so a deep page costs what it skips)."""
        return query.order.live_keys is not None or (query.has_text_filter and query.sort != "created")

    def source(self, query: JobQuery, *, branch: str) -> str:
        if branch in ("unsettled", "status") or query.id_prefix is not None:
            return "jobs"  # a handful of pending and running jobs; one status; a range of ids
        if query.has_text_filter:
            # Words, pieces and regular expressions read the text from jobs_text (with the
            # account): 5x faster than building it from each row.
            return "jobs INDEXED BY jobs_text"
        if branch == "settled":
            return "jobs INDEXED BY jobs_settled"  # narrow: what the counts and times are made of
        if branch == "all" and query.status is not None:
            index = self.SORT_INDEX.get(query.sort)
            if index is not None:
                # Walk the order, checking each job's status: looking the status up in its index
                # would sort every job of a common status (all the successes) before the first page.
                return f"jobs INDEXED BY {index}"
        return "jobs"


_SQLITE = _SQLiteDialect()
_DOCUMENT = ("document",)  # iter_job_documents' one column (no flags to convert)


def _fetch_all(sql: str, params: Sequence[Any], conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _plain_rows(rows: list[tuple[Any, ...]], extra: int, names: Sequence[str]) -> list[tuple[Any, ...]]:
    """iter_jobs rows as read: the ordering columns dropped, flags as bools."""
    if extra:
        rows = [row[:-extra] for row in rows]
    flags = [i for i, name in enumerate(names) if name in FLAG_FIELDS]
    if flags:
        rows = [with_flags(row, flags) for row in rows]
    return rows


def _task_filter(tasks: Collection[str] | None, served: Collection[str] | None) -> tuple[str, list[Any]] | None:
    """claim_queued's narrowing to an engine's tasks (and to the tasks no live engine serves);
    None when it can match nothing. (No empty IN list: with one, SQLite finds no plan for the
    forced queue index.)"""
    if tasks is None:
        return "", []
    task = "category || '/' || action"
    mine = sorted(set(tasks))
    known = None if served is None else sorted(set(served))
    clauses: list[str] = []
    params: list[Any] = []
    if mine:
        clauses.append(f"{task} IN ({', '.join('?' * len(mine))})")
        params.extend(mine)
    if known is not None:
        if not known:
            return "", []  # no engine serves anything: every queued job is an orphan
        clauses.append(f"{task} NOT IN ({', '.join('?' * len(known))})")
        params.extend(known)
    if not clauses:
        return None
    return f" AND ({' OR '.join(clauses)})", params


# ------------------------------------------------------------------------------------- store


def _new_origin() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class SQLiteStore(SQLStore):
    """A :class:`Store` in one SQLite file. ``timeout`` bounds how long one call waits for a lock
    held by another process before it gives up with :class:`StoreError`. ``clock`` is the store's
    clock (:meth:`now`): the host's, unless a test injects its own."""

    dialect: _SQLiteDialect = _SQLITE  # how store/query.py's SQL is written for this backend
    flags_as_integers = True
    # (api) WAL mode: a reader never waits for a writer (only, briefly, for a crashed process's
    # recovery). Every change is a row of the changes table written in the transaction it is
    # about, under SQLite's one write lock, so its seq follows commit order.
    local_reads = True
    ordered_changes = True

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self.display = str(self.path)
        self.files = JobFiles(self.path.parent, f"store {self.path}")
        self.timeout = timeout
        self.origin = _new_origin()
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        # (thread, connection): close() closes them all; a dead thread's one is closed on the next
        # connect, so short-lived runner threads do not leak file descriptors.
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._streams: set[sqlite3.Connection] = set()  # iter_jobs' own connections
        self._pid = os.getpid()
        self._closed = False
        self._commits = 0  # this handle's write transactions (approximate: not under a lock)
        self._checkpoint_due = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._prepare_file()
        try:
            self._open_schema()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # ------------------------------------------------------------------ plumbing

    def _prepare_file(self) -> None:
        parent = self.path.parent
        try:
            if not parent.exists():
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                # Create it ourselves so it is private from the first byte; SQLite gives the
                # -wal and -shm files the database file's mode.
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot create the store {self.path}: {exc.strerror or exc}") from exc
        if self.path.is_dir():
            raise StoreError(f"the store {self.path} is a directory, not a SQLite file")

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False only so
        # that close() may close other threads' connections; each is used by its own thread.
        conn = sqlite3.connect(
            self.path, timeout=min(_BUSY_TIMEOUT_S, self.timeout), isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")
            conn.create_function("kz_regexp", 2, regexp_match, deterministic=True)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        if self._pid != os.getpid():
            # Forked: the parent's connections must not be used (nor closed) here, and this is
            # another handle now (its writes are not the parent's).
            self._pid = os.getpid()
            self.origin = _new_origin()
            self._local = threading.local()
            self._conns = []
            self._streams = set()
            self._checkpoint_due = threading.Event()
            self._checkpointer = None  # the parent's thread is not in this process
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                alive.append((threading.current_thread(), conn))
                self._conns = alive
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (SQLite only, not part of the Store interface): for reading its
        settings or tracing the statements the store runs. Writes made through it bypass the
        changes feed."""
        return self._conn()

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        if isinstance(exc, sqlite3.Error) and _is_not_a_database(exc):
            return StoreError(f"{self.path} is not a usable kzconsole store (not a SQLite database, or corrupt): {exc}")
        return StoreError(f"store {self.path}: {doing} failed: {exc}")

    def _run(
        self, doing: str, fn: Callable[[sqlite3.Connection], T], *, write: bool = False, exactly_once: bool = False
    ) -> T:
        """Run ``fn`` in one transaction (``BEGIN IMMEDIATE`` if ``write``, else autocommit reads),
        retrying the whole of it while the database is locked by someone else. (``exactly_once``
        asks nothing more here: the answer to a local COMMIT is never lost.)"""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                conn = self._conn()
                if not write:
                    return fn(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass  # the original error is the one worth reporting
                    raise
                self._commits += 1
                if self._commits % _CHECKPOINT_EVERY == 0:
                    self._ask_checkpoint()
                return result
            except sqlite3.Error as exc:
                if not _is_transient(exc):
                    raise self._error(exc, doing) from exc
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"store {self.path}: {doing} failed: the database stayed locked by another"
                        f" process for {self.timeout:g} s ({exc})"
                    ) from exc
            # Jitter so that two waiting processes do not retry in lockstep.
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.2)

    def _ask_checkpoint(self) -> None:
        """Wake the checkpointer (started with the first checkpoint due)."""
        if self._checkpointer is None:
            with self._lock:
                if self._closed or self._checkpointer is not None:
                    return
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_loop, name="kz-sqlite-checkpoint", daemon=True
                )
                self._checkpointer.start()
        self._checkpoint_due.set()

    def _checkpoint_loop(self) -> None:
        due = self._checkpoint_due
        while True:
            due.wait()
            due.clear()
            if self._closed:
                return
            try:
                # PASSIVE: copies what no reader still needs, waits for no lock; writers go on.
                # Not retried: a checkpoint that could not run is simply the next one's work.
                self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except (sqlite3.Error, StoreError):
                log.debug("WAL checkpoint skipped", exc_info=True)

    def _open_schema(self) -> None:
        def read_version(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

        # Read first, write nothing until we know the file is ours to write.
        version = self._run("reading the schema version", read_version)
        self._check_schema(version, SCHEMA_VERSION)

        def set_wal(conn: sqlite3.Connection) -> None:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch the store to WAL mode ({mode})")

        self._run("switching to WAL mode", set_wal)

        if version == SCHEMA_VERSION:
            return

        def migrate(conn: sqlite3.Connection) -> None:
            # Another process may have migrated (or upgraded) since we looked.
            current = read_version(conn)
            if current > SCHEMA_VERSION:
                raise NewerSchema(current)
            for step in MIGRATIONS[current:]:
                for statement in step:
                    conn.execute(statement)
            if current != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        try:
            self._run("migrating the schema", migrate, write=True)
        except NewerSchema as exc:
            self._check_schema(exc.version, SCHEMA_VERSION)

    # ------------------------------------------------------------------ jobs

    def now(self) -> float:
        return self._clock()

    def _record(self, handle: sqlite3.Connection, kind: str, job_id: str | None = None) -> None:
        self._change(handle, kind, job_id)

    def _now_sql(self) -> tuple[str, list[Any]]:
        return "?", [self._clock()]

    def _is_duplicate(self, exc: BaseException | None) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def _change(self, conn: sqlite3.Connection, kind: str, job_id: str | None) -> None:
        """Record a change in the feed, in the caller's write transaction."""
        self._changes(conn, [(kind, job_id)])

    def _changes(self, conn: sqlite3.Connection, feed: Sequence[tuple[str, str | None]]) -> None:
        """Record changes in the feed (in this order), in the caller's write transaction: one
        statement however many."""
        if not feed:
            return
        origin = self.origin
        count = len(feed)
        seq = conn.execute(
            _feed_sql(count), [value for kind, job_id in feed for value in (kind, job_id, origin)]
        ).lastrowid
        # The rows took seq - count + 1 .. seq: prune when they passed a multiple of _PRUNE_EVERY.
        if seq is not None and seq // _PRUNE_EVERY != (seq - count) // _PRUNE_EVERY:
            conn.execute("DELETE FROM changes WHERE seq <= ?", (seq - _CHANGES_KEPT,))

    def create_job(self, job: JobRecord, input: BinaryIO | None = None) -> None:
        if not isinstance(job, JobRecord):
            raise TypeError(f"create_job expects a JobRecord, not {type(job).__name__}")
        values = self.job_values(job)
        sql = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * len(JOB_FIELDS))})"
        staged = None
        if input is not None:
            # The (possibly long) read happens before the transaction: the write lock is held
            # only for the insert and what makes the input the job's.
            staged = self.files.stage(job.id, "input", input)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(sql, values)
            self._change(conn, "job", job.id)
            if staged is not None:
                self.files.install(conn, job.id, "input", staged)

        try:
            self._run(f"creating job {job.id!r}", insert, write=True)
        except BaseException as exc:
            if staged is not None:
                staged.discard()
            cause = exc.__cause__ if isinstance(exc, StoreError) else None
            if isinstance(cause, sqlite3.IntegrityError) and "jobs.id" in str(cause):
                raise StoreError(f"job {job.id!r} already exists in {self.path}") from cause
            if isinstance(exc, OSError):
                raise StoreError(f"store {self.path}: storing the input of job {job.id!r} failed: {exc}") from exc
            raise

    def list_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> list[JobRecord]:
        query = JobQuery.of(query, **fields)
        flipped = None
        if query.offset > _FLIP_AFTER and self.dialect.sorts(query):
            # A deep page of a sorted order costs what it skips: read it from the nearer end.
            flipped = query.from_the_end(self.count_jobs(query))
        statement = select_statement(flipped or query, JOB_FIELDS, self.dialect, now=self.now())
        if statement is None:
            return []
        sql, params, extra = statement.sql, statement.params, statement.extra

        def select(conn: sqlite3.Connection) -> list[JobRecord]:
            rows = conn.execute(sql, params).fetchall()
            if extra:
                rows = [row[:-extra] for row in rows]
            if flipped is not None:
                rows.reverse()
            return [job_from_row(row) for row in rows]

        return self._run("listing jobs", select)

    def _iter_jobs(self, query: JobQuery, names: tuple[str, ...]) -> JobRows:
        statement = select_statement(query, names, self.dialect, now=self.now())
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        if query.limit is not None and query.limit <= _STREAM_BATCH:
            return JobRows(self._page(statement, names))
        return JobRows(self._stream(statement, names))

    def iter_job_documents(self, query: JobQuery | None = None, /, **fields: Any) -> JobRows:
        epoch, nulls, names = document_options(fields)
        query = JobQuery.of(query, **fields)
        document = self.dialect.public_document(epoch, nulls)
        statement = select_statement(query, (document, *names), self.dialect, now=self.now(), expressions=True)
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        names = (*_DOCUMENT, *names)
        if query.limit is not None and query.limit <= _STREAM_BATCH:
            return JobRows(self._page(statement, names))
        return JobRows(self._stream(statement, names))

    def _job_documents(
        self, ids: list[str], epoch: int, nulls: bool, names: tuple[str, ...]
    ) -> dict[str, tuple[Any, ...]]:
        # The id comes back last, whatever the caller asked for, to key the rows by.
        selected = ", ".join((self.dialect.public_document(epoch, nulls), *names, "id"))
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            statement = f"SELECT {selected} FROM jobs WHERE id IN ({', '.join('?' * len(chunk))})"
            rows = self._run("reading jobs", functools.partial(_fetch_all, statement, chunk))
            for row in _plain_rows(rows, 0, (*_DOCUMENT, *names, "id")):
                found[row[-1]] = row[:-1]
        return {job_id: found[job_id] for job_id in ids if job_id in found}

    # (api) A bounded page, such as one of the REST API's listing pages, is read whole at its first
    # row, on the thread's own connection: holding that connection is then no concern (the rows
    # are all read at once, in constant memory), and its page cache is warm, where a connection of
    # the page's own reads the index and the rows cold again (three times the query's time at
    # 100,000 jobs: bench/bench_api.py).
    def _page(self, statement: Statement | None, names: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
        if statement is None:
            return
        sql, params = statement.sql, statement.params
        rows = self._run("listing jobs", lambda conn: conn.execute(sql, params).fetchall())
        yield from _plain_rows(rows, statement.extra, names)

    def _stream(self, statement: Statement | None, names: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
        """The rows of one statement on a connection of their own: the consumer may be slow, or
        move between threads (a web server's), and must not hold the thread's connection."""
        if statement is None:
            return
        extra = statement.extra
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise self._error(exc, "listing jobs") from exc
        with self._lock:
            self._streams.add(conn)
        try:
            cursor = conn.execute(statement.sql, statement.params)
            while True:
                rows = cursor.fetchmany(_STREAM_BATCH)
                if not rows:
                    return
                yield from _plain_rows(rows, extra, names)
        except sqlite3.Error as exc:
            if self._closed:
                raise StoreError(f"the store {self.path} was closed while listing jobs") from exc
            raise self._error(exc, "listing jobs") from exc
        finally:
            with self._lock:
                self._streams.discard(conn)
            try:
                conn.close()
            except sqlite3.Error:
                pass  # closed by close() already

    def _update_statement(
        self, job_id: str, changes: Mapping[str, Any], expect: Mapping[str, Any] | None
    ) -> tuple[str, list[Any]]:
        # The statement depends only on which fields change and which are expected (and which
        # of those are expected NULL): the engine uses a handful of shapes, a few times a job.
        shape = (tuple(changes), tuple((field, value is None) for field, value in (expect or {}).items()))
        sql = _UPDATE_SQL.get(shape)
        where, where_params = self._where(job_id, expect)
        if sql is None:
            check_fields(changes, "update_job changes", allow_id=False)
            check_fields(expect or {}, "update_job expect", allow_id=True)
            if changes:
                assignments = ", ".join(f"{field} = ?" for field in changes)
                sql = f"UPDATE jobs SET {assignments} WHERE {where} RETURNING {JOB_COLUMNS}"
            else:
                sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where}"
            if len(_UPDATE_SQL) < 512:
                _UPDATE_SQL[shape] = sql
        if changes:
            return sql, [self._encode(field, value) for field, value in changes.items()] + where_params
        return sql, where_params

    def _update(
        self, conn: sqlite3.Connection, job_id: str, changes: Mapping[str, Any], statement: tuple[str, list[Any]]
    ) -> JobRecord | None:
        row = conn.execute(*statement).fetchone()
        if row is None:
            return None
        if changes:
            self._change(conn, "job", job_id)
        return job_from_row(row)

    def update_job(
        self, job_id: str, changes: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> JobRecord | None:
        statement = self._update_statement(job_id, changes, expect)

        def update(conn: sqlite3.Connection) -> JobRecord | None:
            return self._update(conn, job_id, changes, statement)

        if not changes:
            return self._run(f"reading job {job_id!r}", update)
        return self._run(f"updating job {job_id!r}", update, write=True)

    def save_job(self, job_id: str, step: JobStep) -> tuple[JobRecord | None, list[JobRecord]]:
        # One write transaction for the whole step: the appends (small files are rows of this
        # same database), the record, and the next job's claim. Three commits fewer per job.
        # And few statements in it: the write lock is held from BEGIN to COMMIT, and each
        # statement gives up the GIL and must take it back from the engine's other threads, so
        # the statements of a step were most of the time a tiny job holds the lock (and every
        # other writer of the store waits). So the files are read and written in one statement
        # each and the feed's rows are one insert (8 statements for a tiny job's end, not 13).
        changes, appends = step.changes, step.appends
        statement = self._update_statement(job_id, changes, step.expect)
        for kind, (offset, _) in appends.items():
            check_append(kind, offset, "save_job")
            self.files.check(job_id, kind)
        absent = {kind: self.files.absent(job_id, kind) for kind in appends}
        claiming = self._claim_statement(step.claim_next) if step.claim_next else None
        # When the compare-and-set expects the step's own claim, a record that matches has passed
        # the fence: the fence's read is needed only when it does not match.
        fenced_by_update = bool(changes) and step.claim is not None and step.expect.get("claim") == step.claim
        on_disk: set[str] = set()  # appends a retried transaction must not make twice

        def save(conn: sqlite3.Connection) -> tuple[Any, list[Any]]:
            feed: list[tuple[str, str]] = []
            row = conn.execute(*statement).fetchone() if fenced_by_update else None
            if appends:
                if row is None:
                    self._fence(conn, job_id, next(iter(appends)), step.claim)
                log = appends.get("log")
                if log is not None and log[1]:
                    feed.append(("log", job_id))
                self.files.append_many(conn, job_id, appends, step.sync, on_disk, absent)
            if not fenced_by_update:
                row = conn.execute(*statement).fetchone()
            if row is not None and changes:
                feed.append(("job", job_id))
            claimed = self._claim_rows(conn, *claiming) if claiming is not None else []
            feed.extend(("job", claimed_row[0]) for claimed_row in claimed)
            self._changes(conn, feed)
            return row, claimed

        row, claimed = self._run(f"saving job {job_id!r}", save, write=True)
        # The records are made after the commit: no Python work in the transaction it can spare.
        return (job_from_row(row) if row is not None else None), _claimed_jobs(claimed)

    def delete_job(self, job_id: str, *, expect: Mapping[str, Any] | None = None) -> JobRecord | None:
        check_fields(expect or {}, "delete_job expect", allow_id=True)
        where, params = self._where(job_id, expect)
        sql = f"DELETE FROM jobs WHERE {where} RETURNING {JOB_COLUMNS}"

        def delete(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(sql, params).fetchone()
            if row is None:
                return None
            self.files.delete_rows(conn, job_id)
            self._change(conn, "deleted", job_id)
            return job_from_row(row)

        removed = self._run(f"deleting job {job_id!r}", delete, write=True)
        if removed is not None:
            # After the commit: a record never outlives its files' removal, only the other way
            # round (a folder left by a crash here holds nothing anyone can reach).
            self.files.remove_folder(job_id)
        return removed

    def _claim_statement(self, claim: Claim) -> tuple[str, int, float, str, tuple[str, list[Any]] | None]:
        now = self.now() if claim.now is None else claim.now
        return claim.node, claim.limit, now, claim.node_name, _task_filter(claim.tasks, claim.served)

    def _claim_rows(
        self,
        conn: sqlite3.Connection,
        node: str,
        limit: int,
        now: float,
        name: str,
        narrowing: tuple[str, list[Any]] | None,
    ) -> list[Any]:
        """claim_queued inside a write transaction (the rows of the jobs claimed, in no order): no
        other writer runs in between, so no job is claimed twice. ``narrowing``: _task_filter's
        (None: nothing can match)."""
        if limit <= 0 or narrowing is None:
            return []
        narrow, narrow_params = narrowing
        ids = [
            row[0]
            for row in conn.execute(
                # Without statistics the planner prefers jobs_status_created and sorts every
                # pending job; the queue index is the right one. The literal 'pending' (not a
                # parameter) is what lets SQLite use that partial index at all.
                "SELECT id FROM jobs INDEXED BY jobs_queue"
                f" WHERE status = 'pending' AND queued_at IS NOT NULL{narrow}"
                " ORDER BY queued_at, id LIMIT ?",
                (*narrow_params, limit),
            )
        ]
        if not ids:
            return []
        # Two statements, not an update of `id IN (SELECT ...)`: that one costs twice as much.
        return conn.execute(
            f"UPDATE jobs SET status = ?, owner = ?, node = ?, start_timestamp = ?,"
            f" claim = claim + 1 WHERE id IN ({', '.join('?' * len(ids))}) RETURNING {JOB_COLUMNS}",
            (JobStatus.EXECUTING.value, node, name, now, *ids),
        ).fetchall()

    def _queue_empty(self) -> bool:
        def peek(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    "SELECT 1 FROM jobs INDEXED BY jobs_queue"
                    " WHERE status = 'pending' AND queued_at IS NOT NULL LIMIT 1"
                ).fetchone()
                is None
            )

        return self._run("looking at the queue", peek)

    def _claim_queued(self, claim: Claim) -> list[JobRecord]:
        # A read first (WAL readers take no lock): an empty queue costs no write transaction.
        if self._queue_empty():
            return []
        claiming = self._claim_statement(claim)

        def take(conn: sqlite3.Connection) -> list[Any]:
            rows = self._claim_rows(conn, *claiming)
            self._changes(conn, [("job", row[0]) for row in rows])
            return rows

        return _claimed_jobs(self._run("claiming queued jobs", take, write=True))

    def _fence(self, conn: sqlite3.Connection, job_id: str, kind: str, claim: int | None) -> None:
        row = conn.execute("SELECT claim FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if claim is not None and (row is None or row[0] != claim):
            raise Fenced(f"job {job_id!r} is no longer claim {claim} (taken over or removed)")
        if row is None:
            raise StoreError(f"store {self.path}: no job {job_id!r} to append a {kind} to")

    def _append(
        self, conn: sqlite3.Connection, job_id: str, kind: str, data: bytes, offset: int | None, sync: bool
    ) -> int:
        if kind == "log" and data:
            self._change(conn, "log", job_id)
        return self.files.append(conn, job_id, kind, data, offset, sync)

    def _append_file(
        self, job_id: str, kind: str, data: bytes, offset: int | None, claim: int | None, sync: bool
    ) -> int:
        self.files.check(job_id, kind)  # a bad kind or id fails before the transaction
        written: list[int] = []  # set once the bytes are in: a retried transaction must not append twice

        def append(conn: sqlite3.Connection) -> int:
            self._fence(conn, job_id, kind, claim)
            if not written:
                written.append(self._append(conn, job_id, kind, data, offset, sync))
            return written[0]

        # A write transaction holds the write lock: a claim cannot change between the check and
        # the write.
        return self._run(f"appending to the {kind} of job {job_id!r}", append, write=True)

    def open_file(self, job_id: str, kind: str) -> BinaryIO | None:
        return self._run(f"reading the {kind} of job {job_id!r}", lambda conn: self.files.open(conn, job_id, kind))

    def file_size(self, job_id: str, kind: str) -> int | None:
        return self._run(f"reading the {kind} of job {job_id!r}", lambda conn: self.files.size(conn, job_id, kind))

    # ---------------------------------------------------------- changes feed

    def _position(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def changes(self, after: int | None) -> tuple[int, list[StoreChange]]:
        def read(conn: sqlite3.Connection) -> tuple[int, list[StoreChange]]:
            if after is None:
                return self._position(conn), []
            rows = conn.execute(
                "SELECT seq, kind, job_id, origin FROM changes WHERE seq > ? ORDER BY seq LIMIT 10000", (after,)
            ).fetchall()
            oldest = conn.execute("SELECT min(seq) FROM changes").fetchone()[0]
            position = self._position(conn)
            if (oldest is not None and after < oldest - 1) or after > position:
                # Pruned past this reader, or a position from another store file.
                return position, [StoreChange("reset", None, "")]
            if not rows:
                return after, []
            return int(rows[-1][0]), [StoreChange(kind, job_id, origin) for _, kind, job_id, origin in rows]

        return self._run("reading the changes feed", read)

    def _data_version(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        return self._run("reading the data version", read)

    def wait_changes(self, after: int, timeout: float) -> tuple[int, list[StoreChange]]:
        deadline = time.monotonic() + max(0.0, timeout)
        # data_version changes when another connection commits (this handle's other threads
        # included): the table is read again only then.
        version = self._data_version()
        position, found = self.changes(after)
        while not found:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return after, []
            time.sleep(min(_WAIT_POLL_S, remaining))
            current = self._data_version()
            if current != version:
                version = current
                position, found = self.changes(after)
        return position, found

    # ---------------------------------------------------------------- engines

    def heartbeat(self, lease: EngineLease) -> None:
        values = (
            lease.host,
            lease.pid,
            lease.started,
            lease.expires,
            lease.name,
            lease.version,
            lease.slots,
            lease.running,
            json.dumps(list(lease.tasks)),
        )

        def upsert(conn: sqlite3.Connection) -> None:
            renewed = conn.execute(
                "UPDATE engines SET host = ?, pid = ?, started = ?, expires = ?, name = ?,"
                " version = ?, slots = ?, running = ?, tasks = ? WHERE node = ?",
                (*values, lease.node),
            ).rowcount
            if not renewed:
                conn.execute(
                    f"INSERT INTO engines ({_ENGINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (lease.node, *values),
                )
                self._change(conn, "engine", None)

        self._run(f"renewing the lease of engine {lease.node!r}", upsert, write=True)

    def engines(self) -> list[EngineLease]:
        def select(conn: sqlite3.Connection) -> list[EngineLease]:
            rows = conn.execute(f"SELECT {_ENGINE_COLUMNS} FROM engines ORDER BY started, node").fetchall()
            return [
                EngineLease(node, host, pid, started, expires, name, version, slots, running, tuple(json.loads(tasks)))
                for node, host, pid, started, expires, name, version, slots, running, tasks in rows
            ]

        return self._run("listing engines", select)

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._lock:
            self._closed = True
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None and self._pid == os.getpid():
            # Its connection is closed below: let a checkpoint in progress end first.
            self._checkpoint_due.set()
            if checkpointer is not threading.current_thread():
                checkpointer.join(_BUSY_TIMEOUT_S)
        with self._lock:
            conns, self._conns = self._conns, []
            streams, self._streams = list(self._streams), set()
        if self._pid != os.getpid():
            return  # forked copy: the connections belong to the parent
        for conn in [*(c for _thread, c in conns), *streams]:
            try:
                conn.close()
            except sqlite3.Error:
                pass  # closing is best effort; nothing is pending (every call commits)
