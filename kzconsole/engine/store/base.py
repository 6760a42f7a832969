"""The Store interface: everything the engine keeps durably, behind one documented API.

A store holds job records, the files of each job (its input, output, log and failed-row list),
engine leases (how one engine tells that another is dead), trigger firings, and a feed of the
changes made to all of these. Everything the engine, the command line, the console and the REST
API keep goes through this class; nothing reaches around it to a backend's files or tables.

Every method is thread-safe and safe across processes (and, for a server backend, across hosts)
sharing the same store: a command line, a console and an engine process may use one store at once.
Transient contention (SQLite's "database is locked", a PostgreSQL serialization failure) is retried
inside the store and never reaches the caller; a store that cannot be used at all raises
:class:`StoreError` with a message for the operator. Backends: ``sqlite`` (default, one file under
the data dir, the job files in a folder beside it) and ``postgresql`` (a cluster of nodes, the job
files in the database) implement the same methods with the same semantics; the contract test suite
``tests/store/contract.py`` runs unchanged against every backend.

**Compare-and-set.** State changes that race between processes are compare-and-set:
:meth:`Store.update_job` applies its changes only when the record still matches ``expect``. That one
primitive is how a job is claimed by exactly one engine, stopped by a command line while an engine
runs it, or resumed by a second engine after the first died.

**Fencing.** :attr:`JobRecord.claim <kzconsole.engine.models.JobRecord.claim>` is a counter that
every claim of a job increments (claiming a queued job, taking over a dead engine's job, running it
in the foreground). An engine passes the claim it got with every write about a job it runs: as
``expect={"claim": n, ...}`` to :meth:`update_job`, and as ``claim=n`` to :meth:`append_file`, which
raises :class:`Fenced` when the job's claim is no longer ``n``. So an engine frozen past its lease
can never write a row twice once another engine took its job over.

**Clock.** :meth:`Store.now` is the store's clock. Leases, heartbeats and anything else compared
across processes are taken on it, never on a process's own clock.

**Changes feed.** Every store handle has an :attr:`Store.origin`, unique to that handle (two handles
in one process have two origins). Every write about a job, a firing, an engine or a plugin load
error, and the removal of an API key, records a :class:`StoreChange` in the same transaction; :meth:`changes` lists those committed
after a position and :meth:`wait_changes` blocks until there are some. That is how one process
learns what the others changed, and which jobs, without re-reading everything.
"""

from __future__ import annotations

import abc
import functools
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from kzconsole.engine.models import JOB_FIELDS, PUBLIC_JOB_KEYS, EngineLease, Firing, JobRecord, Takeover
from kzconsole.engine.store.job_query import InvalidQuery, JobQuery
from kzconsole.engine.store.query import JobRows, check_columns, check_epoch, rows_from_records

__all__ = [
    "Store",
    "StoreError",
    "InvalidQuery",
    "JobQuery",
    "JobRows",
    "Fenced",
    "StoreChange",
    "ApiKey",
    "Claim",
    "JobStep",
    "FILE_KINDS",
    "CHANGE_KINDS",
    "check_append",
    "check_kind",
    "redact_url",
]

#: The files a job may have. ``input``: the stored input CSV (written once, by :meth:`Store.create_job`).
#: ``output``: the output CSV. ``log``: the job's log (UTF-8 lines). ``failed``: the input row
#: numbers (1-based data rows, one decimal number and ``\n`` per failed row) whose outcome was a
#: failure, for re-running only those rows.
FILE_KINDS = ("input", "output", "log", "failed")

#: The kinds of :class:`StoreChange`.
#:
#: - ``job``: a job was created, or its record changed (claimed, checkpointed, stopped, finished...);
#: - ``deleted``: a job was removed (with its files);
#: - ``log``: a job's log grew (output growth is announced by the ``job`` change of the checkpoint
#:   that counts it);
#: - ``firing``: a trigger firing began, ended or was recorded;
#: - ``engine``: an engine joined or left the store (lease inserted or removed; renewals are not
#:   changes);
#: - ``plugin``: a plugin load error was recorded or cleared (backends that store them);
#: - ``api_key``: an API key was removed, with its tokens (``job_id`` is None);
#: - ``reset``: the reader fell so far behind that changes were pruned before it read them: re-read
#:   everything (``job_id`` is None).
CHANGE_KINDS = ("job", "deleted", "log", "firing", "engine", "plugin", "api_key", "reset")


