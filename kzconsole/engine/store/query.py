"""The SQL a :class:`~kzconsole.engine.store.job_query.JobQuery` becomes, shared by every SQL
backend through a small :class:`Dialect` (:func:`select_statement`, :func:`count_statement`), and
the rows ``iter_jobs`` streams (:class:`JobRows`). What a query means, and its checks, are in
:mod:`kzconsole.engine.store.job_query`; the SQL here must agree with ``JobQuery.matches`` and
``JobQuery.position`` (the contract suite compares them)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from kzconsole.engine.models import JOB_FIELDS, PUBLIC_JOB_KEYS, JobRecord
from kzconsole.engine.store.job_query import (
    SETTLED,
    SETTLED_SQL,
    TASK_SQL,
    TEXT_SQL,
    UNSETTLED,
    InvalidQuery,
    JobQuery,
    status_text,
)
from kzconsole.engine.store.job_regex import regex_program, required_literals

_WHOLE_SECONDS = frozenset({"created", "start_timestamp", "end_timestamp"})  # whole in public()

__all__ = [
    "Dialect",
    "JobRows",
    "Statement",
    "check_columns",
    "check_epoch",
    "document_options",
    "count_statement",
    "rows_from_records",
    "select_statement",
]


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


def check_epoch(epoch: Any) -> int:
    """``iter_job_documents``' ``epoch``: whole seconds (a backend writes it into its SQL)."""
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise InvalidQuery(f"epoch: expected whole seconds, not {epoch!r}")
    return epoch


def document_options(fields: dict[str, Any]) -> tuple[int, bool, tuple[str, ...]]:
    """``iter_job_documents``' own keywords (``epoch``, ``nulls``, ``columns``), taken out of
    ``fields`` (the rest build the query) and checked: for overrides that pass them on."""
    columns = fields.pop("columns", ())
    return (
        check_epoch(fields.pop("epoch", 0)),
        bool(fields.pop("nulls", True)),
        check_columns(columns) if columns else (),
    )


def rows_from_records(records: Iterable[JobRecord], columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Records as ``iter_jobs`` rows (status as its string): for backends that build records anyway."""
    for job in records:
        yield tuple(status_text(job) if c == "status" else getattr(job, c) for c in columns)


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

    def public_document(self, epoch: int = 0, nulls: bool = True) -> str:
        """An expression giving a job's public record (``JobRecord.public()``: its keys in order,
        times as whole seconds plus ``epoch``; with ``nulls`` false, null members left out) as one
        JSON object's text, built by the database: ``tasks list --json`` then costs what the text
        listing does (a Python object per column and a line built from them took 40% longer)."""
        return _public_document(epoch, nulls)

    def contains(self, haystack: str, piece: str) -> Term:
        """True when ``haystack`` (lower-cased SQL) contains ``piece``, ignoring ASCII case."""
        return f"instr({haystack}, lower({self.placeholder})) > 0", [piece]

    def regex(self, text: str, pattern: str) -> Term:
        """True when the regular expression ``pattern`` (checked by JobQuery) matches ``text``
        (lower-cased SQL), ignoring case. SQLite calls Python for each job (``kz_regexp``); the
        literal text every match must contain is looked for first, in C, so that most jobs never
        reach Python."""
        p = self.placeholder
        program = regex_program(pattern)
        literals = required_literals(program)
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


# The public keys a record may hold null in (JobRecord's optional fields).
_NULLABLE = tuple(f.name for f in dataclasses.fields(JobRecord) if f.name in PUBLIC_JOB_KEYS and "None" in str(f.type))


@functools.lru_cache(maxsize=8)
def _public_document(epoch: int, nulls: bool) -> str:
    def value(key: str) -> str:
        if key in _WHOLE_SECONDS:
            return f"CAST({key} AS INTEGER) + {int(epoch)}" if epoch else f"CAST({key} AS INTEGER)"
        return key

    def members(present: Collection[str]) -> str:
        return "json_object(" + ", ".join(f"'{key}', {value(key)}" for key in PUBLIC_JOB_KEYS if key in present) + ")"

    if nulls:
        return members(PUBLIC_JOB_KEYS)

    # (api) No nulls: one json_object per combination of null fields, picked by a tree of CASEs
    # (six tests a row, then one json_object with the members present). Measured at 100,000
    # jobs: as cheap as reading the 19 columns as Python values, where json_patch('{}', ...),
    # which drops nulls too, costs twice json_object, and members joined with || more still.
    def tree(i: int, present: frozenset[str]) -> str:
        if i == len(_NULLABLE):
            return members(present)
        key = _NULLABLE[i]
        return f"CASE WHEN {key} IS NULL THEN {tree(i + 1, present)} ELSE {tree(i + 1, present | {key})} END"

    return tree(0, frozenset(k for k in PUBLIC_JOB_KEYS if k not in _NULLABLE))


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


def _walked(query: JobQuery, branches: Sequence[_Branch]) -> bool:
    """(api) Whether a first page is read straight off an index walk, its rows with its keys: newest
    first (or oldest), filtered by nothing but an account and a status, which every backend has
    an index in that order for (jobs_created, jobs_account_created, jobs_status_created). The page of
    keys and then its rows costs more there (a second pass, and a sort of the page's rows again:
    25 us of a 50-job page at 100,000 jobs, bench/api_breakdown.py); it is for a page that skips
    rows (``offset``) or sorts, where it reads only index entries for the jobs it skips."""
    return (
        query.offset == 0
        and query.sort == "created"
        and len(branches) == 1
        and query.id_prefix is None
        and not query.has_text_filter
    )


def select_statement(
    query: JobQuery, columns: Sequence[str], d: Dialect, *, now: float, expressions: bool = False
) -> Statement | None:
    """The jobs ``query`` asks for, selecting ``columns`` (see :func:`_select_statement`)."""
    if query.after is None and not query.is_live:
        # (api) A first page's statement does not depend on `now` (its order is not live): built
        # once. What the REST API and the console ask again and again (an account's first page)
        # then costs no SQL building; a page after another (`after`) is built each time.
        return _first_page_statement(query, tuple(columns), d, expressions)
    return _select_statement(query, columns, d, now=now, expressions=expressions)


@functools.lru_cache(maxsize=32)
def _first_page_statement(query: JobQuery, columns: tuple[str, ...], d: Dialect, expressions: bool) -> Statement | None:
    return _select_statement(query, columns, d, now=0.0, expressions=expressions)


def _select_statement(
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
    if paged and _walked(query, branches):
        paged = False
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
        if query.limit is not None:  # a walked first page
            page_sql, page_params = d.limit(query.limit, 0)
            sql += page_sql
            params.extend(page_params)
        return Statement(sql, tuple(params), width if keyed else 0)
    page_sql, page_params = d.limit(query.limit, query.offset)
    picked = ", ".join(columns if expressions else (f"jobs.{column}" for column in columns))
    outer = ", ".join(f"kz_page.kz_k{i}{direction}" for i in range(width))
    return Statement(
        f"SELECT {picked} FROM ({sql}{page_sql}) AS kz_page JOIN jobs ON jobs.{d.row_key} = kz_page.kz_row"
        f" ORDER BY {outer}",
        (*params, *page_params),
    )
