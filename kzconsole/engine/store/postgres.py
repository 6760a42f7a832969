"""The cluster store: one PostgreSQL database shared by every node (contract section 9).

``store.url = "postgresql://USER@HOST:PORT/DATABASE"`` (any libpq URL: ``?host=/run/postgresql`` for
a Unix socket, ``?sslmode=require``, a password in the URL or in ``~/.pgpass``). Same interface and
semantics as the SQLite store (``tests/store/contract.py`` runs on both); what differs:

- **Connections**: a bounded pool per store handle (:class:`_Pool`). Every method borrows one
  connection for one transaction. A connection found dropped (a server restart, a failover, an
  idle timeout) is discarded with every other idle one, and new ones are made by the calling
  thread itself, so a call waits for the server exactly as long as the server is away.
  (psycopg-pool was tried first: it reconnects in the background with a backoff that doubles
  without bound, and a caller that started waiting during an outage was not served when the
  server came back.)
- **Transient failures are retried inside the store** for up to ``timeout`` seconds: serialization
  failures and deadlocks, a dropped connection, a server that is restarting or refusing new
  connections, an exhausted pool. Only then does the caller get :class:`StoreError`.
- **Exactly once across a dropped connection**: when the connection drops while a COMMIT is in
  flight, the store cannot know from the error whether the write happened. Each write that would
  not be safe to run twice records its transaction id (``pg_current_xact_id()``) before committing;
  after such a failure it asks the server (``pg_xact_status``) and returns the first attempt's
  result if that transaction committed, instead of claiming jobs twice or reporting a lost race.
- **Claims** take the queue's head with ``FOR UPDATE SKIP LOCKED``: engines claiming at once never
  wait for each other and never get the same job.
- **Time**: :meth:`now` is the server's ``clock_timestamp()``, the one clock every node agrees on
  (leases are judged on it, contract 9).
- **Job files** (input, output, log, failed rows) are rows of ``file_chunks`` (``bytea``, compressed
  with lz4 where the server has it), written and read in chunks, never whole in memory.
- **A running job's steps** (:meth:`PostgresStore.save_job`: its appends, its record, the next
  claim) go as one pipeline, one implicit transaction: one round trip. A step not asked to be
  durable (a checkpoint) commits without waiting for its flush to disk; the next durable one (a
  job's end, or after a bounded number of them) flushes them all, in order. What a crash of the
  server loses of them, the handle that wrote them writes again before anything else it does
  there (:class:`_Journal`), so a running engine never sees a step it made disappear; an engine
  that dies with the server resumes from its last durable step, as from any checkpoint.
  A checkpoint that asks to overlap (``JobStep.overlap``: a fast run's) is sent without waiting
  for the answer, which the run's next write reads (:meth:`PostgresStore._send`, ``_settle``).
- **Changes feed**: every write records a row in ``changes`` with its transaction id; a reader gets
  the changes of every transaction older than the oldest one still running (``pg_snapshot_xmin``),
  so a change is never skipped because a transaction that started earlier committed later. Writes
  that should wake an engine at once (a job queued, a stop asked) also ``NOTIFY`` the channel
  ``kzconsole_changes``; :meth:`wait_changes` ``LISTEN``\\s on one connection per store handle and
  re-checks a few times a second in any case.

The schema is versioned in ``kz_schema``: :data:`MIGRATIONS` is the ordered list of steps, applied
under an advisory lock so nodes starting together do not race; a database from a newer kzconsole is
refused, never touched.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import logging
import os
import random
import select
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

import psycopg
import psycopg.adapt

from kzconsole.engine.models import JOB_FIELDS, EngineLease, JobRecord
from kzconsole.engine.store.base import (
    Claim,
    Fenced,
    JobStep,
    StoreChange,
    StoreError,
    check_append,
    check_kind,
    redact_url,
)
from kzconsole.engine.store.query import Dialect, JobQuery, JobRows, Statement, rows_from_records, select_statement
from kzconsole.engine.store.sql import JOB_COLUMNS, NewerSchema, SQLStore, check_fields, job_from_row

__all__ = ["PostgresStore", "MIGRATIONS", "SCHEMA_VERSION", "redact_url"]

log = logging.getLogger("kzconsole.engine.store.postgres")


def _pipeline_exit_noise(record: logging.LogRecord) -> bool:
    """False for psycopg's "error ignored terminating <psycopg.Pipeline [BAD]>: the connection is
    lost": when a connection drops inside a pipeline, leaving the pipeline fails too, and psycopg
    logs that second failure as a warning while the first one propagates. The store handles the
    first (retried, or reported as a store error), so the warning only alarms whoever reads the
    engine's log after a server restart."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not (record.msg == "error ignored terminating %r: %s" and args and type(args[0]).__name__ == "Pipeline")


logging.getLogger("psycopg").addFilter(_pipeline_exit_noise)

T = TypeVar("T")

# ---------------------------------------------------------------------------------------- schema

