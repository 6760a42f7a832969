"""Job queries: one value, :class:`JobQuery`, for every listing of jobs.

Everyone who lists jobs (``tasks list``, ``tasks show <prefix>``, the console's jobs view, the REST
API) describes what they want as a :class:`JobQuery` and hands it to the store's ``list_jobs``,
``count_jobs`` or ``iter_jobs``. The store answers with indexes, never by reading every job into
Python. What a query means is defined twice over: as SQL (:mod:`kzconsole.engine.store.query`'s
``select_statement`` and ``count_statement``, shared by every SQL backend through a small
``Dialect``) and as Python, here (:meth:`JobQuery.matches`, :meth:`JobQuery.position`), which the
console uses for records that change under it and the contract suite uses to check the SQL.

What a query can say
--------------------

- **Filters** (all must hold): ``account_id`` (exact), ``status`` (one or several), ``task`` (a piece
  of ``category/action``), ``id_prefix``, ``account_part`` (a piece of the account id), free
  ``words`` (each a piece of the job's *text*) and ``regex`` (a regular expression searched in the
  text). ``invert`` keeps the jobs the words and the regular expression do *not* match; the other
  filters still apply (an account scope is never inverted away). Pieces and words ignore the case
  of ASCII letters (as SQL's ``lower()`` does); the regular expression ignores case.
- The job's **text** is ``"<id> <category>/<action> <account_id> <file_name>"``: what a row of the
  jobs list shows but its status and counts (those change as the job runs, and have their filters).
- **Order**: ``sort`` names a column (:data:`SORTS`); ``descending`` reverses the whole order. Ties
  are broken by ``created`` then ``id`` in the same direction, so the order is total and the
  reverse of a listing is exactly the listing reversed. ``duration`` and ``rate`` of a running job
  are measured to ``now`` (pin it to page through them consistently).
- **Paging**: ``after`` is the position (:meth:`JobQuery.position`) of the last row of the previous
  page: the next page starts after it, and stays right while jobs are added (unlike an offset).
  :meth:`JobQuery.page_token` / :meth:`JobQuery.resume` wrap it in an opaque string (the REST API's
  ``next_start_key``). ``offset`` skips rows (the console's virtual list jumps to any row) and
  ``limit`` bounds the answer.

Values are checked when the query is made: a bad one raises :class:`InvalidQuery` (a
``ValueError``) whose message names the field, for the operator.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from kzconsole.engine.models import JobStatus
from kzconsole.engine.store.job_regex import ASCII_LOWER, regex_problem, regex_program, regexp_match

__all__ = ["SORTS", "TASK_SQL", "TEXT_SQL", "InvalidQuery", "JobQuery", "Sort", "job_text", "status_text"]

_STATUS_VALUES = tuple(s.value for s in JobStatus)


class InvalidQuery(ValueError):
    """A job query that cannot be answered (an unknown status or sort, a bad regular expression, a
    position from another order); the message says which field and why."""


# ------------------------------------------------------------------------------------- sorts


@dataclass(frozen=True)
class Sort:
    """One order of the jobs list: ``keys``, SQL expressions over a job's columns that are never
    NULL (row values compare), then ``created`` and ``id``.

    ``live_keys`` is set for an order by a value that moves while a job is pending or running
    (status, counts, times): the *settled* (finished) jobs, whose values are fixed, are ordered by ``keys``
    (SQLite reads them from one index that a job enters once, when it finishes, so that a running
    job's checkpoints never rewrite an index entry); the unsettled ones by ``live_keys``, where
    ``{now}`` is bound to the query's ``now``."""

    name: str
    title: str
    keys: tuple[str, ...]
    numeric: tuple[bool, ...]  # per key: a number (True) or a string
    descending: bool  # the natural direction (what a click on the column means first)
    live_keys: tuple[str, ...] | None = None

    @property
    def tiebreak(self) -> tuple[str, ...]:
        return () if self.name == "id" else ("created", "id")

    @property
    def order_keys(self) -> tuple[str, ...]:
        return ("id",) if self.name == "id" else (*self.keys, *self.tiebreak)


# The console's "running first": the jobs that need attention come first when descending.
STATUS_RANK = {
    "executing": 6,
    "pending": 5,
    "internal_error": 4,
    "failure": 3,
    "partial": 2,
    "stopped": 1,
    "success": 0,
}
_RANK_SQL = "(CASE status " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in STATUS_RANK.items()) + " END)"
UNSETTLED = ("pending", "executing")
SETTLED = tuple(s.value for s in JobStatus if s.value not in UNSETTLED)
# Literal, not bound: SQLite uses a partial index only when the query holds its WHERE term as is.
# (NOT IN two values rather than IN five: SQLite checks it at each write of a job, for less.)
SETTLED_SQL = "status NOT IN (" + ", ".join(f"'{s}'" for s in UNSETTLED) + ")"

