"""What the two SQL stores (``sqlite.py``, ``postgres.py``) share: how a record maps to its row,
and every method whose SQL and logic are the same on both but for the placeholders.

:class:`SQLStore` is the base of both backends. It is written against two things each backend
gives: ``_run(doing, fn, *, write, exactly_once)`` (run ``fn(handle)`` in one transaction, or as
autocommit reads, retrying what is transient; ``handle.execute(sql, params)`` returns a cursor)
and ``_record(handle, kind, job_id)`` (note a change for the feed in that transaction). Shared SQL
is written with ``?`` placeholders; :meth:`SQLStore._sql` puts the backend's own in (none of it
holds a literal ``?`` or ``%``). The job listings' SQL is :mod:`.query`'s.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from kzconsole.engine.models import JOB_FIELDS, Firing, JobRecord, JobStatus, Takeover
from kzconsole.engine.store.base import ApiKey, Store, StoreError
from kzconsole.engine.store.job_query import JobQuery
from kzconsole.engine.store.query import Dialect, count_statement

__all__ = [
    "API_KEY_COLUMNS",
    "NewerSchema",
    "FIRING_COLUMNS",
    "FLAG_FIELDS",
    "JOB_COLUMNS",
    "SQLStore",
    "TAKEOVER_COLUMNS",
    "api_key_from_row",
    "check_fields",
    "firing_from_row",
    "job_from_row",
    "json_list",
    "with_flags",
]

T = TypeVar("T")

JOB_COLUMNS = ", ".join(JOB_FIELDS)
FLAG_FIELDS = frozenset({"stop_requested", "resumable", "finishing"})  # JobRecord's booleans
FIRING_COLUMNS = ", ".join(field.name for field in dataclasses.fields(Firing))  # firing_from_row reads them in order
TAKEOVER_COLUMNS = "job_id, from_engine, to_engine, to_name, at, rows_done, outcome"
API_KEY_COLUMNS = "id, account_id, name, superadmin, created, key_hash"  # ApiKey's field order

# JOB_FIELDS is JobRecord's field order (models builds it from the dataclass), so a record is
# read and written positionally: these run for every job read or written, several times a job.
_JOB_FIELD_SET = frozenset(JOB_FIELDS)
_STATUS_INDEX = JOB_FIELDS.index("status")
_FLAG_INDEXES = tuple(JOB_FIELDS.index(field) for field in sorted(FLAG_FIELDS))
_job_attributes = operator.attrgetter(*JOB_FIELDS)


# ------------------------------------------------------------------------------ value mapping


def job_from_row(row: Sequence[Any]) -> JobRecord:
    """A record from its columns in JOB_FIELDS order (SQLite's flags are integers)."""
    values = list(row)
    values[_STATUS_INDEX] = JobStatus(values[_STATUS_INDEX])
    for i in _FLAG_INDEXES:
        values[i] = bool(values[i])
    return JobRecord(*values)


def with_flags(row: tuple[Any, ...], flags: Sequence[int]) -> tuple[Any, ...]:
    """``row`` with the values at ``flags`` as bools (a streamed listing's flag columns)."""
    values = list(row)
    for i in flags:
        values[i] = bool(values[i])
    return tuple(values)


def check_fields(names: Iterable[str], what: str, *, allow_id: bool) -> None:
    for name in names:
        if name not in _JOB_FIELD_SET or (name == "id" and not allow_id):
            raise ValueError(f"{what}: {name!r} is not a JobRecord field that can be used here")


def json_list(items: Iterable[Mapping[str, Any]]) -> str:
    # default=str: a stray non-JSON value (an exception object) must not lose the whole firing.
    return json.dumps([dict(item) for item in items], default=str)


def firing_from_row(row: Sequence[Any]) -> Firing:
    fid, trigger, key, node, started, ended, status, reason, functions, databases = row
    calls, passes = tuple(json.loads(functions)), tuple(json.loads(databases))
    return Firing(int(fid), trigger, key, node, started, ended, status, reason, calls, passes)


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    key_id, account_id, name, superadmin, created, key_hash = row
    return ApiKey(key_id, account_id, name, bool(superadmin), created, key_hash)


@functools.lru_cache(maxsize=256)
def _placed(text: str, placeholder: str) -> str:
    return text if placeholder == "?" else text.replace("?", placeholder)


class NewerSchema(Exception):
    """A store's schema version is newer than this kzconsole's (raised inside a migration)."""

    def __init__(self, version: int) -> None:
        self.version = version


class Handle(Protocol):
    """What ``_run`` hands its function: a connection (SQLite) or a transaction (PostgreSQL)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


# -------------------------------------------------------------------------------------- store


class SQLStore(Store):
    """The methods both SQL backends implement alike (see the module docstring)."""

    dialect: Dialect  # the backend's: its placeholder, and how store/query.py writes its SQL
    flags_as_integers = False  # SQLite has no boolean type: its flag columns hold 0 and 1
    display: str  # the store's name in messages (a path, or a URL without its password)

    @abc.abstractmethod
    def _run(self, doing: str, fn: Callable[[Any], T], *, write: bool = False, exactly_once: bool = False) -> T:
        """Run ``fn(handle)`` in one transaction (``write``) or as autocommit reads.
        ``exactly_once``: a write whose commit may have happened though its answer was lost is
        not run again (PostgreSQL looks it up; a SQLite commit's answer cannot be lost)."""

    @abc.abstractmethod
    def _record(self, handle: Any, kind: str, job_id: str | None = None) -> None:
        """Record a change for the feed, in ``handle``'s write transaction."""

    @abc.abstractmethod
    def _now_sql(self) -> tuple[str, list[Any]]:
        """:meth:`now` as an SQL term and its parameters (a value, or the server's own clock)."""

    @abc.abstractmethod
    def _is_duplicate(self, exc: BaseException | None) -> bool:
        """Whether a failed insert broke a unique constraint."""

    def _sql(self, text: str) -> str:
        """Shared SQL (written with ``?``) in this backend's placeholders."""
        return _placed(text, self.dialect.placeholder)

    def _check_schema(self, version: int, supported: int) -> None:
        """Refuse a store a newer kzconsole made: it is never touched."""
        if version > supported:
            raise StoreError(
                f"{self.display}: schema version {version} is newer than this kzconsole supports"
                f" ({supported}); upgrade kzconsole or use another store"
            )

    # ------------------------------------------------------------------ value mapping

    def _encode(self, field: str, value: Any) -> Any:
        """A JobRecord field value as stored in its column."""
        if value is None:
            return None
        if field == "status":
            # Validates too: an unknown status must not reach the table.
            return JobStatus(value).value
        if self.flags_as_integers and field in FLAG_FIELDS:
            return 1 if value else 0
        return value

    def job_values(self, job: JobRecord) -> list[Any]:
        """The job's column values, in JOB_FIELDS order (what _encode gives for each field)."""
        values = list(_job_attributes(job))
        status = values[_STATUS_INDEX]
        if status is not None:
            values[_STATUS_INDEX] = JobStatus(status).value
        if self.flags_as_integers:
            for i in _FLAG_INDEXES:
                if values[i] is not None:
                    values[i] = 1 if values[i] else 0
        return values

    def _where(self, job_id: str, expect: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        """``id = ? AND col = ? AND col IS NULL ...`` for a compare-and-set."""
        mark = self.dialect.placeholder
        clauses = [f"id = {mark}"]
        params: list[Any] = [job_id]
        for field, value in (expect or {}).items():
            if value is None:
                clauses.append(f"{field} IS NULL")
            else:
                clauses.append(f"{field} = {mark}")
                params.append(self._encode(field, value))
        return " AND ".join(clauses), params

    # ------------------------------------------------------------------ jobs

    def get_job(self, job_id: str) -> JobRecord | None:
        sql = self._sql(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?")

        def select(handle: Handle) -> JobRecord | None:
            row = handle.execute(sql, (job_id,)).fetchone()
            return job_from_row(row) if row else None

        return self._run(f"reading job {job_id!r}", select)

    def count_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> int:
        statement = count_statement(JobQuery.of(query, **fields), self.dialect)
        if statement is None:
            return 0
        sql, params = statement.sql, statement.params

        def count(handle: Handle) -> int:
            row = handle.execute(sql, params).fetchone()
            return int(row[0]) if row else 0

        return self._run("counting jobs", count)

    def jobs_in_status(self, status: str, *, owner: str | None = None) -> list[JobRecord]:
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = ?"
        params: list[Any] = [self._encode("status", status)]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        sql = self._sql(sql + " ORDER BY created, id")

        def select(handle: Handle) -> list[JobRecord]:
            return [job_from_row(row) for row in handle.execute(sql, params).fetchall()]

        return self._run(f"listing {status} jobs", select)

    def _newest(
        self,
        doing: str,
        table: str,
        columns: str,
        where: tuple[str, Any] | None,
        order: str,
        limit: int,
        make: Callable[[Sequence[Any]], T],
    ) -> list[T]:
        """The newest ``limit`` rows of a history table (firings, takeovers), optionally only
        those whose column ``where[0]`` is ``where[1]``."""
        if limit <= 0:
            return []
        sql = f"SELECT {columns} FROM {table}"
        params: list[Any] = []
        if where is not None:
            sql += f" WHERE {where[0]} = ?"
            params.append(where[1])
        sql = self._sql(f"{sql} ORDER BY {order} LIMIT ?")
        params.append(limit)

        def select(handle: Handle) -> list[T]:
            return [make(row) for row in handle.execute(sql, params).fetchall()]

        return self._run(doing, select)

    # ---------------------------------------------------------------- engines

    def remove_engine(self, node: str) -> None:
        sql = self._sql("DELETE FROM engines WHERE node = ?")

        def delete(handle: Handle) -> None:
            if handle.execute(sql, (node,)).rowcount:
                self._record(handle, "engine")

        self._run(f"removing engine {node!r}", delete, write=True)

    def record_takeover(self, takeover: Takeover) -> None:
        sql = self._sql(f"INSERT INTO takeovers ({TAKEOVER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)")
        values = (
            takeover.job_id,
            takeover.from_engine,
            takeover.to_engine,
            takeover.to_name,
            takeover.at,
            takeover.rows_done,
            takeover.outcome,
        )

        def insert(handle: Handle) -> None:
            handle.execute(sql, values)
            self._record(handle, "engine")

        self._run(f"recording the takeover of job {takeover.job_id!r}", insert, write=True, exactly_once=True)

    def takeovers(self, *, from_engine: str | None = None, limit: int = 100) -> list[Takeover]:
        where = None if from_engine is None else ("from_engine", from_engine)
        return self._newest(
            "listing takeovers",
            "takeovers",
            TAKEOVER_COLUMNS,
            where,
            "at DESC, id DESC",
            limit,
            lambda row: Takeover(*row),
        )

    # --------------------------------------------------------------- triggers

    def begin_firing(self, trigger: str, key: str, node: str, started: float) -> Firing | None:
        sql = self._sql(
            "INSERT INTO firings (trigger, key, node, started, status) VALUES (?, ?, ?, ?, 'running')"
            f" ON CONFLICT (trigger, key) DO NOTHING RETURNING {FIRING_COLUMNS}"
        )

        def insert(handle: Handle) -> Firing | None:
            row = handle.execute(sql, (trigger, key, node, started)).fetchone()
            if row is None:
                return None
            self._record(handle, "firing")
            return firing_from_row(row)

        return self._run(f"starting firing {key!r} of trigger {trigger!r}", insert, write=True, exactly_once=True)

    def record_firing(self, firing: Firing) -> Firing:
        sql = self._sql(
            "INSERT INTO firings (trigger, key, node, started, ended, status, reason, functions, databases)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trigger, key) DO NOTHING RETURNING {FIRING_COLUMNS}"
        )
        values = (
            firing.trigger,
            firing.key,
            firing.node,
            firing.started,
            firing.ended,
            firing.status,
            firing.reason,
            json_list(firing.functions),
            json_list(firing.databases),
        )
        recorded = self._sql(f"SELECT {FIRING_COLUMNS} FROM firings WHERE trigger = ? AND key = ?")

        def insert(handle: Handle) -> Firing:
            row = handle.execute(sql, values).fetchone()
            if row is None:
                # Another engine recorded this firing first (two engines skipping the same
                # boundary): the firing is recorded once, and that record is the answer.
                row = handle.execute(recorded, (firing.trigger, firing.key)).fetchone()
            else:
                self._record(handle, "firing")
            return firing_from_row(row)

        return self._run(f"recording a firing of trigger {firing.trigger!r}", insert, write=True)

    def end_firing(self, firing: Firing) -> Firing | None:
        sql = self._sql(
            "UPDATE firings SET ended = ?, status = ?, reason = ?, functions = ?, databases = ?"
            f" WHERE id = ? RETURNING {FIRING_COLUMNS}"
        )
        params = (
            firing.ended,
            firing.status,
            firing.reason,
            json_list(firing.functions),
            json_list(firing.databases),
            firing.id,
        )

        def update(handle: Handle) -> Firing | None:
            row = handle.execute(sql, params).fetchone()
            if row is None:
                return None
            self._record(handle, "firing")
            return firing_from_row(row)

        return self._run(f"ending firing {firing.id}", update, write=True)

    def running_firings(self, trigger: str) -> list[Firing]:
        sql = self._sql(
            f"SELECT {FIRING_COLUMNS} FROM firings WHERE trigger = ? AND status = 'running' ORDER BY started, id"
        )

        def select(handle: Handle) -> list[Firing]:
            return [firing_from_row(row) for row in handle.execute(sql, (trigger,)).fetchall()]

        return self._run(f"listing running firings of trigger {trigger!r}", select)

    def list_firings(self, *, trigger: str | None = None, limit: int = 100) -> list[Firing]:
        where = None if trigger is None else ("trigger", trigger)
        return self._newest(
            "listing firings", "firings", FIRING_COLUMNS, where, "started DESC, id DESC", limit, firing_from_row
        )

    def prune_firings(self, before: float) -> int:
        sql = self._sql("DELETE FROM firings WHERE started < ? AND status <> 'running'")

        def delete(handle: Handle) -> int:
            count = int(handle.execute(sql, (before,)).rowcount)
            if count:
                self._record(handle, "firing")
            return count

        return self._run("pruning firings", delete, write=True)

    # ------------------------------------------------------- API keys (owner: api)

    def add_api_key(self, key: ApiKey) -> None:
        sql = self._sql(f"INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)")
        superadmin = int(key.superadmin) if self.flags_as_integers else key.superadmin
        values = (key.id, key.account_id, key.name, superadmin, key.created, key.key_hash)

        def insert(handle: Handle) -> None:
            handle.execute(sql, values)

        try:
            self._run(f"adding API key {key.id!r}", insert, write=True)
        except StoreError as exc:
            if self._is_duplicate(exc.__cause__):
                raise StoreError(
                    f"API key {key.id!r} (or its hash) already exists in {self.display}"
                ) from exc.__cause__
            raise

    def api_keys(self) -> list[ApiKey]:
        sql = f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created, id"

        def select(handle: Handle) -> list[ApiKey]:
            return [api_key_from_row(row) for row in handle.execute(sql).fetchall()]

        return self._run("listing API keys", select)

    def api_key(self, key_id: str) -> ApiKey | None:
        return self._one_api_key("id", key_id)

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self._one_api_key("key_hash", key_hash)

    def _one_api_key(self, column: str, value: str) -> ApiKey | None:
        sql = self._sql(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {column} = ?")

        def select(handle: Handle) -> ApiKey | None:
            row = handle.execute(sql, (value,)).fetchone()
            return api_key_from_row(row) if row else None

        return self._run("reading an API key", select)

    def remove_api_key(self, key_id: str) -> ApiKey | None:
        sql = self._sql(f"DELETE FROM api_keys WHERE id = ? RETURNING {API_KEY_COLUMNS}")
        tokens = self._sql("DELETE FROM api_tokens WHERE key_id = ?")

        def delete(handle: Handle) -> ApiKey | None:
            row = handle.execute(sql, (key_id,)).fetchone()
            # Explicitly, not only by ON DELETE CASCADE: foreign keys are off on SQLite
            # connections unless every one of them turns them on.
            handle.execute(tokens, (key_id,))
            if row is None:
                return None
            # (api) In the feed, so that a server keeping the tokens it verified (ordered feeds
            # only: kzconsole/api/keys.py) reads them again, and refuses them, at once.
            self._record(handle, "api_key")
            return api_key_from_row(row)

        return self._run(f"removing API key {key_id!r}", delete, write=True)

    def add_api_token(self, token_hash: str, key_id: str, ttl_s: float) -> float | None:
        now, now_params = self._now_sql()
        sql = self._sql(
            f"INSERT INTO api_tokens (token_hash, key_id, expires) SELECT ?, id, {now} + ?"
            " FROM api_keys WHERE id = ? RETURNING expires"
        )
        params = [token_hash, *now_params, float(ttl_s), key_id]

        def insert(handle: Handle) -> float | None:
            row = handle.execute(sql, params).fetchone()
            return float(row[0]) if row else None

        return self._run("storing an API token", insert, write=True)

    def api_token(self, token_hash: str) -> tuple[ApiKey, float] | None:
        now, now_params = self._now_sql()
        sql = self._sql(
            "SELECT k.id, k.account_id, k.name, k.superadmin, k.created, k.key_hash, t.expires"
            f" FROM api_tokens t JOIN api_keys k ON k.id = t.key_id WHERE t.token_hash = ? AND t.expires > {now}"
        )

        def select(handle: Handle) -> tuple[ApiKey, float] | None:
            row = handle.execute(sql, [token_hash, *now_params]).fetchone()
            return (api_key_from_row(row[:-1]), float(row[-1])) if row else None

        return self._run("reading an API token", select)

    def prune_api_tokens(self) -> int:
        now, now_params = self._now_sql()
        sql = self._sql(f"DELETE FROM api_tokens WHERE expires <= {now}")

        def delete(handle: Handle) -> int:
            return int(handle.execute(sql, now_params).rowcount)

        return self._run("pruning API tokens", delete, write=True)