# MIGRATIONS[i] takes a database from version i to version i + 1. Never edit a released step:
# databases in the field were built by it. Add a new step instead.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema.
    (
        """
        CREATE TABLE jobs (
            id                text PRIMARY KEY,
            account_id        text NOT NULL,
            auth_account_id   text NOT NULL,
            category          text NOT NULL,
            action            text NOT NULL,
            file_name         text,
            status            text NOT NULL,
            created           double precision NOT NULL,
            start_timestamp   double precision,
            end_timestamp     double precision,
            total_count       bigint,
            success_count     bigint NOT NULL DEFAULT 0,
            failure_count     bigint NOT NULL DEFAULT 0,
            node              text,
            output_rows       bigint NOT NULL DEFAULT 0,
            wait_after_row_ms integer NOT NULL DEFAULT 500,
            error             text,
            input_path        text,
            output_path       text,
            queued_at         double precision,
            stop_requested    boolean NOT NULL DEFAULT false,
            owner             text,
            rows_done         bigint NOT NULL DEFAULT 0,
            output_offset     bigint NOT NULL DEFAULT 0,
            state             text,
            resumable         boolean NOT NULL DEFAULT true,
            finishing         boolean NOT NULL DEFAULT false,
            claim             bigint NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX jobs_created ON jobs (created DESC, id DESC)",
        "CREATE INDEX jobs_account_created ON jobs (account_id, created DESC, id DESC)",
        "CREATE INDEX jobs_status_created ON jobs (status, created DESC, id DESC)",
        # The queue: partial, so it stays as small as the queue itself.
        "CREATE INDEX jobs_queue ON jobs (queued_at, id) WHERE status = 'pending' AND queued_at IS NOT NULL",
        "CREATE INDEX jobs_executing ON jobs (owner) WHERE status = 'executing'",
        """
        CREATE TABLE engines (
            node      text PRIMARY KEY,
            name      text,
            host      text NOT NULL,
            pid       integer NOT NULL,
            version   text,
            started   double precision NOT NULL,
            expires   double precision NOT NULL,
            heartbeat double precision,
            slots     integer,
            running   integer,
            tasks     text[]
        )
        """,
        """
        CREATE TABLE takeovers (
            id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id    text NOT NULL,
            from_node text,
            to_node   text NOT NULL,
            at        double precision NOT NULL,
            rows_done bigint NOT NULL DEFAULT 0,
            outcome   text NOT NULL DEFAULT 'resumed'
        )
        """,
        "CREATE INDEX takeovers_from ON takeovers (from_node, at DESC)",
        """
        CREATE TABLE firings (
            id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            trigger   text NOT NULL,
            key       text NOT NULL,
            node      text NOT NULL,
            started   double precision NOT NULL,
            ended     double precision,
            status    text NOT NULL,
            reason    text,
            functions text NOT NULL DEFAULT '[]',
            databases text NOT NULL DEFAULT '[]',
            UNIQUE (trigger, key)
        )
        """,
        "CREATE INDEX firings_started ON firings (started DESC, id DESC)",
        "CREATE INDEX firings_trigger_started ON firings (trigger, started DESC, id DESC)",
        "CREATE INDEX firings_running ON firings (trigger) WHERE status = 'running'",
        """
        CREATE TABLE job_files (
            job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            kind   text NOT NULL,
            size   bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (job_id, kind)
        )
        """,
        # A chunk is the bytes [start, start + length(data)) of a file.
        """
        CREATE TABLE file_chunks (
            job_id text NOT NULL,
            kind   text NOT NULL,
            start  bigint NOT NULL,
            data   bytea NOT NULL,
            PRIMARY KEY (job_id, kind, start),
            FOREIGN KEY (job_id, kind) REFERENCES job_files (job_id, kind) ON DELETE CASCADE
        )
        """,
        # Out of line and uncompressed: substring() of a chunk reads only the bytes it needs.
        "ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
        """
        CREATE TABLE changes (
            position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tx       bigint NOT NULL,
            kind     text NOT NULL,
            job_id   text,
            origin   text NOT NULL,
            at       double precision NOT NULL,
            request  text
        )
        """,
        "CREATE INDEX changes_tx ON changes (tx, position)",
        # Changes are pruned by age; a reader whose position is at or below the newest pruned
        # transaction missed some and is told to re-read everything (a `reset` change).
        "CREATE TABLE feed (pruned_through bigint NOT NULL)",
        "INSERT INTO feed (pruned_through) VALUES (0)",
        "CREATE INDEX changes_at ON changes (at)",
        """
        CREATE TABLE api_keys (
            id         text PRIMARY KEY,
            key_hash   text NOT NULL UNIQUE,
            account_id text NOT NULL,
            name       text,
            superadmin boolean NOT NULL DEFAULT false,
            created    double precision NOT NULL
        )
        """,
    ),
    # 2: the tokens of the REST API's keys (owner: api; contract 8.2), by hash only.
    (
        """
        CREATE TABLE api_tokens (
            token_hash text PRIMARY KEY,
            key_id     text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
            expires    double precision NOT NULL
        )
        """,
        "CREATE INDEX api_tokens_key ON api_tokens (key_id)",
        "CREATE INDEX api_tokens_expires ON api_tokens (expires)",
    ),
    # 3: what `kzconsole nodes` shows about each engine is never NULL; takeovers name the engines
    # by id and the taker's node name (nothing wrote takeovers before this step).
    (
        "UPDATE engines SET name = coalesce(name, ''), version = coalesce(version, ''),"
        " slots = coalesce(slots, 0), running = coalesce(running, 0), tasks = coalesce(tasks, '{}')",
        "ALTER TABLE engines ALTER COLUMN name SET DEFAULT '', ALTER COLUMN name SET NOT NULL,"
        " ALTER COLUMN version SET DEFAULT '', ALTER COLUMN version SET NOT NULL,"
        " ALTER COLUMN slots SET DEFAULT 0, ALTER COLUMN slots SET NOT NULL,"
        " ALTER COLUMN running SET DEFAULT 0, ALTER COLUMN running SET NOT NULL,"
        " ALTER COLUMN tasks SET DEFAULT '{}', ALTER COLUMN tasks SET NOT NULL",
        "DROP TABLE takeovers",
        """
        CREATE TABLE takeovers (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      text NOT NULL,
            from_engine text,
            to_engine   text NOT NULL,
            to_name     text NOT NULL,
            at          double precision NOT NULL,
            rows_done   bigint NOT NULL,
            outcome     text NOT NULL
        )
        """,
        "CREATE INDEX takeovers_at ON takeovers (at DESC, id DESC)",
        "CREATE INDEX takeovers_from ON takeovers (from_engine, at DESC)",
    ),
    # 4: appends in one round trip: fence, cut back, write, size and change record on the server.
    (
        r"""
        CREATE OR REPLACE FUNCTION kz_append(p_job text, p_kind text, p_data bytea, p_offset bigint,
                                             p_claim bigint, p_origin text, p_request text)
        RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            v_claim bigint;
            v_size bigint;
            v_at integer := 0;
            v_len integer := length(p_data);
        BEGIN
            -- FOR SHARE: a takeover (an UPDATE of the claim) waits for this write, and vice versa.
            SELECT claim INTO v_claim FROM jobs WHERE id = p_job FOR SHARE;
            IF NOT FOUND THEN
                IF p_claim IS NOT NULL THEN
                    RAISE EXCEPTION 'job % was removed', p_job USING ERRCODE = 'KZF01';
                END IF;
                RAISE EXCEPTION 'no job %', p_job USING ERRCODE = 'KZN01';
            END IF;
            IF p_claim IS NOT NULL AND v_claim <> p_claim THEN
                RAISE EXCEPTION 'job % was taken over by another engine (claim %, not %)',
                    p_job, v_claim, p_claim USING ERRCODE = 'KZF01';
            END IF;
            INSERT INTO job_files (job_id, kind, size) VALUES (p_job, p_kind, 0)
                ON CONFLICT (job_id, kind) DO UPDATE SET size = job_files.size
                RETURNING size INTO v_size;
            IF p_offset IS NOT NULL AND p_offset > v_size THEN
                RAISE EXCEPTION 'cannot append to the % of job % at %: it holds only % bytes',
                    p_kind, p_job, p_offset, v_size USING ERRCODE = 'KZS01';
            END IF;
            IF p_offset IS NOT NULL AND p_offset < v_size THEN
                DELETE FROM file_chunks WHERE job_id = p_job AND kind = p_kind AND start >= p_offset;
                UPDATE file_chunks SET data = substring(data FROM 1 FOR (p_offset - start)::int)
                    WHERE job_id = p_job AND kind = p_kind AND start = (SELECT max(start)
                    FROM file_chunks WHERE job_id = p_job AND kind = p_kind)
                    AND start + length(data) > p_offset;
                v_size := p_offset;
            END IF;
            IF v_len > 0 AND v_len < 4096 THEN
                -- A small append (a log line) grows a small last chunk.
                UPDATE file_chunks SET data = data || p_data
                    WHERE job_id = p_job AND kind = p_kind AND start = (SELECT max(start)
                    FROM file_chunks WHERE job_id = p_job AND kind = p_kind)
                    AND length(data) < 65536 AND start + length(data) = v_size;
                IF FOUND THEN
                    v_at := v_len;
                END IF;
            END IF;
            WHILE v_at < v_len LOOP
                INSERT INTO file_chunks (job_id, kind, start, data)
                    VALUES (p_job, p_kind, v_size + v_at, substring(p_data FROM v_at + 1 FOR 1048576));
                v_at := v_at + 1048576;
            END LOOP;
            UPDATE job_files SET size = v_size + v_len WHERE job_id = p_job AND kind = p_kind;
            IF p_kind = 'log' THEN
                INSERT INTO changes (tx, at, kind, job_id, origin, request)
                    VALUES (pg_current_xact_id()::text::bigint, extract(epoch FROM clock_timestamp()),
                            'log', p_job, p_origin, p_request);
            END IF;
            RETURN v_size + v_len;
        END
        $$
        """,
    ),
    # 5: job files compressed with lz4 (a CSV shrinks several times: fewer pages, less WAL, less of
    # the server's work to store and read them; lz4 decompresses a slice only up
    # to its end). A server built without lz4 keeps them uncompressed, as before.
    (
        """
        DO $$
        BEGIN
            ALTER TABLE file_chunks ALTER COLUMN data SET COMPRESSION lz4;
            ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTENDED;
        EXCEPTION WHEN feature_not_supported THEN
            NULL;
        END
        $$
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

CHUNK = 1 << 20  # bytes per stored chunk (and per read of a stream being stored)
# Appends smaller than this grow the last chunk instead of adding one (logs come a line at a time).
SMALL_CHUNK = 64 * 1024

NOTIFY_CHANNEL = "kzconsole_changes"
IDLE_IN_TRANSACTION_MS = 5000
CHANGES_KEPT_S = 3600.0  # changes older than this are pruned (a reader that far behind re-reads)
WAIT_POLL_S = 0.2  # wait_changes re-checks this often even without a notification

_LOCK_MIGRATE = 0x6B7A_0001  # pg_advisory_xact_lock key: one node migrates at a time

_CHANGE_INSERT = "INSERT INTO changes (tx, at, kind, job_id, origin, request)"
_CHANGE_VALUES = "pg_current_xact_id()::text::bigint, extract(epoch FROM clock_timestamp())"
_LEASE_FIELDS = tuple(EngineLease.__dataclass_fields__)
_LEASE_COLUMNS = ", ".join(_LEASE_FIELDS)


def _lease_from_row(row: Sequence[Any]) -> EngineLease:
    """An engines row (arrays, such as ``tasks``, come back as lists)."""
    values: list[Any] = [tuple(v) if isinstance(v, list) else v for v in row]
    return EngineLease(*values)


# SQLSTATE classes and codes worth a retry: the same statement will work once the server is back,
# the lock holder is gone or a snapshot is fresh.
_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout (this process was frozen mid-transaction)
    }
)


