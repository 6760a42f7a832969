"""What the jobs view lists: the filter an operator types, the sort, and where the rows come from.

Filter words (all must match): a status (``executing``, ``fail``, ``done``...) or ``status:a,b``;
``account:ID`` (a whole id, or a piece of one); ``task:PIECE``; ``id:PREFIX``; ``file:PIECE``;
``/REGEX/`` or ``re:REGEX`` (a regular expression, searched in the id, task, account and file name,
case-insensitive); any other word is a piece of one of those. A leading ``!`` inverts the whole
filter (the jobs it does *not* match), as in k9s.

Sorts: any column, ascending or descending (``Sort``). A filter and a sort become one
:class:`~kzconsole.engine.JobQuery`, which the store answers with its indexes (:class:`QuerySource`
pages it for the list): nothing is read into the console to be filtered or sorted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kzconsole.engine import InvalidQuery, JobQuery, JobRecord, JobStatus

if TYPE_CHECKING:
    from kzconsole.engine import Engine

STATUSES = [s.value for s in JobStatus]
STATUS_ALIASES = {
    "running": ["executing"],
    "run": ["executing"],
    "active": ["executing", "pending"],
    "failed": ["failure"],
    "fail": ["failure"],
    "ok": ["success"],
    "done": [s.value for s in JobStatus if s.is_finished],
    "finished": [s.value for s in JobStatus if s.is_finished],
    "error": ["internal_error"],
    "errors": ["internal_error"],
    "queued": ["pending"],
    "waiting": ["pending"],
}
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class FilterError(ValueError):
    """A filter that cannot be used (a bad regular expression); str() says what and where."""


@dataclass(frozen=True)
class SortColumn:
    key: str  # the column's key in the job list
    query: str  # the store's sort (JobQuery.sort)
    label: str
    descending: bool  # the direction of the first press


SORT_COLUMNS: dict[str, SortColumn] = {
    "start": SortColumn("start", "created", "created", True),  # the default: newest first
    "id": SortColumn("id", "id", "id", False),
    "status": SortColumn("status", "status", "status (running first)", True),
    "task": SortColumn("task", "task", "task", False),
    "bar": SortColumn("bar", "progress", "progress", True),
    "counts": SortColumn("counts", "failure", "failures", True),
    "duration": SortColumn("duration", "duration", "time", True),
    "rate": SortColumn("rate", "rate", "rate", True),
    "account": SortColumn("account", "account", "account", False),
    "file": SortColumn("file", "file", "file name", False),
}


@dataclass(frozen=True)
class Sort:
    column: str = "start"
    descending: bool = True

    def describe(self) -> str:
        if self.column == "start":
            return "newest first" if self.descending else "oldest first"
        if self.column == "status":
            return "running first" if self.descending else "running last"
        return f"{SORT_COLUMNS[self.column].label}, {'descending' if self.descending else 'ascending'}"


@dataclass(frozen=True)
class JobFilter:
    """A parsed filter: every term must match; ``invert`` lists what it does not match."""

    text: str = ""
    statuses: tuple[str, ...] | None = None
    account: str | None = None  # a whole account id
    account_part: str | None = None
    task: str | None = None
    id_prefix: str | None = None
    file: str | None = None
    words: tuple[str, ...] = field(default_factory=tuple)
    regex: str | None = None
    invert: bool = False

    @property
    def empty(self) -> bool:
        return not self.text.strip()

    def describe(self) -> str:
        return self.text.strip()

    def query(self, sort: Sort = Sort(), now: float | None = None) -> JobQuery:
        """The store's query for this filter in this order. The store inverts words and the regular
        expression only; an inverted filter's other terms become what inverts the same way (the
        other statuses; pieces of the job's text)."""
        statuses = list(self.statuses) if self.statuses is not None else None
        words = list(self.words) + ([self.file] if self.file else [])
        regex = self.regex
        narrowing: dict[str, Any] = {}
        if self.invert:
            if statuses is not None:
                statuses = [s for s in STATUSES if s not in statuses]
            words += [w for w in (self.account, self.account_part, self.task) if w]
            if self.id_prefix:
                regex = f"^{re.escape(self.id_prefix)}" + (f"|{regex}" if regex else "")
        else:
            narrowing = {
                "account_id": self.account,
                "account_part": self.account_part,
                "task": self.task,
                "id_prefix": self.id_prefix,
            }
        return JobQuery(
            status=tuple(statuses) if statuses is not None else None,
            words=tuple(words),
            regex=regex,
            invert=self.invert and bool(words or regex),
            sort=SORT_COLUMNS[sort.column].query,
            descending=sort.descending,
            now=now,
            **narrowing,
        )


def _statuses_for(word: str) -> list[str] | None:
    if word in STATUS_ALIASES:
        return STATUS_ALIASES[word]
    found = [s for s in STATUSES if s.startswith(word)]
    return found or None


def parse_filter(text: str) -> JobFilter:
    """Raise FilterError for a regular expression that does not compile."""
    body = text.strip()
    invert = body.startswith("!")
    if invert:
        body = body[1:].lstrip()
    statuses: set[str] | None = None
    account = account_part = task = id_prefix = file = regex = None
    words: list[str] = []
    for raw in body.split():
        if len(raw) >= 2 and raw.startswith("/") and raw.endswith("/"):
            regex = _check_regex(raw[1:-1])
            continue
        if raw.lower().startswith("re:"):
            regex = _check_regex(raw[3:])
            continue
        raw = raw.lower()
        key, sep, value = raw.partition(":")
        if sep and key in ("status", "s", "state"):
            found: set[str] = set()
            for part in value.split(","):
                found.update(_statuses_for(part) or [] if part else [])
            statuses = (statuses or set()) | found
        elif sep and key in ("account", "acct", "a"):
            if _HEX32.match(value):
                account = value
            else:
                account_part = value
        elif sep and key in ("task", "t"):
            task = value
        elif sep and key == "id":
            id_prefix = value
        elif sep and key in ("file", "f"):
            file = value
        elif raw in STATUSES or raw in STATUS_ALIASES or (len(raw) >= 3 and _statuses_for(raw)):
            # A status, an alias, or the start of one (so typing "stop" already finds "stopped").
            statuses = (statuses or set()) | set(_statuses_for(raw) or [])
        else:
            words.append(raw)
    return JobFilter(
        text=text,
        statuses=tuple(sorted(statuses)) if statuses is not None else None,
        account=account,
        account_part=account_part,
        task=task,
        id_prefix=id_prefix,
        file=file,
        words=tuple(words),
        regex=regex,
        invert=invert,
    )


def _check_regex(regex: str) -> str:
    try:
        JobQuery(regex=regex)
    except InvalidQuery as exc:
        raise FilterError(str(exc)) from None
    return regex


class QuerySource:
    """The jobs of one query, paged from the store (a count, and any page: the list jumps anywhere)."""

    def __init__(self, engine: Engine, query: JobQuery) -> None:
        self.engine = engine
        self.query = query

    def count(self) -> int:
        return self.engine.count_jobs(self.query)

    def page(self, offset: int, limit: int) -> Sequence[JobRecord]:
        return self.engine.list_jobs(JobQuery.of(self.query, offset=offset, limit=limit))
