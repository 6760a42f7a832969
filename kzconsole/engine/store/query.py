"""Job queries: one value, :class:`JobQuery`, for every listing of jobs, and the SQL it becomes.

Everyone who lists jobs (``tasks list``, ``tasks show <prefix>``, the console's jobs view, the REST
API) describes what they want as a :class:`JobQuery` and hands it to the store's ``list_jobs``,
``count_jobs`` or ``iter_jobs``. The store answers with indexes, never by reading every job into
Python. What a query means is defined once, here, twice over: as SQL (:func:`select_statement`,
:func:`count_statement`, shared by every SQL backend through a small :class:`Dialect`) and as
Python (:meth:`JobQuery.matches`, :meth:`JobQuery.position`), which the console uses for records
that change under it and the contract suite uses to check the SQL.

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
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from kzconsole.engine.models import JOB_FIELDS, PUBLIC_JOB_KEYS, JobRecord, JobStatus

__all__ = [
    "SORTS",
    "TASK_SQL",
    "TEXT_SQL",
    "Dialect",
    "InvalidQuery",
    "JobQuery",
    "JobRows",
    "Sort",
    "Statement",
    "count_statement",
    "regexp_match",
    "select_statement",
]

_STATUS_VALUES = tuple(s.value for s in JobStatus)
_WHOLE_SECONDS = frozenset({"created", "start_timestamp", "end_timestamp"})  # whole in public()


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
    "executing": 6, "pending": 5, "internal_error": 4, "failure": 3, "partial": 2, "stopped": 1, "success": 0,
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
_RATE = (f"(CASE WHEN end_timestamp > start_timestamp AND {_PROCESSED} > 0"
         f" THEN {_REAL} / (end_timestamp - start_timestamp) ELSE -1 END)")
_LIVE_RATE = (f"(CASE WHEN {{now}} > start_timestamp AND {_PROCESSED} > 0"
              f" THEN {_REAL} / ({{now}} - start_timestamp) ELSE -1 END)")
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

# SQL's lower() (SQLite's, at least) folds ASCII letters only; Python's side must fold the same.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def job_text(job: Any) -> str:
    """The job's text, lower-cased as :data:`TEXT_SQL` makes it."""
    return _fold(f"{job.id} {job.category}/{job.action} {job.account_id} {job.file_name or ''}")


def _status(job: Any) -> str:
    status = job.status
    return status.value if isinstance(status, JobStatus) else str(status)


# ------------------------------------------------------------------------- regular expressions

_REGEX_MAX = 500


def _regex_program(pattern: str) -> str:
    """The pattern as matched against the lower-cased text: its ASCII letters lower-cased (escapes
    kept: ``\\D`` is not ``\\d``), which lets ``re`` use its fast literal search; ``(?i)`` in front
    instead when that is not exact (non-ASCII letters, character codes)."""
    if pattern.isascii() and not re.search(r"\\[xuUN0-7]", pattern):
        out = []
        chars = iter(pattern)
        for c in chars:
            if c == "\\":
                out.append(c)
                out.append(next(chars, ""))
            else:
                out.append(c.translate(_ASCII_LOWER))
        return "".join(out)
    return "(?i)" + pattern


@functools.lru_cache(maxsize=64)
def _compiled(program: str) -> Any:
    return re.compile(program).search


def regexp_match(program: str, text: str | None) -> bool:
    """SQLite's ``kz_regexp(program, text)``: ``program`` is what :meth:`Dialect.regex_param` bound."""
    return text is not None and _compiled(program)(text) is not None


def _required_literals(program: str) -> list[str] | None:
    """Pieces of text one of which every match of ``program`` contains (a top-level alternation
    gives one per branch), for a cheap first test; None when there is no such piece worth it."""
    if "(?" in program:  # inline flags (case, verbose...) change what a literal matches
        return None
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]

        items = list(sre_parse.parse(program))
    except (ImportError, re.error, RecursionError, OverflowError):
        return None  # no prefilter then; the expression itself was checked
    if len(items) == 1 and items[0][0] is sre_parse.BRANCH:
        runs = [_longest_literal(branch, sre_parse) for branch in items[0][1][1]]
    else:
        runs = [_longest_literal(items, sre_parse)]
    return runs if all(len(run) >= 2 for run in runs) else None