class PoolTimeout(Exception):
    """Every connection of the pool stayed busy."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is None:
        # No SQLSTATE: the client side failed (cannot connect, the connection dropped).
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")


def _is_connection_loss(exc: BaseException) -> bool:
    """The failure may have happened after the server committed (its answer was lost)."""
    if not isinstance(exc, psycopg.Error):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in {"57P01", "57P02"}


def _wakes_engines(changes: Mapping[str, Any]) -> bool:
    """Whether an engine should hear about this write at once (a queued job, a stop asked)."""
    return changes.get("queued_at") is not None or bool(changes.get("stop_requested"))


class _Tx:
    """One attempt of a transaction: the connection, and what the attempt learnt about itself."""

    __slots__ = ("conn", "xid", "wake", "origin", "request")

    def __init__(self, conn: _Connection, origin: str, request: str | None = None) -> None:
        self.conn = conn
        self.xid: int | None = None
        self.wake = False
        self.origin = origin
        self.request = request

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *, binary: bool = False
    ) -> psycopg.Cursor[Any]:
        return self.conn.execute(sql, params, binary=binary)

    def change(self, kind: str, job_id: str | None = None, *, wake: bool = False) -> None:
        """Record a change for the feed (in this transaction, so it commits with the write)."""
        row = self.conn.execute(
            "INSERT INTO changes (tx, kind, job_id, origin, at)"
            " VALUES (pg_current_xact_id()::text::bigint, %s, %s, %s,"
            " extract(epoch FROM clock_timestamp())) RETURNING tx",
            (kind, job_id, self.origin),
        ).fetchone()
        assert row is not None
        self.xid = int(row[0])
        self.wake = self.wake or wake


# ------------------------------------------------------------------------------------- store


class _PostgresDialect(Dialect):
    """store/query.py's SQL for PostgreSQL (owner: query): its placeholders, strpos, its own
    regular expressions (``~*``: POSIX ARE, the common syntax of both backends), LIMIT NULL for no
    limit, and rows found again by id. The planner has statistics: no index is named."""

    placeholder = "%s"
    row_key = "id"

    def contains(self, haystack: str, piece: str) -> tuple[str, list[Any]]:
        return "strpos(" + haystack + ", lower(%s)) > 0", [piece]

    def regex(self, text: str, pattern: str) -> tuple[str, list[Any]]:
        return text + " ~* %s", [pattern]

    def id_prefix(self, prefix: str) -> tuple[str, list[Any]]:
        return "starts_with(id, %s)", [prefix]

    def limit(self, limit: int | None, offset: int) -> tuple[str, list[Any]]:
        return " LIMIT %s OFFSET %s", [limit, offset]


class PostgresStore(SQLStore):
    """A :class:`Store` in a PostgreSQL database. ``timeout`` bounds how long one call keeps
    retrying transient failures (a server restarting, a dropped connection) before it gives up
    with :class:`StoreError`."""

    def __init__(self, url: str, *, timeout: float = 60.0, pool_size: int = 12, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.display = redact_url(url)
        self.timeout = timeout
        self.origin = uuid.uuid4().hex
        self._pool_size = max(2, pool_size)
        self._connect_timeout = connect_timeout
        self._pid = os.getpid()
        self._closed = False
        self._lock = threading.Lock()
        self._listener: _Listener | None = None
        self._next_prune = 0.0
        self._requests = itertools.count(1)
        # (job id, thread) -> the overlapped steps of a run (JobStep.overlap), used by that thread only.
        self._runs: dict[tuple[str, int], _Overlap] = {}
        self._pool = self._make_pool()
        try:
            self._open_schema()
        except BaseException:
            self.close()
            raise

    dialect: Dialect = _PostgresDialect()

    def __repr__(self) -> str:
        return f"PostgresStore({self.display!r})"

    # ------------------------------------------------------------------ plumbing

    def _make_pool(self) -> _Pool:
        self._journal = _Journal()
        pool = _Pool(self.url, self._pool_size, self._connect_timeout, self._journal.server_started)
        try:
            pool.put(pool.get(self._connect_timeout))
        except psycopg.Error as exc:
            pool.close()
            message = str(exc).strip() or type(exc).__name__
            raise StoreError(f"cannot connect to the store {self.display}: {message}") from exc
        return pool

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.display} is closed")
        if self._pid != os.getpid():
            # Forked: the parent's connections and pool threads are not ours to use.
            self._pid = os.getpid()
            self._listener = None
            self._runs = {}
            self._pool = self._make_pool()

    def _record(self, handle: _Tx, kind: str, job_id: str | None = None) -> None:
        handle.change(kind, job_id)

    def _now_sql(self) -> tuple[str, list[Any]]:
        return "extract(epoch FROM clock_timestamp())", []

    def _is_duplicate(self, exc: BaseException | None) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        message = str(exc).strip() or type(exc).__name__
        return StoreError(f"store {self.display}: {doing} failed: {message}")

    def _new_request(self) -> str:
        return f"{self.origin}:{next(self._requests)}"

    def _run(
        self,
        doing: str,
        fn: Callable[[_Tx], T],
        *,
        write: bool = False,
        exactly_once: bool = False,
        replay: Callable[[_Tx], T] | None = None,
        request: str | None = None,
        unsure: bool = False,
    ) -> T:
        """Run ``fn`` in one transaction (``write``) or as autocommit reads, retrying the whole of
        it on a transient failure. With ``exactly_once`` a commit whose answer was lost is looked
        up on the server (by transaction id) instead of being run again.

        With ``replay``, ``fn`` is one statement run in autocommit (one round trip: the engine's
        checkpoints and claims) that records its change with ``tx.request``; if its answer was
        lost and that change exists, the write happened and ``replay`` reads its result back.
        ``unsure``: such an answer was lost already (an overlapped step's): look first."""
        self._check_open()
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        pending: tuple[int, T] | None = None  # (xid, result) of an attempt whose COMMIT was lost
        if request is None and replay is not None:
            request = self._new_request()
        while True:
            committing = False
            try:
                with self._pool.connection(max(0.1, deadline - time.monotonic())) as conn:
                    if self._journal.suspect:
                        self._recover(conn)
                    tx = _Tx(conn, self.origin, request)
                    if unsure:
                        found = conn.execute(
                            "SELECT EXISTS (SELECT 1 FROM changes WHERE request = %s)", (request,)
                        ).fetchone()
                        unsure = False
                        if found and found[0]:
                            assert replay is not None
                            return replay(tx)
                    if replay is not None:
                        try:
                            return fn(tx)
                        except psycopg.Error as exc:
                            unsure = _is_connection_loss(exc)
                            raise
                    if pending is not None:
                        status = conn.execute("SELECT pg_xact_status(%s::text::xid8)", (str(pending[0]),)).fetchone()
                        state = status[0] if status else None
                        if state == "committed":
                            return pending[1]
                        if state == "in progress":
                            raise _StillRunning()
                        pending = None  # aborted (or too old to tell, and so not ours): again
                    if not write:
                        return fn(tx)
                    conn.execute("BEGIN")
                    try:
                        result = fn(tx)
                        if exactly_once and tx.xid is None:
                            row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
                            tx.xid = int(row[0]) if row else None
                        if tx.wake:
                            conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
                        committing = True
                        conn.execute("COMMIT")
                    except BaseException:
                        if not committing and not conn.broken:
                            try:
                                conn.rollback()
                            except psycopg.Error:
                                pass  # the original error is the one worth reporting
                        if committing and exactly_once and tx.xid is not None:
                            pending = (tx.xid, result)
                        raise
                    return result
            except _StillRunning:
                pass
            except (psycopg.Error, PoolTimeout) as exc:
                if _is_connection_loss(exc):
                    self._journal.lost()
                if not _is_transient(exc):
                    raise self._error(exc, doing) from exc
                if pending is not None and not _is_connection_loss(exc):
                    pending = None  # the server answered: the COMMIT failed, nothing was written
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"store {self.display}: {doing} failed: the server stayed unreachable or"
                        f" busy for {self.timeout:g} s ({str(exc).strip() or type(exc).__name__})"
                    ) from exc
                log.debug("%s: transient failure, retrying: %s", doing, exc)
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    def _open_schema(self) -> None:
        def read_version(tx: _Tx) -> int:
            row = tx.execute("SELECT to_regclass('kz_schema') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return 0
            found = tx.execute("SELECT version FROM kz_schema").fetchone()
            return int(found[0]) if found else 0

        version = self._run("reading the schema version", read_version)
        self._check_schema(version, SCHEMA_VERSION)
        if version == SCHEMA_VERSION:
            return

        def migrate(tx: _Tx) -> None:
            # A session lock taken before the transaction begins: a transaction that began before
            # another node's migration committed would still see the old catalog.
            tx.execute("SELECT pg_advisory_lock(%s)", (_LOCK_MIGRATE,))
            try:
                with tx.conn.transaction():
                    current = read_version(tx)  # another node may have migrated since we looked
                    if current > SCHEMA_VERSION:
                        raise NewerSchema(current)
                    if current == SCHEMA_VERSION:
                        return
                    if current == 0:
                        tx.execute("CREATE TABLE IF NOT EXISTS kz_schema (version integer NOT NULL)")
                    for step in MIGRATIONS[current:]:
                        for statement in step:
                            tx.execute(statement)
                    tx.execute("DELETE FROM kz_schema")
                    tx.execute("INSERT INTO kz_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            finally:
                if not tx.conn.broken:
                    tx.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_MIGRATE,))

        try:
            self._run("migrating the schema", migrate)
        except NewerSchema as exc:
            self._check_schema(exc.version, SCHEMA_VERSION)

    def schema_version(self) -> int:
        def read(tx: _Tx) -> int:
            row = tx.execute("SELECT version FROM kz_schema").fetchone()
            return int(row[0]) if row else 0

        return self._run("reading the schema version", read)

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Unix seconds on the server's clock."""

        def read(tx: _Tx) -> float:
            row = tx.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            assert row is not None
            return float(row[0])

        return self._run("reading the server's clock", read)

    # ------------------------------------------------------------------ jobs

    def create_job(self, job: JobRecord, input: BinaryIO | None = None) -> None:
        if not isinstance(job, JobRecord):
            raise TypeError(f"create_job expects a JobRecord, not {type(job).__name__}")
        values = self.job_values(job)
        sql = (
            f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join(['%s'] * len(JOB_FIELDS))})"
            " ON CONFLICT (id) DO NOTHING RETURNING id"
        )
        if input is None:
            self._create_record(job, values)
            return
        start: int | None = None
        if input is not None:
            try:
                start = input.tell() if input.seekable() else None
            except (AttributeError, OSError, ValueError):
                start = None
        attempts = 0

        def insert(tx: _Tx) -> None:
            nonlocal attempts
            attempts += 1
            if input is not None and attempts > 1:
                if start is None:
                    raise _NotRewindable()
                input.seek(start)  # a retry stores the whole stream again
            if tx.execute(sql, values).fetchone() is None:
                raise _Exists()
            if input is not None:
                self._store_stream(tx, job.id, "input", input)
            tx.change("job", job.id, wake=job.queued_at is not None)

        try:
            self._run(f"creating job {job.id!r}", insert, write=True, exactly_once=True)
        except _Exists:
            raise StoreError(f"job {job.id!r} already exists in {self.display}") from None
        except _NotRewindable:
            raise StoreError(
                f"store {self.display}: creating job {job.id!r} failed: the connection"
                " dropped while its input was stored, and the input cannot be read"
                " again; nothing was stored"
            ) from None

    def _create_record(self, job: JobRecord, values: list[Any]) -> None:
        """A job with no input in one statement, one round trip: the record, its change
        record, and the NOTIFY that wakes the engines when it is queued (a tiny job's creation
        was five round trips: BEGIN, the insert, its change, the NOTIFY, COMMIT). A lost answer is
        looked up by the change's request, as for a step."""
        notify = f", pg_notify('{NOTIFY_CHANNEL}', '')" if job.queued_at is not None else ""
        sql = (
            f"WITH j AS (INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join(['%s'] * len(JOB_FIELDS))})"
            " ON CONFLICT (id) DO NOTHING RETURNING id),"
            f" c AS ({_CHANGE_INSERT} SELECT {_CHANGE_VALUES}, 'job', j.id, %s, %s FROM j)"
            f" SELECT j.id{notify} FROM j"
        )

        def insert(tx: _Tx) -> None:
            if tx.execute(sql, [*values, tx.origin, tx.request]).fetchone() is None:
                raise _Exists()

        def created(tx: _Tx) -> None:
            return None  # its change is there: this call created it

        try:
            self._run(f"creating job {job.id!r}", insert, replay=created)
        except _Exists:
            raise StoreError(f"job {job.id!r} already exists in {self.display}") from None

    def _statement(self, query: JobQuery, columns: Sequence[str]) -> Statement | None:
        now = query.now if query.now is not None or not query.is_live else self.now()
        return select_statement(query, columns, self.dialect, now=0.0 if now is None else now)

    def list_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> list[JobRecord]:
        statement = self._statement(JobQuery.of(query, **fields), JOB_FIELDS)
        if statement is None:
            return []
        sql, params, extra = statement.sql, statement.params, statement.extra

        def select(tx: _Tx) -> list[JobRecord]:
            rows = tx.execute(sql, params).fetchall()
            return [job_from_row(row[:-extra] if extra else row) for row in rows]

        return self._run("listing jobs", select)

    def _iter_jobs(self, query: JobQuery, names: tuple[str, ...]) -> JobRows:
        self._check_open()
        if query.now is None and query.is_live:
            query = query.replace(now=self.now())  # one clock for every batch
        return JobRows(self._batches(query, names))

    def _batches(self, query: JobQuery, names: tuple[str, ...], batch: int = 4096) -> Iterator[tuple[Any, ...]]:
        """Keyset-paged batches of records: no connection is held between them, and the rows are
        never all in memory."""
        left = query.limit
        page = query
        while left is None or left > 0:
            size = batch if left is None else min(batch, left)
            jobs = self.list_jobs(page.replace(limit=size))
            yield from rows_from_records(jobs, names)
            if len(jobs) < size:
                return
            page = page.next_page(jobs[-1])
            if left is not None:
                left -= len(jobs)

    def _update_statement(
        self, job_id: str, changes: Mapping[str, Any], expect: Mapping[str, Any] | None
    ) -> tuple[str, list[Any]]:
        """update_job's one statement (the update, its change record, a NOTIFY when it wakes the
        engines) and its parameters, the origin and request still to add."""
        check_fields(changes, "update_job changes", allow_id=False)
        check_fields(expect or {}, "update_job expect", allow_id=True)
        where, where_params = self._where(job_id, expect)
        assignments = ", ".join(f"{field} = %s" for field in changes)
        notify = f", pg_notify('{NOTIFY_CHANNEL}', '')" if _wakes_engines(changes) else ""
        sql = (
            f"WITH u AS (UPDATE jobs SET {assignments} WHERE {where} RETURNING {JOB_COLUMNS}),"
            f" c AS ({_CHANGE_INSERT} SELECT {_CHANGE_VALUES}, 'job', u.id, %s, %s FROM u)"
            f" SELECT {JOB_COLUMNS}{notify} FROM u"
        )
        return sql, [*(self._encode(field, value) for field, value in changes.items()), *where_params]

    def update_job(
        self, job_id: str, changes: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> JobRecord | None:
        if not changes:
            check_fields(expect or {}, "update_job expect", allow_id=True)
            where, where_params = self._where(job_id, expect)
            sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where}"

            def match(tx: _Tx) -> JobRecord | None:
                row = tx.execute(sql, where_params).fetchone()
                return job_from_row(row) if row else None

            return self._run(f"reading job {job_id!r}", match)
        # One statement: the update and its change record commit together in one round trip.
        sql, params = self._update_statement(job_id, changes, expect)

        def update(tx: _Tx) -> JobRecord | None:
            row = tx.execute(sql, [*params, tx.origin, tx.request]).fetchone()
            return job_from_row(row[: len(JOB_FIELDS)]) if row else None

        def replay(tx: _Tx) -> JobRecord | None:
            row = tx.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
            return job_from_row(row) if row else None

        return self._run(f"updating job {job_id!r}", update, replay=replay)

    def save_job(self, job_id: str, step: JobStep) -> tuple[JobRecord | None, list[JobRecord]]:
        """See :meth:`Store.save_job`: the appends (``kz_append`` each), the update and the next
        claim are sent as one pipeline, one implicit transaction: one round trip and one commit
        for a whole step, all of it or none of it."""
        self._check_open()
        key = (job_id, threading.get_ident())
        run = self._runs.get(key)
        # This run's previous step was overlapped: its outcome is this call's first.
        if run is not None and run.sent is not None and self._settle(key, run) is None:
            self._runs.pop(key, None)
            return None, []
        if not step.changes:
            self._runs.pop(key, None)
            return super().save_job(job_id, step)
        changes, expect, claim, sync, claim_next = step.changes, step.expect, step.claim, step.sync, step.claim_next
        files: list[tuple[str, int | None, bytes]] = []
        for kind, (offset, data) in step.appends.items():
            check_append(kind, offset, "save_job")
            files.append((kind, offset, bytes(data)))
        update_sql, update_params = self._update_statement(job_id, changes, expect)
        claiming = self._claim_statement(claim_next) if claim_next else None
        journal = self._journal
        size = sum(len(data) for _, _, data in files)
        # A step not asked to be durable commits without waiting for its flush to disk: only
        # the steps asked to sync (a job's end) wait for one, and that flush makes every earlier
        # step durable too (the WAL is flushed in order). What a crash of the server loses of
        # the others, this handle writes again (_recover), so it never reaches the run.
        asynchronous = not sync and claiming is None and journal.has_room(size)
        settled, losses = journal.mark()
        request = self._new_request()

        committed_on = 0.0  # the start time of the server that took the step

        def write(tx: _Tx, asynchronous: bool = asynchronous) -> tuple[JobRecord | None, list[JobRecord]]:
            nonlocal committed_on
            committed_on = tx.conn.server_started
            try:
                with tx.conn.pipeline():
                    if asynchronous:
                        tx.execute("SELECT set_config('synchronous_commit', 'off', true)")
                    for kind, offset, data in files:
                        tx.execute(
                            "SELECT kz_append(%s, %s, %s, %s, %s, %s, %s)",
                            (job_id, kind, data, offset, claim, tx.origin, tx.request),
                        )
                    updated = tx.execute(update_sql, [*update_params, tx.origin, tx.request])
                    claimed = tx.execute(claiming[0], [*claiming[1], tx.origin, tx.request]) if claiming else None
            except psycopg.Error:
                # psycopg counts a statement prepared as soon as it sends it in a pipeline; when
                # a statement before it fails (a refusal), the server skips it unprepared, and
                # that statement would fail on this connection from then on. Refusals are rare
                # (a run taken over, a job removed): the connection is dropped, not mended.
                tx.conn.close()
                raise
            row = updated.fetchone()
            jobs = [job_from_row(r) for r in claimed] if claimed is not None else []
            jobs.sort(key=lambda job: (job.queued_at, job.id))  # RETURNING has no order
            return (job_from_row(row[: len(JOB_FIELDS)]) if row else None), jobs

        def replay(tx: _Tx) -> tuple[JobRecord | None, list[JobRecord]]:
            nonlocal committed_on
            committed_on = tx.conn.server_started  # found there: that server has it
            rows = tx.execute(
                f"SELECT {', '.join('jobs.' + f for f in JOB_FIELDS)} FROM jobs JOIN changes"
                " ON changes.job_id = jobs.id WHERE changes.request = %s AND changes.kind = 'job'"
                " ORDER BY jobs.queued_at, jobs.id",
                (tx.request,),
            ).fetchall()
            jobs = [job_from_row(r) for r in rows]
            return (next((j for j in jobs if j.id == job_id), None), [j for j in jobs if j.id != job_id])

        doing = f"saving job {job_id!r}"
        overlap = step.overlap and asynchronous
        unsure = False
        if overlap and run is not None and run.record is not None:
            sent = _Sent(doing, request, write, replay, size, losses)
            outcome = self._send(sent, files, job_id, claim, update_sql, update_params)
            if outcome is None:
                run.sent = sent
                return run.record, []
            unsure = outcome
        try:
            result = self._run(doing, write, replay=replay, request=request, unsure=unsure)
        except StoreError as exc:
            self._runs.pop(key, None)
            raise self._append_error(exc, job_id) from exc.__cause__
        if asynchronous:
            journal.add(_Step(request, job_id, committed_on, lambda tx: write(tx, False), size), losses)
        else:
            journal.settle(settled, committed_on)
        if overlap and result[0] is not None:
            # The next overlapped step of this run answers with this record.
            self._runs[key] = _Overlap(result[0])
        else:
            self._runs.pop(key, None)
        return result

    def _send(
        self,
        sent: _Sent,
        files: list[tuple[str, int | None, bytes]],
        job_id: str,
        claim: int | None,
        update_sql: str,
        update_params: list[Any],
    ) -> bool | None:
        """Send an overlapped step on a connection of its own without waiting for the answer.
        It is one pipeline at libpq's level (the statements of save_job's step, then a Sync: one
        implicit transaction, which the server commits as soon as it gets there), so the answer
        is there when the run's next write reads it. None when
        sent; else whether an attempt may have committed (then the caller's synchronous write
        looks it up first). Not sent when half the pool is held by overlapped steps already (a
        run's own next writes need connections), or when this handle has steps to check after a
        restart of the server."""
        held = sum(1 for run in list(self._runs.values()) if run.sent is not None)
        if self._journal.suspect or held >= self._pool_size // 2:
            return False
        try:
            conn = self._pool.get(0.001)
        except (PoolTimeout, psycopg.Error):
            return False
        sent.conn = conn
        try:
            statements: list[tuple[str, Sequence[Any]]] = [("SELECT set_config('synchronous_commit', 'off', true)", ())]
            statements += [
                (
                    "SELECT kz_append(%s, %s, %s, %s, %s, %s, %s)",
                    (job_id, kind, data, offset, claim, self.origin, sent.request),
                )
                for kind, offset, data in files
            ]
            statements.append((update_sql, [*update_params, self.origin, sent.request]))
            pgconn = conn.pgconn
            dumper = psycopg.adapt.Transformer(conn)
            pgconn.enter_pipeline_mode()
            # Prepared once per connection and parameter types (the server plans each statement
            # once): as psycopg prepares the statements it runs often.
            for sql, params in statements:
                values = dumper.dump_sequence(params, [psycopg.adapt.PyFormat.AUTO] * len(params))
                name = _statement_name(sql, dumper.types)
                if name not in conn.prepared and name not in sent.prepared:
                    pgconn.send_prepare(name, _numbered(sql), dumper.types)
                    sent.prepared.append(name)
                    sent.commands += 1
                pgconn.send_query_prepared(name, values, dumper.formats)
                sent.update_at = sent.commands
                sent.commands += 1
            pgconn.pipeline_sync()
            while pgconn.flush():  # a non-blocking connection: the rest when the socket takes it
                select.select([pgconn.socket], [pgconn.socket], [], self.timeout)
                pgconn.consume_input()
        except psycopg.Error as exc:
            self._discard(conn)
            if _is_connection_loss(exc):
                self._journal.lost()
                return True
            return False
        return None

    def _discard(self, conn: _Connection) -> None:
        try:
            conn.close()
        except psycopg.Error:
            pass
        self._pool.put(conn)  # closed: dropped, its slot freed

    def _settle(self, key: tuple[str, int], run: _Overlap) -> JobRecord | None:
        """The outcome of this run's overlapped step (its answer, read now): the record it
        stored, None when it matched nothing; Fenced or StoreError as save_job raises them. A
        step whose answer was lost, or that failed for a passing reason, is written again here,
        synchronously (looked up first: it may have committed)."""
        sent, run.sent = run.sent, None
        assert sent is not None and sent.conn is not None
        conn = sent.conn
        failure: psycopg.Error | None = None
        sqlstate: str | None = None
        row = None
        try:
            results = _answers(conn.pgconn, sent.commands, self.timeout)
            failed = next((r for r in results if r.status == psycopg.pq.ExecStatus.FATAL_ERROR), None)
            if failed is not None:
                code = failed.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
                sqlstate = code.decode("ascii") if code else None
                text = failed.error_field(psycopg.pq.DiagnosticField.MESSAGE_PRIMARY) or failed.error_message
                failure = psycopg.Error(text.decode("utf-8", "replace").strip())
            else:
                answer = results[sent.update_at]
                if answer.ntuples:
                    loader = psycopg.adapt.Transformer(conn)
                    loader.set_pgresult(answer)
                    row = loader.load_row(0, tuple)
        except psycopg.Error as exc:
            failure = exc
        if failure is None:
            conn.prepared.update(sent.prepared)
            self._pool.put(conn)
            record = job_from_row(row[: len(JOB_FIELDS)]) if row else None
            self._journal.add(
                _Step(sent.request, key[0], conn.server_started, lambda tx: sent.write(tx, False), sent.size),
                sent.losses,
            )
            run.record = record
            return record
        self._discard(conn)  # rare; and which statements it has prepared is not known now
        if sqlstate in _REFUSALS:
            self._runs.pop(key, None)
            message = f"store {self.display}: {failure}"
            raise Fenced(str(failure)) if sqlstate == "KZF01" else StoreError(message)
        lost = sqlstate is None and _is_connection_loss(failure)
        if lost:
            self._journal.lost()
        transient = sqlstate in _TRANSIENT_SQLSTATES or (sqlstate or "").startswith("08")
        if not (lost or transient or (sqlstate is None and _is_transient(failure))):
            self._runs.pop(key, None)
            error = self._error(failure, sent.doing)
            error.__cause__ = failure
            raise self._append_error(error, key[0]) from failure
        _, losses = self._journal.mark()
        committed_on = 0.0

        def write(tx: _Tx) -> tuple[JobRecord | None, list[JobRecord]]:
            nonlocal committed_on
            committed_on = tx.conn.server_started
            return sent.write(tx, True)

        try:
            record, _ = self._run(sent.doing, write, replay=sent.replay, request=sent.request, unsure=lost)
        except StoreError as exc:
            self._runs.pop(key, None)
            raise self._append_error(exc, key[0]) from exc.__cause__
        self._journal.add(
            _Step(sent.request, key[0], committed_on, lambda tx: sent.write(tx, False), sent.size), losses
        )
        run.record = record
        return record

    def _recover(self, conn: _Connection) -> None:
        """The server restarted since this handle's last steps: write again, durably and in
        their order, those of them it lost (a step's change records carry its request; a step
        whose records are there was kept, and so was everything before it). A step refused now
        (its job taken over or removed meanwhile) is dropped: the run learns it at its next one."""
        journal = self._journal
        with journal.lock:
            if not journal.suspect:
                return
            steps = journal.suspects()
            kept: set[str] = set()
            if steps:
                kept = {
                    row[0]
                    for row in conn.execute(
                        "SELECT DISTINCT request FROM changes WHERE request = ANY(%s)",
                        ([step.request for step in steps],),
                    )
                }
            lost = [step for step in steps if step.request not in kept]
            for step in lost:
                try:
                    step.write(_Tx(conn, self.origin, step.request))
                except psycopg.Error as exc:
                    if getattr(exc, "sqlstate", None) not in _REFUSALS:
                        raise
                    log.info("job %s: a step the server lost is refused now: %s", step.job_id, exc)
            if lost:
                log.warning(
                    "store %s: the server restarted and had lost the last %d step(s) of"
                    " running jobs; they were written again",
                    self.display,
                    len(lost),
                )
            journal.recovered(steps)

    def delete_job(self, job_id: str, *, expect: Mapping[str, Any] | None = None) -> JobRecord | None:
        check_fields(expect or {}, "delete_job expect", allow_id=True)
        where, params = self._where(job_id, expect)
        sql = f"DELETE FROM jobs WHERE {where} RETURNING {JOB_COLUMNS}"

        def delete(tx: _Tx) -> JobRecord | None:
            row = tx.execute(sql, params).fetchone()
            if row is None:
                return None
            tx.change("deleted", job_id)
            return job_from_row(row)

        return self._run(f"deleting job {job_id!r}", delete, write=True, exactly_once=True)

    def _claim_statement(self, c: Claim) -> tuple[str, list[Any]]:
        """claim_queued's one statement (the claims and their change records) and its parameters,
        the origin and request still to add."""
        tasks, served, now = c.tasks, c.served, c.now
        task_filter = ""
        params: list[Any] = []
        if tasks is not None:
            task_filter = " AND (category || '/' || action = ANY(%s)"
            params.append(sorted(set(tasks)))
            if served is not None:
                task_filter += " OR NOT category || '/' || action = ANY(%s)"
                params.append(sorted(set(served)))
            task_filter += ")"
        started = "%s" if now is not None else "extract(epoch FROM clock_timestamp())"
        sql = (
            "WITH head AS (SELECT id FROM jobs WHERE status = 'pending' AND queued_at IS NOT NULL"
            f"{task_filter} ORDER BY queued_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" UPDATE jobs SET status = 'executing', owner = %s, node = %s, start_timestamp = {started},"
            " claim = jobs.claim + 1"
            f" FROM head WHERE jobs.id = head.id RETURNING {', '.join('jobs.' + f for f in JOB_FIELDS)}"
        )
        sql = (
            f"WITH claimed AS ({sql}),"
            f" c AS ({_CHANGE_INSERT} SELECT {_CHANGE_VALUES}, 'job', claimed.id, %s, %s FROM claimed)"
            f" SELECT * FROM claimed"
        )
        return sql, [*params, max(0, c.limit), c.node, c.node_name, *([now] if now is not None else [])]

    def _claim_queued(self, c: Claim) -> list[JobRecord]:
        sql, params = self._claim_statement(c)

        def claim(tx: _Tx) -> list[JobRecord]:
            jobs = [job_from_row(row) for row in tx.execute(sql, [*params, tx.origin, tx.request])]
            jobs.sort(key=lambda job: (job.queued_at, job.id))  # RETURNING has no order
            return jobs

        def replay(tx: _Tx) -> list[JobRecord]:
            rows = tx.execute(
                f"SELECT {', '.join('jobs.' + f for f in JOB_FIELDS)} FROM jobs JOIN changes"
                " ON changes.job_id = jobs.id WHERE changes.request = %s"
                " ORDER BY jobs.queued_at, jobs.id",
                (tx.request,),
            )
            return [job_from_row(row) for row in rows]

        return self._run("claiming queued jobs", claim, replay=replay)

    def _store_stream(self, tx: _Tx, job_id: str, kind: str, stream: BinaryIO) -> int:
        """Store ``stream`` (read to its end, a chunk at a time) as the whole of a file."""
        tx.execute(
            "INSERT INTO job_files (job_id, kind, size) VALUES (%s, %s, 0)"
            " ON CONFLICT (job_id, kind) DO UPDATE SET size = 0",
            (job_id, kind),
        )
        tx.execute("DELETE FROM file_chunks WHERE job_id = %s AND kind = %s", (job_id, kind))
        size = 0
        # Binary COPY: the bytes go as they are (text COPY would send them hex-escaped, twice the
        # size, encoded here and decoded by the server).
        with tx.conn.cursor().copy("COPY file_chunks (job_id, kind, start, data) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "int8", "bytea"])
            while True:
                data = stream.read(CHUNK)
                if not data:
                    break
                copy.write_row((job_id, kind, size, bytes(data)))
                size += len(data)
        tx.execute("UPDATE job_files SET size = %s WHERE job_id = %s AND kind = %s", (size, job_id, kind))
        return size

    def _fence(self, tx: _Tx, job_id: str, claim: int | None) -> None:
        """Lock the job row (a takeover waits for this write, and vice versa) and refuse the
        write if ``claim`` is no longer the job's."""
        row = tx.execute("SELECT claim FROM jobs WHERE id = %s FOR SHARE", (job_id,)).fetchone()
        if row is None:
            if claim is not None:
                raise Fenced(f"job {job_id} was removed")
            raise StoreError(f"store {self.display}: no job {job_id!r}")
        if claim is None:
            return
        if int(row[0]) != claim:
            raise Fenced(f"job {job_id} was taken over by another engine (claim {row[0]}, not {claim})")

    def _append_file(
        self, job_id: str, kind: str, data: bytes, offset: int | None, claim: int | None, sync: bool
    ) -> int:
        # Every commit is durable here (synchronous_commit as the server has it), so ``sync``
        # asks for nothing more. (Turning it off for unsynced appends would let a crash of the
        # server, not only of its machine, lose appends a checkpoint counts on.)
        data = bytes(data)
        key = (job_id, threading.get_ident())
        run = self._runs.get(key)
        if offset is not None and run is not None and run.sent is not None:
            # After this thread's overlapped step of the job: settled first (its refusal or
            # failure is this append's), so the append lands after it.
            self._settle(key, run)
        if offset is not None or kind == "log":
            # One statement (the server's kz_append): with an offset it is idempotent; a log
            # append records its change with the request token, so a lost answer is looked up.
            def append_one(tx: _Tx) -> int:
                row = tx.execute(
                    "SELECT kz_append(%s, %s, %s, %s, %s, %s, %s)",
                    (job_id, kind, data, offset, claim, tx.origin, tx.request),
                ).fetchone()
                assert row is not None
                return int(row[0])

            def replay(tx: _Tx) -> int:
                return self.file_size(job_id, kind) or 0

            try:
                return self._run(
                    f"writing the {kind} of job {job_id!r}", append_one, replay=replay if offset is None else None
                )
            except StoreError as exc:
                raise self._append_error(exc, job_id) from exc.__cause__

        def append(tx: _Tx) -> int:
            self._fence(tx, job_id, claim)
            row = tx.execute(
                "INSERT INTO job_files (job_id, kind, size) VALUES (%s, %s, 0)"
                " ON CONFLICT (job_id, kind) DO UPDATE SET size = job_files.size RETURNING size",
                (job_id, kind),
            ).fetchone()
            size = int(row[0]) if row else 0
            if offset is not None and offset < size:
                self._truncate(tx, job_id, kind, offset)
                size = offset
            elif offset is not None and offset > size:
                raise StoreError(
                    f"store {self.display}: cannot append to the {kind} of job"
                    f" {job_id} at {offset}: it holds only {size} bytes"
                )
            if data:
                self._append_chunks(tx, job_id, kind, size, data)
            new_size = size + len(data)
            tx.execute("UPDATE job_files SET size = %s WHERE job_id = %s AND kind = %s", (new_size, job_id, kind))
            if kind == "log":
                # Output grows with the checkpoint that counts it (a job change); a log has none.
                tx.change("log", job_id)
            elif tx.xid is None:
                row = tx.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
                tx.xid = int(row[0]) if row else None
            return new_size

        # With an offset the append is idempotent (cut back, then write): a retry is harmless.
        return self._run(f"writing the {kind} of job {job_id!r}", append, write=True, exactly_once=offset is None)

    def _append_error(self, exc: StoreError, job_id: str) -> StoreError:
        """kz_append's own errors as the interface names them."""
        code = getattr(exc.__cause__, "sqlstate", None)
        message = getattr(getattr(exc.__cause__, "diag", None), "message_primary", None) or str(exc)
        if code == "KZF01":
            return Fenced(message)
        if code in ("KZN01", "KZS01"):
            return StoreError(f"store {self.display}: {message}")
        return exc

    @staticmethod
    def _truncate(tx: _Tx, job_id: str, kind: str, offset: int) -> None:
        tx.execute("DELETE FROM file_chunks WHERE job_id = %s AND kind = %s AND start >= %s", (job_id, kind, offset))
        tx.execute(
            "UPDATE file_chunks SET data = substring(data FROM 1 FOR (%s - start)::int)"
            " WHERE job_id = %s AND kind = %s AND start = (SELECT max(start) FROM file_chunks"
            " WHERE job_id = %s AND kind = %s) AND start + length(data) > %s",
            (offset, job_id, kind, job_id, kind, offset),
        )

    @staticmethod
    def _append_chunks(tx: _Tx, job_id: str, kind: str, size: int, data: bytes) -> None:
        if len(data) < SMALL_CHUNK:
            # A small append grows a small last chunk (one row per log line would be wasteful).
            grown = tx.execute(
                "UPDATE file_chunks SET data = data || %s WHERE job_id = %s AND kind = %s"
                " AND start = (SELECT max(start) FROM file_chunks WHERE job_id = %s AND kind = %s)"
                " AND length(data) < %s AND start + length(data) = %s RETURNING start",
                (data, job_id, kind, job_id, kind, SMALL_CHUNK, size),
            ).fetchone()
            if grown is not None:
                return
        rows = [(job_id, kind, size + at, data[at : at + CHUNK]) for at in range(0, len(data), CHUNK)]
        with tx.conn.cursor() as cur:
            cur.executemany("INSERT INTO file_chunks (job_id, kind, start, data) VALUES (%s, %s, %s, %s)", rows)

    def file_size(self, job_id: str, kind: str) -> int | None:
        check_kind(kind)

        def read(tx: _Tx) -> int | None:
            row = tx.execute("SELECT size FROM job_files WHERE job_id = %s AND kind = %s", (job_id, kind)).fetchone()
            return int(row[0]) if row else None

        return self._run(f"reading the size of the {kind} of job {job_id!r}", read)

    def open_file(self, job_id: str, kind: str) -> BinaryIO | None:
        if self.file_size(job_id, kind) is None:
            return None
        raw = _ChunkReader(self, job_id, kind)
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def _read_at(self, job_id: str, kind: str, position: int, size: int) -> bytes:
        """Up to ``size`` bytes of a file from ``position`` (fewer at its end)."""

        def read(tx: _Tx) -> bytes:
            rows = tx.execute(
                "SELECT start, substring(data FROM (greatest(%s - start, 0) + 1)::int"
                " FOR (%s - greatest(%s, start))::int)"
                " FROM file_chunks WHERE job_id = %s AND kind = %s AND start < %s"
                " AND start >= coalesce((SELECT max(start) FROM file_chunks WHERE job_id = %s"
                " AND kind = %s AND start <= %s), 0) ORDER BY start",
                (position, position + size, position, job_id, kind, position + size, job_id, kind, position),
                binary=True,  # the bytes as they are, not hex text to decode
            ).fetchall()
            out = bytearray()
            for start, piece in rows:
                if start > position + len(out):
                    break  # a gap: the file was cut back under us; stop at what is contiguous
                out += piece
            return bytes(out[:size])

        return self._run(f"reading the {kind} of job {job_id!r}", read)

    # ------------------------------------------------------------------ changes feed

    def changes(self, after: int | None, *, limit: int = 10_000) -> tuple[int, list[StoreChange]]:
        """See :meth:`Store.changes`. A position is a transaction-id watermark: the changes of
        every transaction below it have been read. It moves only when changes are returned."""

        def read(tx: _Tx) -> tuple[int, list[StoreChange]]:
            if after is None:
                row = tx.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
                assert row is not None
                return int(row[0]), []
            rows = tx.execute(
                "WITH w AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS x)"
                " SELECT w.x, (SELECT pruned_through FROM feed), c.tx, c.kind, c.job_id, c.origin"
                " FROM w LEFT JOIN LATERAL (SELECT tx, position, kind, job_id, origin FROM changes"
                "  WHERE tx >= %s AND tx < w.x ORDER BY tx, position LIMIT %s) c ON true"
                " ORDER BY c.tx, c.position",
                (after, limit + 1),
            ).fetchall()
            watermark, pruned = int(rows[0][0]), int(rows[0][1] or 0)
            if after <= pruned:
                return max(watermark, pruned + 1), [StoreChange("reset", None, "")]
            found = [(int(r[2]), r[3], r[4], r[5]) for r in rows if r[2] is not None]
            if not found:
                return after, []
            if len(found) > limit:
                # Cut at a transaction boundary: the next read resumes at that transaction.
                last_tx = found[limit][0]
                kept = [f for f in found[:limit] if f[0] < last_tx]
                if kept:
                    found, watermark = kept, last_tx
            return watermark, [StoreChange(kind, job_id, origin) for _, kind, job_id, origin in found]

        return self._run("reading the changes", read)

    def wait_changes(self, after: int, timeout: float) -> tuple[int, list[StoreChange]]:
        listener = self._get_listener()
        deadline = time.monotonic() + timeout
        while True:
            seen = listener.generation
            position, found = self.changes(after)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return position, found
            # A notification wakes this at once; a change from a write that does not notify
            # (a checkpoint) is found by the next look, a few times a second.
            listener.wait(seen, min(remaining, WAIT_POLL_S))

    def _get_listener(self) -> _Listener:
        self._check_open()
        with self._lock:
            if self._listener is None:
                self._listener = _Listener(self.url, self._connect_timeout)
            return self._listener

    def prune_changes(self, before: float) -> int:
        """Delete the changes recorded before ``before`` (Unix seconds); return how many."""

        def delete(tx: _Tx) -> int:
            row = tx.execute(
                "WITH d AS (DELETE FROM changes WHERE at < %s RETURNING tx) SELECT count(*), max(tx) FROM d", (before,)
            ).fetchone()
            count, newest = (int(row[0]), row[1]) if row else (0, None)
            if newest is not None:
                tx.execute("UPDATE feed SET pruned_through = greatest(pruned_through, %s)", (newest,))
            return count

        return self._run("pruning the changes", delete, write=True)

    # ---------------------------------------------------------------- engines

    def heartbeat(self, lease: EngineLease) -> None:
        values = [list(v) if isinstance(v, tuple) else v for v in (getattr(lease, f) for f in _LEASE_FIELDS)]
        updates = ", ".join(f"{field} = excluded.{field}" for field in _LEASE_FIELDS if field != "node")
        # One statement; a new lease is news (an `engine` change), a renewal is not. (xmax = 0 is
        # how PostgreSQL tells an inserted row from an updated one in RETURNING.)
        sql = (
            f"WITH up AS (INSERT INTO engines ({_LEASE_COLUMNS}, heartbeat) VALUES"
            f" ({', '.join(['%s'] * len(values))}, extract(epoch FROM clock_timestamp()))"
            f" ON CONFLICT (node) DO UPDATE SET {updates}, heartbeat = excluded.heartbeat"
            " RETURNING (xmax = 0) AS inserted),"
            f" c AS ({_CHANGE_INSERT} SELECT {_CHANGE_VALUES}, 'engine', NULL, %s, NULL"
            " FROM up WHERE inserted)"
            " SELECT inserted FROM up"
        )

        def upsert(tx: _Tx) -> None:
            tx.execute(sql, [*values, tx.origin])

        # Idempotent: run again after a lost answer, it only renews the lease.
        self._run(f"renewing the lease of engine {lease.node!r}", upsert)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 60.0
            self.prune_changes(self.now() - CHANGES_KEPT_S)

    def engines(self) -> list[EngineLease]:
        def select(tx: _Tx) -> list[EngineLease]:
            rows = tx.execute(f"SELECT {_LEASE_COLUMNS} FROM engines ORDER BY started, node").fetchall()
            return [_lease_from_row(row) for row in rows]

        return self._run("listing engines", select)

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listener, self._listener = self._listener, None
        if self._pid != os.getpid():
            return  # a forked copy: the pool belongs to the parent
        for run in list(self._runs.values()):
            if run.sent is not None and run.sent.conn is not None:
                self._discard(run.sent.conn)  # a run still going at close: its next write fails
        self._runs.clear()
        if listener is not None:
            listener.stop()
            self._wake(listener.wake_channel)
            listener.close()
        self._pool.close()

    def _wake(self, channel: str) -> None:
        """NOTIFY ``channel`` once, without retrying: closing a handle must not wait for a server
        that is away (the listener then ends at its next poll instead)."""
        try:
            conn = self._pool.get(0.2)
        except (PoolTimeout, psycopg.Error):
            return
        lost = False
        try:
            conn.execute("SELECT pg_notify(%s, '')", (channel,))
        except psycopg.Error:
            lost = True
        finally:
            self._pool.put(conn, lost=lost)


class _Exists(Exception):
    pass


# kz_append's refusals: fenced (taken over, removed), no such job, bytes missing before the offset.
_REFUSALS = frozenset({"KZF01", "KZN01", "KZS01"})


@dataclass
class _Step:
    """A step committed without waiting for its flush: its request (its change records carry
    it), the start time of the server that acknowledged it (:data:`_UNSURE` once a connection
    was lost since), and how to write it again."""

    request: str
    job_id: str
    server: float
    write: Callable[[_Tx], Any]
    size: int


@dataclass
class _Sent:
    """An overlapped step sent and not yet answered: what it is, how to write it again (``write``,
    ``replay`` as for save_job), and where its answer will come from."""

    doing: str
    request: str
    write: Callable[[_Tx, bool], tuple[JobRecord | None, list[JobRecord]]]
    replay: Callable[[_Tx], tuple[JobRecord | None, list[JobRecord]]]
    size: int
    losses: int
    conn: _Connection | None = None
    commands: int = 0  # sent in the pipeline (statements prepared, statements run)
    update_at: int = 0  # which command is the update
    prepared: list[bytes] = field(default_factory=list)  # statements this step prepares


@dataclass
class _Overlap:
    """A run's overlapped steps on one handle: the newest record it stored (what the next
    overlapped step answers with) and the step in flight, if any."""

    record: JobRecord | None
    sent: _Sent | None = None


_UNSURE = -1.0  # a step's server once a connection was lost since: no server is known to keep it


class _Journal:
    """The steps this handle committed with ``synchronous_commit`` off since its last durable
    step, kept until a durable step settles them. A crash of the server may lose them while this
    process lives on and believes them stored: once a step is known to a server that has
    restarted since (a new connection tells the server's start time) or a connection was lost
    (a crash restart after one backend crashed keeps the server's start time, and a lost
    connection is how it shows), :meth:`PostgresStore._recover` writes again those the server
    lost. Suspecting a server that kept everything costs one query.

    Bounded: past :data:`MAX_STEPS` steps or :data:`MAX_BYTES` bytes of their appends, the next
    step is durable (and settles the journal)."""

    MAX_STEPS = 256
    MAX_BYTES = 4 << 20

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.suspect = False  # some step was acknowledged by a server that has restarted since
        self._server: float | None = None  # the start time of the server, as last seen
        self._steps: list[tuple[int, _Step]] = []
        self._seq = 0
        self._bytes = 0
        self._losses = 0  # connections lost so far

    def _check(self) -> None:
        self.suspect = any(step.server != self._server for _, step in self._steps)

    def server_started(self, started: float) -> None:
        """A new connection's server start time (the pool tells each)."""
        with self.lock:
            if started != self._server:
                self._server = started
                self._check()

    def lost(self) -> None:
        """A connection to the server was lost: every step is suspect until checked."""
        with self.lock:
            self._losses += 1
            for _, step in self._steps:
                step.server = _UNSURE
            self.suspect = bool(self._steps)

    def has_room(self, size: int) -> bool:
        with self.lock:
            return len(self._steps) < self.MAX_STEPS and self._bytes + size <= self.MAX_BYTES

    def mark(self) -> tuple[int, int]:
        """The newest step so far (a durable commit begun after this settles it), and the
        connections lost so far (a step begun before a loss is suspect)."""
        with self.lock:
            return self._seq, self._losses

    def add(self, step: _Step, losses: int) -> None:
        with self.lock:
            if losses != self._losses:
                step.server = _UNSURE
            self._seq += 1
            self._steps.append((self._seq, step))
            self._bytes += step.size
            if step.server != self._server:
                self.suspect = True

    def settle(self, mark: int, server: float) -> None:
        """A durable commit begun after ``mark`` succeeded on ``server``: the steps up to it that
        the same server acknowledged are durable too."""
        with self.lock:
            if self._steps and self._steps[0][0] <= mark:
                self._steps = [(seq, step) for seq, step in self._steps if seq > mark or step.server != server]
                self._bytes = sum(step.size for _, step in self._steps)
                self._check()

    def suspects(self) -> list[_Step]:
        """The steps a server that restarted since acknowledged (with the lock held)."""
        return [step for _, step in self._steps if step.server != self._server]

    def recovered(self, steps: list[_Step]) -> None:
        """``steps`` are durable on the server now (with the lock held)."""
        gone = {id(step) for step in steps}
        self._steps = [(seq, step) for seq, step in self._steps if id(step) not in gone]
        self._bytes = sum(step.size for _, step in self._steps)
        self._check()


@functools.lru_cache(maxsize=256)
def _statement_name(sql: str, types: tuple[int, ...]) -> bytes:
    """The name an overlapped step's statement is prepared under (one per text and types)."""
    return b"kz_" + hashlib.sha1(f"{sql}{types}".encode()).hexdigest()[:24].encode()


def _numbered(sql: str) -> bytes:
    """psycopg's ``%s`` placeholders as the server's ``$1, $2, ...`` (the store's SQL has no
    other ``%``)."""
    pieces = sql.split("%s")
    return "".join(piece + (f"${n}" if n < len(pieces) else "") for n, piece in enumerate(pieces, 1)).encode()


def _answers(pgconn: Any, commands: int, timeout: float) -> list[Any]:
    """The first result of each of ``commands`` sent in a pipeline on ``pgconn``, then leave
    pipeline mode (libpq's asynchronous API; waiting at most ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout

    def next_result() -> Any:
        while pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([pgconn.socket], [], [], remaining)[0]:
                raise psycopg.OperationalError("no answer from the server")
            pgconn.consume_input()
        return pgconn.get_result()

    pgconn.consume_input()
    results: list[Any] = []
    for _ in range(commands):
        results.append(next_result())
        while next_result() is not None:  # the end of this statement's results
            pass
    sync = next_result()
    if sync is None or sync.status != psycopg.pq.ExecStatus.PIPELINE_SYNC:
        raise psycopg.OperationalError("the pipeline's answers are out of step")
    pgconn.exit_pipeline_mode()
    return results


class _StillRunning(Exception):
    pass


class _NotRewindable(Exception):
    pass


class _Connection(psycopg.Connection[Any]):
    """A connection that knows the start time of its server (``pg_postmaster_start_time()``): a
    different one on a later connection means the server restarted in between."""

    server_started: float = 0.0
    prepared: set[bytes]  # statements an overlapped step prepared on it (see PostgresStore._send)


class _Pool:
    """At most ``size`` connections, made on demand by the thread that needs one (so a caller
    waiting for a server that is away sees each failed attempt, and retries on its own terms)."""

    def __init__(
        self, url: str, size: int, connect_timeout: float, on_connect: Callable[[float], None] | None = None
    ) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._on_connect = on_connect  # told the server's start time by each new connection
        self._idle: list[_Connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._closed = False

    def get(self, timeout: float) -> _Connection:
        if not self._slots.acquire(timeout=timeout):
            raise PoolTimeout(f"no free connection within {timeout:.1f} s")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = _Connection.connect(
                    self._url, autocommit=True, connect_timeout=max(1, round(min(timeout, self._connect_timeout)))
                )
                # A process frozen (or cut off) inside one of our transactions must not hold its
                # row locks for ever: every engine's takeover of its jobs would wait on them.
                # The store's transactions are a few statements, never idle in between.
                row = conn.execute(
                    "SELECT set_config('idle_in_transaction_session_timeout', %s, false),"
                    " extract(epoch FROM pg_postmaster_start_time())::float8",
                    (str(IDLE_IN_TRANSACTION_MS),),
                ).fetchone()
                conn.prepared = set()
                if row is not None:
                    conn.server_started = float(row[1])
                    if self._on_connect is not None:
                        self._on_connect(conn.server_started)
            return conn
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: _Connection, *, lost: bool = False) -> None:
        try:
            healthy = (
                not lost
                and not conn.closed
                and not conn.broken
                and (conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)
            )
            with self._lock:
                if healthy and not self._closed:
                    self._idle.append(conn)
                    return
                # A lost connection means the server went away: the idle ones are gone too.
                stale = self._idle if lost else []
                self._idle = [] if lost else self._idle
            for other in [conn, *stale]:
                try:
                    other.close()
                except psycopg.Error:
                    pass
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def connection(self, timeout: float) -> Iterator[_Connection]:
        conn = self.get(timeout)
        lost = False
        try:
            yield conn
        except psycopg.Error as exc:
            lost = conn.broken or (_is_connection_loss(exc) and conn.closed)
            raise
        finally:
            self.put(conn, lost=lost or conn.broken)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except psycopg.Error:
                pass


class _ChunkReader(io.RawIOBase):
    """A seekable raw reader of one stored file; each read borrows a connection briefly, so a
    reader left open (a console tailing a log) holds nothing on the server.

    It reads ahead a chunk at a time: a text reader above it asks for 8 KiB at a time (and
    BufferedReader.read1 passes such small reads straight through), which would otherwise be a
    query per 8 KiB. (Fetching the next chunk in a thread while the caller works on the current
    one was measured twice and not kept: no gain, the thread competing with the job's own for the
    GIL and the server.)"""

    def __init__(self, store: PostgresStore, job_id: str, kind: str) -> None:
        self._store = store
        self._job_id = job_id
        self._kind = kind
        self._pos = 0
        self._ahead = b""  # the bytes stored from _ahead_at on, as last read
        self._ahead_at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = (self._store.file_size(self._job_id, self._kind) or 0) + offset
            self._ahead = b""  # the file may have grown or been cut back: read it afresh
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise OSError(22, "negative seek position")
        self._pos = target
        return target

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        start = self._pos - self._ahead_at
        if not 0 <= start < len(self._ahead):
            self._ahead = self._store._read_at(self._job_id, self._kind, self._pos, max(len(view), CHUNK))
            self._ahead_at = self._pos
            start = 0
        data = self._ahead[start : start + len(view)]
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _Listener:
    """One LISTENing connection per store handle; waiters sleep on a condition that each
    notification (or a reconnection) wakes. Runs in a daemon thread started on first use."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._cond = threading.Condition()
        self.generation = 0
        self._stop = threading.Event()
        # Its own channel, which close() notifies: the loop ends at once instead of at the end
        # of its current wait (up to half a second at the end of every `tasks add --run`).
        self.wake_channel = f"kz_wake_{uuid.uuid4().hex}"
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._loop, name="kz-pg-listen", daemon=True)
        self._thread.start()

    def _bump(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen or self._stop.is_set(), timeout)

    def _loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))
            except psycopg.Error:
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            self._conn = conn
            try:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                conn.execute(f"LISTEN {self.wake_channel}")
                self._bump()  # anything sent while we were not listening: re-check
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        self._bump()
            except psycopg.Error:
                if self._stop.is_set():
                    break
                log.debug("listening connection lost; reconnecting")
            finally:
                self._conn = None
                try:
                    conn.close()
                except psycopg.Error:
                    pass

    def stop(self) -> None:
        """Ask the loop to end (close() waits for it)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._bump()
        self._thread.join(timeout=2.0)