_PROCESSED = "(success_count + failure_count)"
_REAL = "CAST(" + _PROCESSED + " AS DOUBLE PRECISION)"
_STARTED = "coalesce(start_timestamp, -1)"
_DURATION = "coalesce(end_timestamp - start_timestamp, -1)"
_LIVE_DURATION = "coalesce({now} - start_timestamp, -1)"
_RATE = (
    f"(CASE WHEN end_timestamp > start_timestamp AND {_PROCESSED} > 0"
    f" THEN {_REAL} / (end_timestamp - start_timestamp) ELSE -1 END)"
)
_LIVE_RATE = (
    f"(CASE WHEN {{now}} > start_timestamp AND {_PROCESSED} > 0 THEN {_REAL} / ({{now}} - start_timestamp) ELSE -1 END)"
)
_PROGRESS = f"(CASE WHEN total_count > 0 THEN {_REAL} / total_count ELSE -1 END)"
_TOTAL = "coalesce(total_count, -1)"

SORTS: dict[str, Sort] = {
    s.name: s
    for s in (
        Sort("created", "created", (), (), True),
        Sort("id", "id", ("id",), (False,), False),
        Sort("status", "status (running first)", (_RANK_SQL,), (True,), True, (_RANK_SQL,)),
        Sort("task", "task", ("category", "action"), (False, False), False),
        Sort("account", "account", ("account_id",), (False,), False),
        Sort("file", "file name", ("coalesce(file_name, '')",), (False,), False),
        Sort("success", "rows succeeded", ("success_count",), (True,), True, ("success_count",)),
        Sort("failure", "rows failed", ("failure_count",), (True,), True, ("failure_count",)),
        Sort("total", "total rows", (_TOTAL,), (True,), True, (_TOTAL,)),
        Sort("progress", "progress", (_PROGRESS,), (True,), True, (_PROGRESS,)),
        Sort("started", "started", (_STARTED,), (True,), True, (_STARTED,)),
        Sort("duration", "duration", (_DURATION,), (True,), True, (_LIVE_DURATION,)),
        Sort("rate", "rate (rows/s)", (_RATE,), (True,), True, (_LIVE_RATE,)),
    )
}

# The job's text (words and the regular expression search it) and the task name, lower-cased.
# Only what never changes after a job is created, so that its index entry is written once.
# Index expressions must be written exactly like this to be used (see the SQLite migration).
TEXT_SQL = "lower(id || ' ' || category || '/' || action || ' ' || account_id || ' ' || coalesce(file_name, ''))"
TASK_SQL = "lower(category || '/' || action)"


def _fold(text: str) -> str:
    return text.translate(ASCII_LOWER)


def job_text(job: Any) -> str:
    """The job's text, lower-cased as :data:`TEXT_SQL` makes it."""
    return _fold(f"{job.id} {job.category}/{job.action} {job.account_id} {job.file_name or ''}")


def status_text(job: Any) -> str:
    """The job's status as its string (a record's, or a row's already)."""
    status = job.status
    return status.value if isinstance(status, JobStatus) else str(status)


# -------------------------------------------------------------------------------- the query


def _opt_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidQuery(f"{name}: expected text, not {type(value).__name__}")
    return value or None


def _statuses(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, JobStatus)) else list(value)
    out: list[str] = []
    for item in items:
        name = item.value if isinstance(item, JobStatus) else item
        if name not in _STATUS_VALUES:
            raise InvalidQuery(f"status: unknown status {name!r} (valid: {', '.join(_STATUS_VALUES)})")
        if name not in out:
            out.append(name)
    return tuple(out)


def _words(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str):
            raise InvalidQuery(f"words: expected text, not {type(item).__name__}")
    return tuple(w for w in items if w)