class StoreError(Exception):
    """The store cannot be used (corrupt file, newer schema, unreachable server, ...)."""


class Fenced(StoreError):
    """A write about a job was refused because the job's ``claim`` is no longer the writer's:
    another engine took the job over (or it was removed). The writer must drop the job."""


@dataclass(frozen=True)
class StoreChange:
    """One committed write, as the changes feed reports it. ``origin`` is the :attr:`Store.origin`
    of the handle that wrote it; ``job_id`` is None for changes not about one job."""

    kind: str
    job_id: str | None
    origin: str


# ------------------------------------------------------------------ API keys (owner: api)


@dataclass(frozen=True)
class ApiKey:
    """A key of the REST API (contract 8.2). Only ``key_hash`` (the SHA-256 hex digest of the
    key) is stored: the key itself is shown once, when it is made, and never kept."""

    id: str  # 32 lowercase hex characters
    account_id: str
    name: str | None
    superadmin: bool
    created: float
    key_hash: str

    def public(self) -> dict[str, Any]:
        """What ``api-keys list --json`` shows (never the hash)."""
        return {key: getattr(self, key) for key in ("id", "account_id", "name", "superadmin", "created")}


@dataclass(frozen=True)
class Claim:
    """Who takes queued jobs, and which (:meth:`Store.claim_queued`): ``node`` is the claiming
    engine's id (the jobs' ``owner``), ``name`` its node name (the jobs' ``node``; default
    ``node``), ``now`` their ``start_timestamp`` (default: :meth:`Store.now`); ``tasks`` and
    ``served`` narrow the claim (see there)."""

    node: str
    limit: int
    now: float | None = None
    name: str | None = None
    tasks: Collection[str] | None = None
    served: Collection[str] | None = None

    @property
    def node_name(self) -> str:
        return self.name or self.node


@dataclass(frozen=True)
class JobStep:
    """One step of a running job, for :meth:`Store.save_job`: ``appends`` (kind -> (offset,
    data), each as :meth:`Store.append_file` with ``claim`` and ``sync``), then ``changes`` if
    the record matches ``expect`` (as :meth:`Store.update_job`), then ``claim_next``.

    ``overlap`` (a running job's checkpoints): the backend may send the step and return before
    the server answers, so that the run goes on meanwhile. It then returns the record as of the
    job's previous step, and this step's outcome comes with the job's next write from the same
    thread (its next step or append): a refusal of this step is that write's (``Fenced``, or no
    match), and so is a failure (``StoreError``: the caller stores both steps' appends again, at
    their offsets). A backend that does not overlap ignores it."""

    changes: Mapping[str, Any]
    expect: Mapping[str, Any]
    appends: Mapping[str, tuple[int | None, bytes]] = field(default_factory=dict)
    claim: int | None = None
    sync: bool = False
    claim_next: Claim | None = None
    overlap: bool = False


