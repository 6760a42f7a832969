"""What the jobs view lists: the filter an operator types, the sort, and where the rows come from.

Filter words (all must match): a status (``executing``, ``fail``, ``done``...) or ``status:a,b``;
``account:ID`` (a whole id, or a piece of one); ``task:PIECE``; ``id:PREFIX``; ``file:PIECE``;
``/REGEX/`` or ``re:REGEX`` (a regular expression, searched in the id, task, account and file name,
case-insensitive); any other word is a piece of one of those. A leading ``!`` inverts the whole
filter (the jobs it does *not* match), as in k9s.

Sorts: any column, ascending or descending (``Sort``). What the store can answer (statuses, a whole
account id, a task piece, an id prefix; newest or oldest first, attention first) pages straight
from it; anything else is read once in the background and sorted in memory (``matches``, ``sort_key``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from kzconsole.engine import JobRecord, JobStatus
from kzconsole.widgets import fmt

if TYPE_CHECKING:
    from kzconsole.engine import Engine

STATUSES = [s.value for s in JobStatus]
STATUS_ALIASES = {
    "running": ["executing"], "run": ["executing"], "active": ["executing", "pending"],
    "failed": ["failure"], "fail": ["failure"], "ok": ["success"], "done": [s.value for s in JobStatus if s.is_finished],
    "finished": [s.value for s in JobStatus if s.is_finished], "error": ["internal_error"],
    "errors": ["internal_error"], "queued": ["pending"], "waiting": ["pending"],
}
# Sorted by status, the jobs that need attention come first.
STATUS_ORDER = ["executing", "pending", "internal_error", "failure", "partial", "stopped", "success"]
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class FilterError(ValueError):
    """A filter that cannot be used (a bad regular expression); str() says what and where."""


@dataclass(frozen=True)
class JobFilter:
    """A parsed filter: every term must match; ``invert`` lists what it does not match."""

    text: str = ""
    statuses: tuple[str, ...] | None = None
    account: str | None = None  # a whole account id: the store answers
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

    @property
    def store_only(self) -> bool:
        """The store answers it (status, whole account, task piece, id prefix): paged, no scan."""
        return (self.account_part is None and not self.words and self.regex is None and self.file is None
                and not self.invert)

    def matches(self, job: JobRecord) -> bool:
        return self._all_terms(job) != self.invert

    def _all_terms(self, job: JobRecord) -> bool:
        if self.statuses is not None and job.status.value not in self.statuses:
            return False
        if self.account is not None and job.account_id != self.account:
            return False
        if self.account_part is not None and self.account_part not in job.account_id.lower():
            return False
        if self.task is not None and self.task not in job.task_name.lower():
            return False
        if self.id_prefix is not None and not job.id.startswith(self.id_prefix):
            return False
        if self.file is not None and self.file not in (job.file_name or "").lower():
            return False
        fields = (job.id, job.task_name.lower(), job.account_id.lower(), (job.file_name or "").lower())
        for word in self.words:
            if not any(word in f for f in fields):
                return False
        if self.regex is not None:
            pattern = _compiled(self.regex)
            if not any(pattern.search(f) for f in (job.id, job.task_name, job.account_id, job.file_name or "")):
                return False
        return True

    def describe(self) -> str:
        return self.text.strip()


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(regex: str) -> re.Pattern[str]:
    pattern = _PATTERNS.get(regex)
    if pattern is None:
        pattern = _PATTERNS[regex] = re.compile(regex, re.IGNORECASE)
    return pattern


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
        account=account, account_part=account_part, task=task, id_prefix=id_prefix, file=file,
        words=tuple(words), regex=regex, invert=invert,
    )


def _check_regex(regex: str) -> str:
    try:
        _compiled(regex)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise FilterError(f"not a regular expression: {regex!r}: {exc.msg}{where}") from None
    return regex


# ------------------------------------------------------------------------------ sorting


@dataclass(frozen=True)
class SortColumn:
    key: str  # the column's key in the job list
    label: str
    descending: bool  # the direction of the first press


SORT_COLUMNS: dict[str, SortColumn] = {
    "start": SortColumn("start", "created", True),  # the default: newest first
    "id": SortColumn("id", "id", False),
    "status": SortColumn("status", "status (attention first)", False),
    "task": SortColumn("task", "task", False),
    "bar": SortColumn("bar", "progress", True),
    "counts": SortColumn("counts", "failures", True),
    "duration": SortColumn("duration", "time", True),
    "rate": SortColumn("rate", "rate", True),
    "account": SortColumn("account", "account", False),
    "file": SortColumn("file", "file name", False),
}


@dataclass(frozen=True)
class Sort:
    column: str = "start"
    descending: bool = True

    def describe(self) -> str:
        label = SORT_COLUMNS[self.column].label
        if self.column == "start":
            return "newest first" if self.descending else "oldest first"
        if self.column == "status":
            return "attention first" if not self.descending else "attention last"
        return f"{label}, {'descending' if self.descending else 'ascending'}"

    @property
    def store_order(self) -> bool:
        """The store pages it as it is (newest or oldest first, or by status)."""
        return self.column in ("start", "status")


def _rank(job: JobRecord) -> int:
    return {s: i for i, s in enumerate(STATUS_ORDER)}.get(job.status.value, 99)


def sort_value(column: str, now: float) -> Callable[[JobRecord], Any]:
    """The value a job sorts by in ``column`` (ties are broken by newest first)."""
    if column == "id":
        return lambda j: j.id
    if column == "status":
        return _rank
    if column == "task":
        return lambda j: j.task_name
    if column == "bar":
        return lambda j: (j.success_count + j.failure_count) / j.total_count if j.total_count else (
            1.0 if j.status.is_finished else 0.0)
    if column == "counts":
        return lambda j: (j.failure_count, -j.success_count)
    if column == "duration":
        return lambda j: fmt.job_elapsed(j, now) or 0.0
    if column == "rate":
        return lambda j: fmt.job_rate(j, None, now) or 0.0
    if column == "account":
        return lambda j: j.account_id
    if column == "file":
        return lambda j: (j.file_name or "").lower()
    return lambda j: j.created


def sort_records(records: list[JobRecord], sort: Sort, now: float) -> None:
    """Sort in place: by the column, then newest first (two stable passes)."""
    records.sort(key=lambda j: (j.created, j.id), reverse=True)
    records.sort(key=sort_value(sort.column, now), reverse=sort.descending)


# ------------------------------------------------------------------------------ sources


class StoreSource:
    """Jobs straight from the store, newest (or oldest) first, narrowed by status, account, a piece
    of the task name and an id prefix."""

    def __init__(self, engine: "Engine", *, statuses: Sequence[str] | None = None,
                 account_id: str | None = None, task: str | None = None, id_prefix: str | None = None,
                 oldest_first: bool = False) -> None:
        self.engine = engine
        self.statuses = list(statuses) if statuses else None
        self.account_id = account_id
        self.task = task
        self.id_prefix = id_prefix
        self.oldest_first = oldest_first
        self._total = 0

    def count(self) -> int:
        self._total = self.engine.count_jobs(status=self.statuses, account_id=self.account_id, task=self.task,
                                             id_prefix=self.id_prefix)
        return self._total

    def _list(self, limit: int, offset: int) -> list[JobRecord]:
        return self.engine.list_jobs(status=self.statuses, account_id=self.account_id, task=self.task,
                                     id_prefix=self.id_prefix, limit=limit, offset=offset)

    def page(self, offset: int, limit: int) -> Sequence[JobRecord]:
        if not self.oldest_first:
            return self._list(limit, offset)
        # Oldest first is the newest-first order read from its end.
        start = max(0, self._total - offset - limit)
        size = max(0, min(limit, self._total - offset))
        return list(reversed(self._list(size, start)))


class GroupedSource:
    """Several store sources one after the other (the sort by status: attention first)."""

    def __init__(self, parts: Sequence[StoreSource]) -> None:
        self.parts = list(parts)
        self._counts: list[int] = [0] * len(self.parts)

    def count(self) -> int:
        self._counts = [part.count() for part in self.parts]
        return sum(self._counts)

    def page(self, offset: int, limit: int) -> Sequence[JobRecord]:
        out: list[JobRecord] = []
        for part, size in zip(self.parts, self._counts):
            if limit <= 0:
                break
            if offset >= size:
                offset -= size
                continue
            rows = part.page(offset, min(limit, size - offset))
            out.extend(rows)
            limit -= len(rows)
            offset = 0
        return out


def store_source(engine: "Engine", job_filter: JobFilter, sort: Sort) -> StoreSource | GroupedSource | None:
    """The source that pages from the store for this filter and sort, or None (read and sort)."""
    if not job_filter.store_only or not sort.store_order:
        return None
    statuses = list(job_filter.statuses) if job_filter.statuses is not None else None
    narrowing: dict[str, Any] = {"account_id": job_filter.account, "task": job_filter.task,
                                 "id_prefix": job_filter.id_prefix}
    if sort.column == "status":
        order = [s for s in STATUS_ORDER if statuses is None or s in statuses]
        if sort.descending:
            order.reverse()
        return GroupedSource([StoreSource(engine, statuses=[s], **narrowing) for s in order])
    return StoreSource(engine, statuses=statuses, oldest_first=not sort.descending, **narrowing)


def scan_narrowing(job_filter: JobFilter) -> dict[str, Any]:
    """What the store can narrow a scan to (nothing when the filter is inverted)."""
    if job_filter.invert:
        return {}
    statuses = list(job_filter.statuses) if job_filter.statuses is not None else None
    return {"status": statuses, "account_id": job_filter.account, "task": job_filter.task,
            "id_prefix": job_filter.id_prefix}