def _longest_literal(items: Any, sre_parse: Any) -> str:
    """The longest run of characters a match of the sequence ``items`` must contain."""
    best = run = ""
    for op, arg in _flat(items, sre_parse):
        if op is sre_parse.LITERAL:
            run += chr(arg)
            continue
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            low, high, body = arg
            body = list(body)
            if low >= 1 and len(body) == 1 and body[0][0] is sre_parse.LITERAL:
                char = chr(body[0][1])
                run += char * low
                if high == low:
                    continue  # c{3}: exactly, the run goes on
                best = max(best, run, key=len)
                run = char  # the last of the repeated characters touches what follows
                continue
        best = max(best, run, key=len)
        run = ""
    return max(best, run, key=len)


def _flat(items: Any, sre_parse: Any) -> Iterator[tuple[Any, Any]]:
    for op, arg in items:
        if op is sre_parse.SUBPATTERN and not arg[1] and not arg[2]:
            yield from _flat(arg[3], sre_parse)  # (abc)d: the group's characters touch d
        else:
            yield op, arg


def _check_regex(pattern: str) -> None:
    if len(pattern) > _REGEX_MAX:
        raise InvalidQuery(f"regex: at most {_REGEX_MAX} characters, not {len(pattern)}")
    try:
        parsed = re.compile(pattern)
    except re.error as exc:
        raise InvalidQuery(f"regex: {pattern!r} is not a regular expression: {exc}") from None
    if parsed.groups and re.search(r"\\[1-9]", pattern):
        raise InvalidQuery(f"regex: {pattern!r}: back-references are not supported")
    if _nested_repeat(pattern):
        # (a+)+ and the like take exponential time on a long enough text: the store's thread
        # would never come back. PostgreSQL's engine does not backtrack so, but one rule for both.
        raise InvalidQuery(
            f"regex: {pattern!r} repeats a repetition (such as (a+)*), which can take forever; "
            "write it without the nesting"
        )


def _nested_repeat(pattern: str) -> bool:
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - a Python without it: no check, as PostgreSQL
        return False
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}

    def walk(items: Any, inside: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                _low, high, body = arg
                unbounded = high is sre_parse.MAXREPEAT or high > 50
                if inside and unbounded:
                    return True
                if walk(body, inside or unbounded):
                    return True
            elif (
                (op is sre_parse.SUBPATTERN and walk(arg[-1], inside))
                or (op is sre_parse.BRANCH and any(walk(branch, inside) for branch in arg[1]))
                or (op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT) and walk(arg[1], inside))
            ):
                return True
        return False

    return walk(sre_parse.parse(pattern), False)


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
            _check_regex(self.regex)
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
        return JobQuery(account_id=self.account_id, status=self.status, task=self.task, id_prefix=self.id_prefix,
                        account_part=self.account_part, words=self.words, regex=self.regex, invert=self.invert)

    # ---------------------------------------------------------------- meaning in Python

    def matches(self, job: Any) -> bool:
        """Whether ``job`` (a :class:`JobRecord`, or anything with its attributes) passes the
        filters: what the store's SQL decides, in Python (the console checks a job that changed)."""
        if self.account_id is not None and job.account_id != self.account_id:
            return False
        if self.status is not None and _status(job) not in self.status:
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
                found = regexp_match(_regex_program(self.regex), text)
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
            return (STATUS_RANK[_status(job)],)
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
        if _status(job) in UNSETTLED:  # measured to now (the live keys)
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
        now = self.now
        if now is None and self.is_live:
            raise InvalidQuery(f"sort {self.sort}: pin `now` in the query to page through it")
        return dataclasses.replace(self, after=self.position(last), offset=0)

    def from_the_end(self, total: int) -> JobQuery | None:
        """The same page read in the reverse order, for a backend whose deep pages cost what they
        skip (a sort): with ``total`` matches, rows ``offset .. offset + limit`` are the reversed
        rows of the returned query. None when the page is in the first half (read it as it is), or
        when keyset paging (``after``) is in use."""
        if self.after is not None or self.offset * 2 <= total:
            return None
        end = total if self.limit is None else min(total, self.offset + self.limit)
        start = max(0, total - end)
        return dataclasses.replace(self, descending=not self.descending, offset=start,
                                   limit=max(0, total - self.offset - start))

    def page_token(self, last: Any) -> str:
        """An opaque, URL-safe string for the page after ``last`` (:meth:`resume` reads it)."""
        page = self.next_page(last)
        doc = [1, self.sort, self.descending, page.now, list(page.after or ())]
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
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                  if numeric else isinstance(value, str))
            if not ok:
                raise InvalidQuery(f"after: {value!r} is not a position of sort {sort.name}")
        return values