@dataclass(frozen=True)
class JobQuery:
    """Which jobs, in which order, which page. See the module docstring; every field is optional.

    ``status`` takes a status, a list of them, or None (any); an empty list matches nothing.
    ``words`` takes a list of words or one string (split at spaces). ``descending`` None is the
    sort's natural direction (newest first, running first, A to Z, largest first).
    """

    account_id: str | None = None
    status: tuple[str, ...] | None = None
    task: str | None = None
    id_prefix: str | None = None
    account_part: str | None = None
    words: tuple[str, ...] = ()
    regex: str | None = None
    invert: bool = False
    sort: str = "created"
    descending: bool | None = None
    after: tuple[Any, ...] | None = None
    limit: int | None = None
    offset: int = 0
    now: float | None = None

    def __post_init__(self) -> None:
        put = functools.partial(object.__setattr__, self)
        put("account_id", _opt_text("account_id", self.account_id))
        put("status", _statuses(self.status))
        put("task", _opt_text("task", self.task))
        prefix = _opt_text("id_prefix", self.id_prefix)
        put("id_prefix", None if prefix is None else _fold(prefix))
        put("account_part", _opt_text("account_part", self.account_part))
        put("words", _words(self.words))
        put("regex", _opt_text("regex", self.regex))
        if self.regex is not None:
            problem = regex_problem(self.regex)
            if problem is not None:
                raise InvalidQuery(problem)
        put("invert", bool(self.invert))
        sort = SORTS.get(self.sort) if isinstance(self.sort, str) else None
        if sort is None:
            raise InvalidQuery(f"sort: unknown column {self.sort!r} (one of: {', '.join(SORTS)})")
        put("descending", sort.descending if self.descending is None else bool(self.descending))
        for name in ("limit", "offset"):
            value = getattr(self, name)
            if value is None and name == "limit":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidQuery(f"{name}: expected a whole number >= 0, not {value!r}")
        if self.now is not None:
            if isinstance(self.now, bool) or not isinstance(self.now, (int, float)) or not math.isfinite(self.now):
                raise InvalidQuery(f"now: expected a time in seconds, not {self.now!r}")
            put("now", float(self.now))
        if self.after is not None:
            put("after", self._checked_position(self.after))

    # ---------------------------------------------------------------- building

    @classmethod
    def of(cls, query: JobQuery | None = None, /, **fields: Any) -> JobQuery:
        """``query`` with ``fields`` changed; a new query from ``fields`` alone when it is None.
        The keyword style of the store and the facade (``list_jobs(status=..., limit=...)``)."""
        if query is None:
            return cls(**fields)
        if not isinstance(query, JobQuery):
            raise TypeError(f"expected a JobQuery, not {type(query).__name__}")
        return query.replace(**fields) if fields else query

    def replace(self, **changes: Any) -> JobQuery:
        if "sort" in changes and "descending" not in changes:
            changes["descending"] = None  # a new column starts in its natural direction
        if ("sort" in changes or "descending" in changes) and "after" not in changes:
            changes["after"] = None  # a position belongs to one order
        return dataclasses.replace(self, **changes)

    @property
    def order(self) -> Sort:
        return SORTS[self.sort]

    @property
    def is_live(self) -> bool:
        """The order depends on ``now`` (duration, rate of running jobs)."""
        return any("{now}" in key for key in self.order.live_keys or ())

    @property
    def has_text_filter(self) -> bool:
        """Filters no index can answer: checked job by job (on an index that holds the text)."""
        return bool(self.words or self.regex or self.task or self.account_part)

    @property
    def filter_only(self) -> JobQuery:
        """The same jobs, without order or paging (what :meth:`count` depends on)."""
        return dataclasses.replace(self, sort="created", descending=None, after=None, limit=None, offset=0, now=None)

    # ---------------------------------------------------------------- meaning in Python

    def matches(self, job: Any) -> bool:
        """Whether ``job`` (a :class:`JobRecord`, or anything with its attributes) passes the
        filters: what the store's SQL decides, in Python (the console checks a job that changed)."""
        if self.account_id is not None and job.account_id != self.account_id:
            return False
        if self.status is not None and status_text(job) not in self.status:
            return False
        if self.id_prefix is not None and not job.id.startswith(self.id_prefix):
            return False
        if self.task is not None and _fold(self.task) not in _fold(f"{job.category}/{job.action}"):
            return False
        if self.account_part is not None and _fold(self.account_part) not in _fold(job.account_id):
            return False
        if self.words or self.regex:
            text = job_text(job)
            found = all(_fold(word) in text for word in self.words)
            if found and self.regex is not None:
                found = regexp_match(regex_program(self.regex), text)
            if found == self.invert:
                return False
        return True

    def position(self, job: Any, now: float | None = None) -> tuple[Any, ...]:
        """The job's place in this query's order: the values of its sort keys then ``created`` and
        ``id`` (``after`` takes one). ``now`` (default: the query's) measures a live job."""
        sort = self.order
        if sort.name == "id":
            return (job.id,)
        return (*self._key_values(job, self.now if now is None else now), job.created, job.id)

    def _key_values(self, job: Any, now: float | None) -> tuple[Any, ...]:
        name = self.sort
        if name == "created":
            return ()
        if name == "status":
            return (STATUS_RANK[status_text(job)],)
        if name == "task":
            return (job.category, job.action)
        if name == "account":
            return (job.account_id,)
        if name == "file":
            return (job.file_name or "",)
        if name in ("success", "failure"):
            return (getattr(job, f"{name}_count"),)
        if name == "total":
            return (-1 if job.total_count is None else job.total_count,)
        processed = job.success_count + job.failure_count
        if name == "progress":
            return (processed / job.total_count if job.total_count and job.total_count > 0 else -1,)
        if name == "started":
            return (-1 if job.start_timestamp is None else job.start_timestamp,)
        start, end = job.start_timestamp, job.end_timestamp
        if status_text(job) in UNSETTLED:  # measured to now (the live keys)
            if start is None:
                return (-1,)
            if now is None:
                raise InvalidQuery(f"sort {name}: the position of a running job needs `now`")
            end = float(now)
        if start is None or end is None:
            return (-1,)
        if name == "duration":
            return (end - start,)
        return (processed / (end - start) if end > start and processed > 0 else -1,)

    def next_page(self, last: Any) -> JobQuery:
        """The query of the page after one whose last row is ``last`` (``now`` pinned, so a live
        order holds still between pages)."""
        return dataclasses.replace(self, after=self._after(last), offset=0)

    def _after(self, last: Any) -> tuple[Any, ...]:
        if self.now is None and self.is_live:
            raise InvalidQuery(f"sort {self.sort}: pin `now` in the query to page through it")
        return self.position(last)

    def from_the_end(self, total: int) -> JobQuery | None:
        """The same page read in the reverse order, for a backend whose deep pages cost what they
        skip (a sort): with ``total`` matches, rows ``offset .. offset + limit`` are the reversed
        rows of the returned query. None when the page is in the first half (read it as it is), or
        when keyset paging (``after``) is in use."""
        if self.after is not None or self.offset * 2 <= total:
            return None
        end = total if self.limit is None else min(total, self.offset + self.limit)
        start = max(0, total - end)
        return dataclasses.replace(
            self, descending=not self.descending, offset=start, limit=max(0, total - self.offset - start)
        )

    def page_token(self, last: Any) -> str:
        """An opaque, URL-safe string for the page after ``last`` (:meth:`resume` reads it)."""
        # (api) The next page's position and now, as next_page gives them, without building and
        # checking that query: a fifth of a REST API listing page's own Python work.
        doc = [1, self.sort, self.descending, self.now, list(self._after(last))]
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def resume(self, token: str) -> JobQuery:
        """This query continued from a :meth:`page_token`; InvalidQuery if the token is not one, or
        is one of another order."""
        bad = InvalidQuery("start_key: not a key this server gave (ask for the first page again)")
        if not isinstance(token, str) or len(token) > 2048:
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            doc = json.loads(raw)
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # "[[[[...": too deep
            raise bad from None
        if not (isinstance(doc, list) and len(doc) == 5 and doc[0] == 1 and isinstance(doc[4], list)):
            raise bad
        _, sort, descending, now, after = doc
        if sort != self.sort or descending != self.descending:
            raise InvalidQuery(f"start_key: a key of another order ({sort}), not of {self.sort}")
        try:
            return dataclasses.replace(self, after=tuple(after), now=now, offset=0)
        except InvalidQuery:
            raise bad from None

    def _checked_position(self, after: Any) -> tuple[Any, ...]:
        sort = self.order
        kinds = (*sort.numeric, *((True, False) if sort.tiebreak else ()))
        values = tuple(after) if isinstance(after, (tuple, list)) else None
        if values is None or len(values) != len(kinds):
            raise InvalidQuery(f"after: expected {len(kinds)} values for sort {sort.name}, not {after!r}")
        for value, numeric in zip(values, kinds, strict=True):
            ok = (
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                if numeric
                else isinstance(value, str)
            )
            if not ok:
                raise InvalidQuery(f"after: {value!r} is not a position of sort {sort.name}")
        return values