class Store(abc.ABC):
    """Abstract store. See the module docstring for the guarantees every backend gives."""

    #: Unique to this handle (not shared with another handle, in this process or any other).
    origin: str

    # (api) What a reader may rely on; the REST API reads in its event loop and keeps listing
    # pages in memory only where these hold (kzconsole/api/app.py).
    #: A read never waits for another process or a network: it may run on an event loop.
    local_reads: bool = False
    #: ``changes(None)`` moves at every commit that records a change, at once and in commit order:
    #: a reader that sees the position it saw before a read has missed no commit since that read.
    ordered_changes: bool = False

    # ------------------------------------------------------------------ clock

    @abc.abstractmethod
    def now(self) -> float:
        """Unix seconds on the store's clock (SQLite: this host's clock, or the clock the store
        was opened with; PostgreSQL: the server's ``clock_timestamp()``)."""

    # ------------------------------------------------------------------ jobs

    @abc.abstractmethod
    def create_job(self, job: JobRecord, input: BinaryIO | None = None) -> None:
        """Insert a new job and, when ``input`` is given, store it as the job's ``input`` file:
        both or neither (if storing the input fails, no record exists). ``input`` is read to its
        end in constant memory (not closed). Raises StoreError if the id exists."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None."""

    # ------------------------------------------------- jobs: queries (store/job_query.py)

    @abc.abstractmethod
    def list_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> list[JobRecord]:
        """The jobs ``query`` selects, in its order, its page (see :class:`JobQuery`: filters,
        sort, ``after``/``offset``/``limit``). ``fields`` build the query, or change the one given:
        ``list_jobs(status="pending", limit=10)``. By default: every job, newest first (``created``
        descending, then ``id`` descending). Raises :class:`InvalidQuery` for a bad field."""

    @abc.abstractmethod
    def count_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> int:
        """How many jobs the query's filters match (its order and paging do not count)."""

    def iter_jobs(
        self, query: JobQuery | None = None, columns: Sequence[str] = JOB_FIELDS, /, **fields: Any
    ) -> JobRows:
        """The jobs :meth:`list_jobs` would return, as plain tuples of ``columns`` (JobRecord field
        names; ``status`` as its string, flags as bools), streamed: read in batches as the rows are
        consumed, in constant memory, however many jobs there are (``tasks list``, the API's
        unpaged listing). Bad arguments raise at once, not at the first row. Close the returned
        :class:`JobRows` (``with store.iter_jobs(...) as rows:``) when not reading it to its end;
        closing the store ends it too (the next row raises :class:`StoreError`)."""
        return self._iter_jobs(JobQuery.of(query, **fields), check_columns(columns))

    @abc.abstractmethod
    def _iter_jobs(self, query: JobQuery, names: tuple[str, ...]) -> JobRows:
        """What a backend does for :meth:`iter_jobs`: the query built, the columns checked."""

    def iter_job_documents(
        self,
        query: JobQuery | None = None,
        /,
        *,
        epoch: int = 0,
        nulls: bool = True,
        columns: Sequence[str] = (),
        **fields: Any,
    ) -> JobRows:
        """The jobs :meth:`iter_jobs` would stream, each as a row: the text of one JSON object equal
        to its ``JobRecord.public()`` (``tasks list --json``), its members in that order, then the
        values of ``columns`` as :meth:`iter_jobs` gives them; streamed the same way.

        (api) ``epoch`` is added to the three times (whole seconds), and with ``nulls`` false a
        member whose value is null is left out: the REST API's ``task`` (Gregorian seconds, no
        nulls), which a listing page then answers with one value a job from the store, not a
        Python object per column. This default encodes :meth:`iter_jobs`' rows; a backend whose
        database writes JSON builds them there."""
        epoch = check_epoch(epoch)
        names = check_columns(columns) if columns else ()
        rows = self.iter_jobs(query, (*PUBLIC_JOB_KEYS, *names), **fields)
        return JobRows(_documents(rows, epoch, bool(nulls)))

    def job_documents(
        self, ids: Collection[str], /, *, epoch: int = 0, nulls: bool = True, columns: Sequence[str] = ()
    ) -> dict[str, tuple[Any, ...]]:
        """(api) The jobs of ``ids`` that exist, by id in the order asked, each as the row
        :meth:`iter_job_documents` gives it with the same options: what the REST API reads of the
        jobs a listing page holds that it has not kept (``kzconsole.api.listing_cache``), where
        the page's other jobs cost it only their keys."""
        names = check_columns(columns) if columns else ()
        return self._job_documents(list(dict.fromkeys(ids)), check_epoch(epoch), bool(nulls), names)

    def _job_documents(
        self, ids: list[str], epoch: int, nulls: bool, names: tuple[str, ...]
    ) -> dict[str, tuple[Any, ...]]:
        """What a backend does for :meth:`job_documents`: the ids without repeats, the options
        checked. This default reads each record; a backend whose database writes JSON reads them
        in one statement there."""
        records = [job for job_id in ids if (job := self.get_job(job_id)) is not None]
        rows = JobRows(rows_from_records(records, (*PUBLIC_JOB_KEYS, *names)))
        return {job.id: row for job, row in zip(records, _documents(rows, epoch, nulls), strict=True)}

    @abc.abstractmethod
    def update_job(
        self, job_id: str, changes: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> JobRecord | None:
        """Compare-and-set: if the job exists and every ``expect`` field equals its stored value,
        apply ``changes`` (field name -> new value, any JobRecord field but ``id``) atomically and
        return the new record; otherwise change nothing and return None. With no ``changes`` it
        only reports whether the record matches (and records no change)."""

    @abc.abstractmethod
    def delete_job(self, job_id: str, *, expect: Mapping[str, Any] | None = None) -> JobRecord | None:
        """Delete the job and its files if it matches ``expect``; return the deleted record, or
        None (nothing deleted)."""

    def claim_queued(
        self,
        node: str,
        limit: int,
        now: float | None = None,
        *,
        name: str | None = None,
        tasks: Collection[str] | None = None,
        served: Collection[str] | None = None,
    ) -> list[JobRecord]:
        """Atomically take up to ``limit`` jobs that are ``pending`` with ``queued_at`` set, in
        ``queued_at`` order (then ``id``), and mark them ``executing`` with ``owner`` = ``node``
        (the claiming engine's id), ``node`` = ``name`` (its node name; default ``node``),
        ``start_timestamp`` = ``now`` (default: :meth:`now`), ``queued_at`` kept, and ``claim``
        incremented. Two engines calling this at once never get the same job. Returns the
        claimed records.

        ``tasks`` (``"category/action"`` names; None: any) narrows the claim to the jobs whose
        task the engine has; with ``served`` (the tasks of every live engine), jobs whose task is
        in none of them are claimed too, so that the claiming engine ends them ``internal_error``
        instead of leaving them queued for ever (contract 9)."""
        if limit <= 0:
            return []
        return self._claim_queued(Claim(node, limit, now, name, tasks, served))

    @abc.abstractmethod
    def _claim_queued(self, claim: Claim) -> list[JobRecord]:
        """What a backend does for :meth:`claim_queued`, called with ``claim.limit`` > 0."""

    def save_job(self, job_id: str, step: JobStep) -> tuple[JobRecord | None, list[JobRecord]]:
        """One step of a running job (a checkpoint, its end), in as few writes as the backend
        can make it: append to the job's files (``Fenced``, with nothing changed, when the
        claim is gone); then apply the changes if the record matches; then claim the next queued
        jobs (``step.claim_next``). Returns (the updated record, or None when it did not match;
        the jobs claimed).

        This default calls those methods in turn. A backend may override it to do all of it in
        one transaction (the SQLite store does: it is most of a tiny job's cost); the outcome must
        be the same, but for atomicity."""
        for kind, (offset, data) in step.appends.items():
            self.append_file(job_id, kind, data, offset=offset, claim=step.claim, sync=step.sync)
        updated = self.update_job(job_id, step.changes, expect=step.expect)
        c = step.claim_next
        claimed = (
            [] if c is None else self.claim_queued(c.node, c.limit, c.now, name=c.name, tasks=c.tasks, served=c.served)
        )
        return updated, claimed

    @abc.abstractmethod
    def jobs_in_status(self, status: str, *, owner: str | None = None) -> list[JobRecord]:
        """Every job in ``status`` (optionally only those owned by ``owner``), oldest first."""

    # ------------------------------------------------------------- job files

    def append_file(
        self,
        job_id: str,
        kind: str,
        data: bytes,
        *,
        offset: int | None = None,
        claim: int | None = None,
        sync: bool = False,
    ) -> int:
        """Append ``data`` to the job's file of ``kind`` (one of :data:`FILE_KINDS`; a missing
        file is created) and return the file's new size in bytes.

        With ``offset``, what is stored at or after ``offset`` is dropped first (a resumed run cuts
        its output back to its last checkpoint); an ``offset`` beyond the stored size raises
        StoreError (bytes the caller counts on are gone). With ``claim``, the write happens only
        if the job's ``claim`` equals it, atomically with respect to claims: otherwise (or if the
        job does not exist) nothing is written and :class:`Fenced` is raised. With ``sync``, the
        file is durable (on disk, or committed) when this returns; without it, a crash of the
        machine (not of the process) may lose the last appends. An unknown job without ``claim``
        is a StoreError. Any other failure to store the data is a StoreError (the caller may fall
        back: contract 4.3)."""
        check_append(kind, offset, "append_file")
        return self._append_file(job_id, kind, data, offset, claim, sync)

    @abc.abstractmethod
    def _append_file(
        self, job_id: str, kind: str, data: bytes, offset: int | None, claim: int | None, sync: bool
    ) -> int:
        """What a backend does for :meth:`append_file`, its arguments checked
        (:func:`check_append`)."""

    @abc.abstractmethod
    def open_file(self, job_id: str, kind: str) -> BinaryIO | None:
        """A seekable binary reader of the job's file of ``kind``, or None when it has none.
        Reading uses constant memory; ``seek(0, io.SEEK_END)`` gives the size stored when it was
        opened or later (a running job's output grows). The caller closes it."""

    @abc.abstractmethod
    def file_size(self, job_id: str, kind: str) -> int | None:
        """The stored size of the job's file of ``kind`` in bytes, or None when it has none."""

    # ---------------------------------------------------------------- engines

    @abc.abstractmethod
    def heartbeat(self, lease: EngineLease) -> None:
        """Insert or renew an engine's lease (inserting it records an ``engine`` change)."""

    @abc.abstractmethod
    def remove_engine(self, node: str) -> None:
        """Forget an engine (graceful shutdown)."""

    @abc.abstractmethod
    def engines(self) -> list[EngineLease]:
        """Every engine lease, alive or expired."""

    @abc.abstractmethod
    def record_takeover(self, takeover: Takeover) -> None:
        """Record that an engine resumed (or ended) a job a dead engine left (``kzconsole
        nodes`` shows what was resumed elsewhere when an engine died)."""

    @abc.abstractmethod
    def takeovers(self, *, from_engine: str | None = None, limit: int = 100) -> list[Takeover]:
        """Takeovers newest first (by ``at`` descending), optionally of one dead engine's jobs."""

    # --------------------------------------------------------------- triggers

    @abc.abstractmethod
    def begin_firing(self, trigger: str, key: str, node: str, started: float) -> Firing | None:
        """Record that ``node`` starts the firing ``key`` of ``trigger`` (status ``running``).
        Returns None, and records nothing, if a firing with the same trigger and key exists:
        another engine took it, so each firing runs once across the engines on this store."""

    @abc.abstractmethod
    def record_firing(self, firing: Firing) -> Firing:
        """Store a finished or skipped firing as given (its ``id`` is ignored and assigned) and
        return it with its id. Used for skipped firings and by backends' tests."""

    @abc.abstractmethod
    def end_firing(self, firing: Firing) -> Firing | None:
        """Complete a running firing: ``firing`` is the one :meth:`begin_firing` gave, as it
        ended (its ``ended``, ``status``, ``reason``, ``functions`` and ``databases`` are stored;
        its ``id`` says which). Returns the stored firing, or None if it does not exist."""

    @abc.abstractmethod
    def running_firings(self, trigger: str) -> list[Firing]:
        """Firings of ``trigger`` still ``running`` (their engine may have died: check leases)."""

    @abc.abstractmethod
    def list_firings(self, *, trigger: str | None = None, limit: int = 100) -> list[Firing]:
        """Firings newest first (by ``started`` descending, then id descending)."""

    @abc.abstractmethod
    def prune_firings(self, before: float) -> int:
        """Delete finished firings that started before ``before``; return how many."""

    # ---------------------------------------------------------- changes feed

    @abc.abstractmethod
    def changes(self, after: int | None) -> tuple[int, list[StoreChange]]:
        """The changes committed after position ``after``, oldest first, and the position to
        pass next time. ``after=None``: no changes, just the current position (where a reader
        starts). Positions are opaque increasing integers of this store. A reader whose position
        is so old that the changes after it were pruned gets one ``reset`` change."""

    @abc.abstractmethod
    def wait_changes(self, after: int, timeout: float) -> tuple[int, list[StoreChange]]:
        """As :meth:`changes`, but wait up to ``timeout`` seconds for at least one change (of any
        origin) to be committed after ``after``; on timeout return ``(after, [])``."""

    # ------------------------------------------------------- API keys (owner: api)
    #
    # Keys and the tokens ``PUT /v2/api_auth`` hands out live in the store, so every node sharing
    # it accepts them. Tokens are stored by hash too, and die with their key.

    @abc.abstractmethod
    def add_api_key(self, key: ApiKey) -> None:
        """Store a new key. Raises StoreError if its id or its hash exists."""

    @abc.abstractmethod
    def api_keys(self) -> list[ApiKey]:
        """Every key, oldest first (by ``created``, then ``id``)."""

    @abc.abstractmethod
    def api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""

    @abc.abstractmethod
    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose hash this is, or None."""

    @abc.abstractmethod
    def remove_api_key(self, key_id: str) -> ApiKey | None:
        """Delete the key and every token it gave; return the removed key, or None. A removal
        records an ``api_key`` change in the feed (job_id None)."""

    @abc.abstractmethod
    def add_api_token(self, token_hash: str, key_id: str, ttl_s: float) -> float | None:
        """Store a token (by hash) given by the key ``key_id``, valid for ``ttl_s`` seconds from
        now on the store's clock (:meth:`now`: every node judges it by the same clock). Returns
        when it expires, or None, and nothing stored, when the key does not exist (removed
        meanwhile)."""

    @abc.abstractmethod
    def api_token(self, token_hash: str) -> tuple[ApiKey, float] | None:
        """The key behind a token and when the token expires, or None when the token is unknown,
        expired (its expiry is not after the store's :meth:`now`), or its key was removed."""

    @abc.abstractmethod
    def prune_api_tokens(self) -> int:
        """Delete the tokens expired by the store's clock; return how many."""

    # -------------------------------------------------------------- lifecycle

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs: the one in the user part
    (``postgresql://kz:SECRET@host/db``) and libpq's ``password`` parameter in the query
    (``postgresql://kz@host/db?password=SECRET``). The rest is kept as written."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "postgresql://..."
    if password is not None:
        user = (parts.username or "") + ":***"
        host = parts.netloc.rsplit("@", 1)[-1]
        url = url.replace(parts.netloc, f"{user}@{host}", 1)
    base, mark, query = url.partition("?")
    if not mark:
        return url
    items = [
        (item.partition("=")[0] + "=***") if item.partition("=")[0].strip().lower() == "password" else item
        for item in query.split("&")
    ]
    return f"{base}?{'&'.join(items)}"


def check_kind(kind: str) -> None:
    """Raise ValueError unless ``kind`` is one of :data:`FILE_KINDS` (for backends)."""
    if kind not in FILE_KINDS:
        raise ValueError(f"unknown job file kind {kind!r} (expected one of {', '.join(FILE_KINDS)})")


def check_append(kind: str, offset: int | None, method: str) -> None:
    """Raise ValueError unless an append to a file of ``kind`` at ``offset`` can be asked for:
    :meth:`Store.append_file`'s, and those of a step's ``appends`` a backend's own
    :meth:`Store.save_job` makes (``method`` names the call in the message)."""
    check_kind(kind)
    if offset is not None and offset < 0:
        raise ValueError(f"{method}: offset must be >= 0, not {offset}")


_PUBLIC_TIMES = tuple(
    i for i, key in enumerate(PUBLIC_JOB_KEYS) if key in ("created", "start_timestamp", "end_timestamp")
)
_PUBLIC_WIDTH = len(PUBLIC_JOB_KEYS)


def _documents(rows: JobRows, epoch: int = 0, nulls: bool = True) -> Iterator[tuple[Any, ...]]:
    """``iter_job_documents`` from public rows (then the caller's columns): the record
    ``public()`` gives, its times moved by ``epoch``, its nulls left out unless ``nulls``."""
    encode: Callable[[dict[str, Any]], str] = functools.partial(json.dumps, ensure_ascii=False)
    if not nulls:
        # (api) The REST API's listing (PostgreSQL's pages come here): orjson, a tenth of the
        # standard library's time a job, as the API encoded these before the store did. Imported
        # here, as the API does, so that nothing else pays for it. (`tasks list --json` keeps the
        # standard library's text.)
        import orjson

        def encode(doc: dict[str, Any]) -> str:
            return orjson.dumps(doc).decode()

    with rows:
        for row in rows:
            values = list(row[:_PUBLIC_WIDTH])
            for i in _PUBLIC_TIMES:
                if values[i] is not None:
                    values[i] = int(values[i]) + epoch
            doc = dict(zip(PUBLIC_JOB_KEYS, values, strict=True))
            if not nulls:
                doc = {key: value for key, value in doc.items() if value is not None}
            yield (encode(doc), *row[_PUBLIC_WIDTH:])