# ----------------------------------------------------------------------------------- streaming


class JobRows(Iterator[tuple[Any, ...]]):
    """What ``iter_jobs`` returns: the rows, read as they are consumed; close it (or use ``with``)
    to let go of the store's cursor early. Iterating it is the underlying generator's speed."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:  # the generator itself: no call per row
        return self._rows

    def __next__(self) -> tuple[Any, ...]:
        return next(self._rows)

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """``iter_jobs`` columns: JobRecord field names."""
    if isinstance(columns, str):
        raise InvalidQuery("columns: expected a list of JobRecord field names, not one string")
    names = tuple(columns)
    if not names:
        raise InvalidQuery("columns: name at least one JobRecord field")
    for name in names:
        if name not in JOB_FIELDS:
            raise InvalidQuery(f"columns: {name!r} is not a JobRecord field")
    return names


def rows_from_records(records: Iterable[JobRecord], columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Records as ``iter_jobs`` rows (status as its string): for backends that build records anyway."""
    for job in records:
        yield tuple(_status(job) if c == "status" else getattr(job, c) for c in columns)


# -------------------------------------------------------------------------------------- SQL


@dataclass(frozen=True)
class Statement:
    """A statement and its parameters. ``extra``: trailing result columns that are only there to
    order the rows (drop them: ``row[:-extra]``)."""

    sql: str
    params: tuple[Any, ...]
    extra: int = 0


Term = tuple[str, list[Any]]  # a piece of SQL and its parameters, in order


