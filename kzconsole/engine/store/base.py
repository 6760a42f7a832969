"""The Store interface: everything the engine keeps durably, behind one documented API.

A store holds job records, engine leases (how one engine tells that another is dead) and trigger
firings. Job *files* (input and output CSVs, logs) live under the data dir and are referenced by
path from the records; the store never holds row data.

Every method is thread-safe and safe across processes sharing the same store: a command line, a
console and an engine process may use one store at once. Transient contention (SQLite's "database
is locked", a PostgreSQL serialization failure) is retried inside the store and never reaches the
caller; a store that cannot be used at all raises :class:`StoreError` with a message for the
operator. Backends: ``sqlite`` (default, one file under the data dir); a PostgreSQL backend for a
cluster of nodes implements the same methods with the same semantics, and the contract test suite
in ``tests/store/`` runs against every backend.

State changes that race between processes are compare-and-set: :meth:`Store.update_job` applies
its changes only when the record still matches ``expect``. That one primitive is how a job is
claimed by exactly one engine, stopped by a command line while an engine runs it, or resumed by a
second engine after the first died.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

from kzconsole.engine.models import EngineLease, Firing, JobRecord, JobStatus


class StoreError(Exception):
    """The store cannot be used (corrupt file, newer schema, unreachable server, ...)."""


class Store(abc.ABC):
    """Abstract store. See the module docstring for the guarantees every backend gives."""

    # ------------------------------------------------------------------ jobs

    @abc.abstractmethod
    def create_job(self, job: JobRecord) -> None:
        """Insert a new job. Raises StoreError if the id exists."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None."""

    @abc.abstractmethod
    def list_jobs(
        self,
        *,
        account_id: str | None = None,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        task: str | None = None,
        id_prefix: str | None = None,
    ) -> list[JobRecord]:
        """Jobs newest first (by ``created`` descending, then ``id`` descending), optionally
        narrowed to an account, one or several statuses, a ``task`` (a piece of
        ``category/action``, case-insensitive) and an ``id_prefix``, paged by ``limit``/``offset``."""

    @abc.abstractmethod
    def count_jobs(
        self,
        *,
        account_id: str | None = None,
        status: str | Iterable[str] | None = None,
        task: str | None = None,
        id_prefix: str | None = None,
    ) -> int:
        """How many jobs :meth:`list_jobs` would return without a limit."""

    @abc.abstractmethod
    def update_job(
        self, job_id: str, changes: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> JobRecord | None:
        """Compare-and-set: if the job exists and every ``expect`` field equals its stored value,
        apply ``changes`` (field name -> new value, any JobRecord field but ``id``) atomically and
        return the new record; otherwise change nothing and return None."""

    @abc.abstractmethod
    def delete_job(self, job_id: str, *, expect: Mapping[str, Any] | None = None) -> JobRecord | None:
        """Delete the job if it matches ``expect``; return the deleted record, or None."""

    @abc.abstractmethod
    def claim_queued(self, node: str, limit: int, now: float) -> list[JobRecord]:
        """Atomically take up to ``limit`` jobs that are ``pending`` with ``queued_at`` set, in
        ``queued_at`` order (then ``id``), and mark them ``executing`` with ``owner`` = ``node`` =
        ``node`` and ``start_timestamp`` = ``now``. Two engines calling this at once never get the
        same job. Returns the claimed records."""

    @abc.abstractmethod
    def jobs_in_status(self, status: str, *, owner: str | None = None) -> list[JobRecord]:
        """Every job in ``status`` (optionally only those owned by ``owner``), oldest first."""

    def data_version(self) -> int | None:
        """A number that changes whenever another connection committed a change, for cheap
        polling (SQLite's ``PRAGMA data_version``). None when the backend cannot tell (pollers
        then always re-read)."""
        return None

    # ---------------------------------------------------------------- engines

    @abc.abstractmethod
    def heartbeat(self, lease: EngineLease) -> None:
        """Insert or renew an engine's lease."""

    @abc.abstractmethod
    def remove_engine(self, node: str) -> None:
        """Forget an engine (graceful shutdown)."""

    @abc.abstractmethod
    def engines(self) -> list[EngineLease]:
        """Every engine lease, alive or expired."""

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
    def end_firing(
        self,
        firing_id: int,
        *,
        ended: float,
        status: str,
        reason: str | None,
        functions: Iterable[Mapping[str, Any]],
        databases: Iterable[Mapping[str, Any]] = (),
    ) -> Firing | None:
        """Complete a running firing. Returns the stored firing, or None if it does not exist."""

    @abc.abstractmethod
    def running_firings(self, trigger: str) -> list[Firing]:
        """Firings of ``trigger`` still ``running`` (their engine may have died: check leases)."""

    @abc.abstractmethod
    def list_firings(self, *, trigger: str | None = None, limit: int = 100) -> list[Firing]:
        """Firings newest first (by ``started`` descending, then id descending)."""

    @abc.abstractmethod
    def prune_firings(self, before: float) -> int:
        """Delete finished firings that started before ``before``; return how many."""

    # -------------------------------------------------------------- lifecycle

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def status_values(status: str | JobStatus | Iterable[str | JobStatus] | None) -> list[str] | None:
    """Normalise a status filter to a list of plain strings (None: no filter)."""
    if status is None:
        return None
    if isinstance(status, (str, JobStatus)):
        return [str(status)]
    return [str(s) for s in status]
