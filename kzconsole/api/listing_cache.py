"""The REST API's listing pages and their jobs, kept in memory until the store's changes feed says
what they show changed.

Monster UI and scripts poll an account's first page; while jobs run, engines change a few jobs a
second. A page read from the store costs most of its time in SQLite reading its 50 jobs' columns
and writing their JSON (docs/performance.md, "The REST API"), where all but the changed job are as
they were. So two things are kept:

- **pages** as answered (``data`` in JSON, its revision, the envelope's paging keys), with the ids
  of their jobs;
- **jobs**: each job's text as a page shows it.

Both are dropped by what the feed names, and no more: a change of a job drops that job's text and
the pages that show it; a job that no kept page shows (one just created, or one on a page not
kept) is read once to learn its account, whose pages are dropped; a job removed that no kept page
shows changes none; changes of anything but jobs (engines' heartbeats, logs, firings, keys) drop
nothing. A page read after a change then reads its keys from the index, and from the store only
the jobs it does not have.

This rests on three facts. The feed follows commit order (``Store.ordered_changes``, SQLite): a
thing read after the cache moved to position P is as it is, or changed by a commit after P, which
the feed shows the next time the cache moves. A page is kept only if the feed did not move while
it was read, so every kept page is the store as it was at one position: a job in a kept page's
range is on that page. A job's account and creation time, the listing's order, never change once
it is created (no engine step changes them; restart makes a new job).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kzconsole.engine import Store

# What a kept thing costs beyond its bytes: dict entries, keys, object heads.
_OVERHEAD = 200
# Changes of these kinds can change what a listing shows (a job's record, or its removal).
_JOB_KINDS = frozenset({"job", "deleted"})


@dataclass(frozen=True)
class Page:
    """A listing page as answered: ``data`` in JSON, its revision, the envelope's other keys."""

    body: bytes
    revision: bytes
    extra: dict[str, Any]


@dataclass(frozen=True)
class _Kept:
    page: Page
    account_id: str
    job_ids: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.page.body) + 40 * len(self.job_ids) + _OVERHEAD


class ListingCache:
    """Pages by (account, page size, start key) and jobs' texts by job id, each bounded in bytes
    (the least recently used go first), dropped as the module docstring says. Thread-safe: pages
    are read in worker threads too (large page sizes)."""

    def __init__(self, store: Store, *, page_bytes: int, job_bytes: int) -> None:
        self.store = store
        self.page_bytes = page_bytes
        self.job_bytes = job_bytes
        self._lock = threading.Lock()
        self._position: int | None = None
        self._pages: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()
        self._pages_size = 0
        self._showing: dict[str, set[tuple[Any, ...]]] = {}  # job id -> the kept pages showing it
        self._texts: OrderedDict[str, bytes] = OrderedDict()
        self._texts_size = 0

    @property
    def keeps_jobs(self) -> bool:
        return self.job_bytes > 0

    # ------------------------------------------------------------------ the feed

    def catch_up(self, position: int) -> int:
        """Drop what the feed's changes up to (at least) ``position`` make stale; ``position`` is the
        feed's position as the caller last read it. Returns the position the cache is at, which
        :meth:`put_page` and :meth:`put_text` take back."""
        with self._lock:
            if self._position is None:
                self._position = position
                return position
            if position == self._position:
                return position
            self._position, changes = self.store.changes(self._position)
            unshown: set[str] = set()
            for change in changes:
                if change.kind == "reset":  # the feed could not tell what changed
                    self._clear()
                    unshown.clear()
                elif change.kind in _JOB_KINDS and change.job_id is not None:
                    job_id = change.job_id
                    self._drop_text(job_id)
                    keys = self._showing.get(job_id)
                    if keys:
                        for key in list(keys):
                            self._drop_page(key)
                    else:
                        unshown.add(job_id)
            if unshown and self._pages:
                # Which accounts' pages a job shown on none can change: read once. A job that is
                # gone changes none (a kept page is read whole at one position: it would show it).
                found = self.store.job_documents(unshown, columns=("account_id",))
                accounts = {row[1] for row in found.values()}
                for key in [key for key, kept in self._pages.items() if kept.account_id in accounts]:
                    self._drop_page(key)
            return self._position

    # ------------------------------------------------------------------ pages

    def page(self, key: tuple[Any, ...]) -> Page | None:
        with self._lock:
            kept = self._pages.get(key)
            if kept is None:
                return None
            self._pages.move_to_end(key)
            return kept.page

    def put_page(self, at: int, key: tuple[Any, ...], account_id: str, job_ids: Sequence[str], page: Page) -> None:
        """Keep ``page`` (of ``account_id``, showing ``job_ids``), read after :meth:`catch_up`
        returned ``at``: only if the feed is still there, so that the page is the store as it
        was at ``at`` (a page holding a commit made after ``at`` would hide it from the next
        :meth:`catch_up`)."""
        kept = _Kept(page, account_id, tuple(job_ids))
        if kept.size > self.page_bytes:
            return
        now = self.store.changes(None)[0]
        with self._lock:
            if at != self._position or now != at:
                return
            self._drop_page(key)
            self._pages[key] = kept
            self._pages_size += kept.size
            for job_id in kept.job_ids:
                self._showing.setdefault(job_id, set()).add(key)
            while self._pages_size > self.page_bytes:
                self._drop_page(next(iter(self._pages)))

    # ------------------------------------------------------------------ jobs

    def texts(self, job_ids: Sequence[str]) -> list[bytes | None]:
        """The kept text of each job (None where it is not kept)."""
        with self._lock:
            texts = self._texts
            found = [texts.get(job_id) for job_id in job_ids]
            for job_id, text in zip(job_ids, found, strict=True):
                if text is not None:
                    texts.move_to_end(job_id)
            return found

    def put_text(self, at: int, job_id: str, text: bytes) -> None:
        """Keep a job's ``text``, read from the store after :meth:`catch_up` returned ``at``; unless
        the cache moved on since: the feed may then have named the job before its text came in."""
        size = len(text) + _OVERHEAD
        with self._lock:
            if at != self._position or size > self.job_bytes:
                return
            self._drop_text(job_id)
            self._texts[job_id] = text
            self._texts_size += size
            while self._texts_size > self.job_bytes:
                self._drop_text(next(iter(self._texts)))

    def counts(self) -> tuple[int, int]:
        """How many pages and jobs' texts are kept."""
        with self._lock:
            return len(self._pages), len(self._texts)

    # ------------------------------------------------------------------ (the lock held)

    def _drop_page(self, key: tuple[Any, ...]) -> None:
        kept = self._pages.pop(key, None)
        if kept is None:
            return
        self._pages_size -= kept.size
        for job_id in kept.job_ids:
            keys = self._showing.get(job_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._showing[job_id]

    def _drop_text(self, job_id: str) -> None:
        text = self._texts.pop(job_id, None)
        if text is not None:
            self._texts_size -= len(text) + _OVERHEAD

    def _clear(self) -> None:
        self._pages.clear()
        self._showing.clear()
        self._texts.clear()
        self._pages_size = self._texts_size = 0