class Dialect:
    """What differs between SQL backends, for :func:`select_statement` / :func:`count_statement`.

    Every method returns SQL with this dialect's placeholders and the parameters they take. The
    defaults are SQLite's where a choice has to be made; PostgreSQL overrides what differs
    (placeholders ``%s``, ``strpos``, ``~*``, ``LIMIT ALL``, the prefix range under its collation,
    ``id`` instead of ``rowid``). The SQL assumes JobRecord's column types: seconds as floating
    point numbers, counts as integers, ``status`` as its string.
    """

    placeholder = "?"
    row_key = "rowid"  # how the page's rows are found again (any unique, indexed column)

    def public_document(self) -> str:
        """An expression giving a job's public record (``JobRecord.public()``: its keys in order,
        times as whole seconds) as one JSON object's text, built by the database: ``tasks list
        --json`` then costs what the text listing does (a Python object per column and a line
        built from them took 40% longer)."""
        values = ", ".join(
            f"'{key}', {f'CAST({key} AS INTEGER)' if key in _WHOLE_SECONDS else key}" for key in PUBLIC_JOB_KEYS
        )
        return f"json_object({values})"

    def contains(self, haystack: str, piece: str) -> Term:
        """True when ``haystack`` (lower-cased SQL) contains ``piece``, ignoring ASCII case."""
        return f"instr({haystack}, lower({self.placeholder})) > 0", [piece]

    def regex(self, text: str, pattern: str) -> Term:
        """True when the regular expression ``pattern`` (checked by JobQuery) matches ``text``
        (lower-cased SQL), ignoring case. SQLite calls Python for each job (``kz_regexp``); the
        literal text every match must contain is looked for first, in C, so that most jobs never
        reach Python."""
        p = self.placeholder
        program = _regex_program(pattern)
        literals = _required_literals(program)
        if not literals:
            return f"kz_regexp({p}, {text})", [program]
        found = " OR ".join(f"instr({text}, {p}) > 0" for _ in literals)
        return f"({found}) AND kz_regexp({p}, {text})", [*literals, program]

    def id_prefix(self, prefix: str) -> Term:
        """True when ``id`` starts with ``prefix`` (lower-case): a range of the id index."""
        p = self.placeholder
        return f"id >= {p} AND id < {p}", [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]

    def row_compare(self, left: Sequence[str], op: str) -> str:
        """``(a, b, c) < (?, ?, ?)``: keyset paging's condition (SQL's row values)."""
        p = self.placeholder
        if len(left) == 1:
            return f"{left[0]} {op} {p}"
        return f"({', '.join(left)}) {op} ({', '.join(p for _ in left)})"

    def limit(self, limit: int | None, offset: int) -> Term:
        p = self.placeholder
        return f" LIMIT {p} OFFSET {p}", [-1 if limit is None else limit, offset]

    def source(self, query: JobQuery, *, branch: str) -> str:
        """The FROM item of a count (``count``) or of one branch of a listing (``all``, or ``static``
        and ``live`` for a live order: see select_statement): where a backend tells its planner
        which index to walk."""
        return "jobs"


_QUERY_STATUSES: Any = object()  # _filters' default: the query's own status filter


def _filters(query: JobQuery, d: Dialect, *, statuses: Any = _QUERY_STATUSES) -> list[Term] | None:
    """WHERE terms of the filters, with ``statuses`` (None: no status term) instead of the query's
    status filter when given; None when nothing can match."""
    statuses = query.status if statuses is _QUERY_STATUSES else statuses
    if statuses is not None and not statuses:
        return None
    p = d.placeholder
    terms: list[Term] = []
    if query.id_prefix is not None:
        terms.append(d.id_prefix(query.id_prefix))
    if query.account_id is not None:
        terms.append((f"account_id = {p}", [query.account_id]))
    if statuses is not None and len(statuses) == 1:
        terms.append((f"status = {p}", [statuses[0]]))
    elif statuses is not None:
        terms.append((f"status IN ({', '.join(p for _ in statuses)})", list(statuses)))
    if query.task is not None:
        terms.append(d.contains(TASK_SQL, query.task))
    if query.account_part is not None:
        terms.append(d.contains("lower(account_id)", query.account_part))
    text = [d.contains(TEXT_SQL, word) for word in query.words]
    if query.regex is not None:
        text.append(d.regex(TEXT_SQL, query.regex))
    if text:
        joined = " AND ".join(sql for sql, _ in text)
        values = [v for _, params in text for v in params]
        terms.append((f"NOT ({joined})" if query.invert else f"({joined})", values))
    return terms


def _where(terms: Sequence[Term]) -> Term:
    if not terms:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in terms), [v for _, params in terms for v in params]


def count_statement(query: JobQuery, d: Dialect) -> Statement | None:
    """``SELECT count(*)`` of the jobs the filters match (order and paging ignored); None: zero."""
    terms = _filters(query, d)
    if terms is None:
        return None
    where, params = _where(terms)
    return Statement(f"SELECT count(*) FROM {d.source(query, branch='count')}{where}", tuple(params))


@dataclass(frozen=True)
class _Branch:
    source: str  # the FROM item
    keys: tuple[str, ...]  # the order's key expressions in this branch
    key_params: tuple[Any, ...]  # what the keys bind (now)
    terms: list[Term]


def _branches(query: JobQuery, d: Dialect, now: float) -> list[_Branch]:
    """The SELECTs whose rows, merged in order, are the listing (see select_statement)."""
    sort = query.order
    statuses = query.status
    out: list[_Branch] = []

    def add(branch: str, keys: tuple[str, ...], params: Sequence[Any], terms: list[Term] | None) -> None:
        if terms is not None:
            out.append(_Branch(d.source(query, branch=branch), keys, tuple(params), terms))

    if sort.name == "created" and statuses is not None and len(statuses) > 1 and not query.has_text_filter:
        # One ordered walk per status: "status IN" would read and sort every match first.
        for status in statuses:
            add("status", sort.order_keys, (), _filters(query, d, statuses=[status]))
    elif sort.live_keys is not None:
        settled = [s for s in SETTLED if statuses is None or s in statuses]
        unsettled = [s for s in UNSETTLED if statuses is None or s in statuses]
        if settled:
            terms = _filters(query, d, statuses=None if statuses is None else settled)
            add("settled", sort.order_keys, (), None if terms is None else [*terms, (SETTLED_SQL, [])])
        if unsettled:
            p = d.placeholder
            live = tuple(key.replace("{now}", p) for key in sort.live_keys)
            params = [now] * sum(key.count("{now}") for key in sort.live_keys)
            add("unsettled", (*live, *sort.tiebreak), params, _filters(query, d, statuses=unsettled))
    else:
        add("all", sort.order_keys, (), _filters(query, d))
    return out


def select_statement(
    query: JobQuery, columns: Sequence[str], d: Dialect, *, now: float, expressions: bool = False
) -> Statement | None:
    """The jobs ``query`` asks for, selecting ``columns`` (JobRecord field names, trusted; with
    ``expressions``, SQL expressions over a job's unqualified columns instead); None when nothing
    can match. ``now`` measures running jobs when the query does not pin it.

    Several SELECTs are merged by ``UNION ALL ... ORDER BY`` where one cannot give the order: an
    order by counts or times reads the finished jobs (whose values are fixed) apart from the
    pending and running ones (measured to now); several statuses newest first are one ordered
    walk of the status index each (the merge stops at the page). A page (``limit``, ``offset``) is
    found by its keys alone, then its rows are read: skipping or sorting 99,000 jobs then costs
    index entries, not whole rows.
    """
    if query.limit == 0:
        return None
    branches = _branches(query, d, query.now if query.now is not None else now)
    if not branches:
        return None
    width = len(branches[0].keys)
    paged = query.limit is not None or query.offset > 0
    keyed = paged or len(branches) > 1  # the keys are result columns (kz_k0, ...)
    direction = " DESC" if query.descending else ""
    parts: list[str] = []
    params: list[Any] = []
    for branch in branches:
        terms = branch.terms
        if query.after is not None:
            compare = d.row_compare(branch.keys, "<" if query.descending else ">")
            terms = [*terms, (compare, [*branch.key_params, *query.after])]
        select = f"SELECT {d.row_key} AS kz_row" if paged else f"SELECT {', '.join(columns)}"
        if keyed:
            select += "".join(f", {key} AS kz_k{i}" for i, key in enumerate(branch.keys))
            params.extend(branch.key_params)
        where, where_params = _where(terms)
        parts.append(f"{select} FROM {branch.source}{where}")
        params.extend(where_params)
    if keyed:
        order = ", ".join(f"kz_k{i}{direction}" for i in range(width))
    else:
        order = ", ".join(f"{key}{direction}" for key in branches[0].keys)
    sql = " UNION ALL ".join(parts) + f" ORDER BY {order}"
    if not paged:
        return Statement(sql, tuple(params), width if keyed else 0)
    page_sql, page_params = d.limit(query.limit, query.offset)
    picked = ", ".join(columns if expressions else (f"jobs.{column}" for column in columns))
    outer = ", ".join(f"kz_page.kz_k{i}{direction}" for i in range(width))
    return Statement(
        f"SELECT {picked} FROM ({sql}{page_sql}) AS kz_page JOIN jobs ON jobs.{d.row_key} = kz_page.kz_row"
        f" ORDER BY {outer}",
        (*params, *page_params),
    )
