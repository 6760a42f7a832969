"""The listing cache (``api.page_cache_mb``, ``api.job_cache_mb``): pages and each job's listing
text kept until the store's changes feed says what they show changed, so every change another
process makes shows at the very next request, and a page read after a change reads from the store
only the jobs that changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kzconsole.api.listing_cache import ListingCache, Page
from kzconsole.engine.models import EngineLease
from kzconsole.engine.store.sqlite import SQLiteStore
from tests.api.conftest import ACCOUNT, Server
from tests.store.contract import NOW, make_job

LISTING = f"/v2/accounts/{ACCOUNT}/tasks"
MB = 1024 * 1024

# ------------------------------------------------------------------------- the cache alone


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "kz.db")
    yield store
    store.close()


def _position(store: SQLiteStore) -> int:
    return store.changes(None)[0]


def _keep_page(cache: ListingCache, store: SQLiteStore, key: str, account: str, job_ids: list[str]) -> None:
    at = cache.catch_up(_position(store))
    cache.put_page(at, (key,), account, job_ids, Page(key.encode(), b"r", {}))


def _kept(cache: ListingCache, store: SQLiteStore, *keys: str) -> list[bool]:
    cache.catch_up(_position(store))
    return [cache.page((key,)) is not None for key in keys]


def test_a_job_is_kept_until_the_feed_names_it(store: SQLiteStore) -> None:
    for name in ("a", "b", "c"):
        store.create_job(make_job(name))
    cache = ListingCache(store, page_bytes=MB, job_bytes=MB)
    at = cache.catch_up(_position(store))
    for name in ("a", "b", "c"):
        cache.put_text(at, name, f"text of {name}".encode())
    assert cache.texts(["a", "b", "c", "d"]) == [b"text of a", b"text of b", b"text of c", None]

    cache.catch_up(_position(store))  # nothing changed: everything stays
    assert cache.counts() == (0, 3)

    store.update_job("b", {"wait_after_row_ms": 5})
    store.delete_job("c")
    assert cache.texts(["b"]) == [b"text of b"]  # until the cache catches up
    cache.catch_up(_position(store))
    assert cache.texts(["a", "b", "c"]) == [b"text of a", None, None]


def test_a_text_read_before_the_cache_moved_on_is_not_kept(store: SQLiteStore) -> None:
    # A page read in a worker thread: its job's text came from the store before another request
    # caught the cache up past a change of that job; kept, it would never be dropped.
    store.create_job(make_job("a"))
    cache = ListingCache(store, page_bytes=MB, job_bytes=MB)
    old = cache.catch_up(_position(store))
    store.update_job("a", {"wait_after_row_ms": 5})
    new = cache.catch_up(_position(store))
    assert new != old
    cache.put_text(old, "a", b"the text before the change")
    assert cache.texts(["a"]) == [None]
    cache.put_text(new, "a", b"the text after it")
    assert cache.texts(["a"]) == [b"the text after it"]


def test_the_jobs_used_longest_ago_go_first_beyond_the_bound(store: SQLiteStore) -> None:
    cache = ListingCache(store, page_bytes=MB, job_bytes=3 * (100 + 200))  # three texts and their overhead
    at = cache.catch_up(_position(store))
    for name in ("a", "b", "c"):
        cache.put_text(at, name, name.encode() * 100)
    assert cache.texts(["a"]) == [b"a" * 100]  # a is used: b is now the oldest
    cache.put_text(at, "d", b"d" * 100)
    assert [text is not None for text in cache.texts(["a", "b", "c", "d"])] == [True, False, True, True]
    cache.put_text(at, "big", b"x" * 2000)  # larger than the whole cache: not kept, nothing dropped
    assert cache.counts() == (0, 3)


def test_a_page_is_dropped_by_what_changes_it_and_by_nothing_else(store: SQLiteStore) -> None:
    for name, account in (("a1", "acct-a"), ("a2", "acct-a"), ("a3", "acct-a"), ("b1", "acct-b")):
        store.create_job(make_job(name, account_id=account))
    cache = ListingCache(store, page_bytes=MB, job_bytes=MB)

    def keep_all() -> None:
        _keep_page(cache, store, "a-first", "acct-a", ["a3", "a2"])
        _keep_page(cache, store, "a-next", "acct-a", ["a1"])
        _keep_page(cache, store, "b-first", "acct-b", ["b1"])

    keep_all()
    assert _kept(cache, store, "a-first", "a-next", "b-first") == [True, True, True]
    # Nothing a listing shows: an engine's heartbeat, a job's log.
    store.heartbeat(EngineLease(node="n:1:x", host="h", pid=1, started=NOW, expires=NOW + 10))
    store.append_file("a2", "log", b"a line\n")
    assert _kept(cache, store, "a-first", "a-next", "b-first") == [True, True, True]
    # A job of a page: that page only.
    store.update_job("a2", {"wait_after_row_ms": 9})
    assert _kept(cache, store, "a-first", "a-next", "b-first") == [False, True, True]
    keep_all()
    store.delete_job("a1")
    assert _kept(cache, store, "a-first", "a-next", "b-first") == [True, False, True]
    # A job no kept page shows: a new one, the pages of its account (it may belong on any).
    keep_all()
    store.create_job(make_job("b2", account_id="acct-b", created=NOW + 5))
    assert _kept(cache, store, "a-first", "a-next", "b-first") == [True, True, False]
    # One gone that no kept page showed changes none (a kept page would show it).
    keep_all()
    store.create_job(make_job("c1", account_id="acct-c"))
    store.delete_job("c1")
    assert _kept(cache, store, "a-first", "a-next", "b-first") == [True, True, True]


def test_a_page_read_while_the_feed_moved_is_not_kept(store: SQLiteStore) -> None:
    # It may hold a change made after the position the cache is at: kept, it would stay when
    # the cache catches up past that change (the change's job on the page, it looks unchanged).
    store.create_job(make_job("a1"))
    cache = ListingCache(store, page_bytes=MB, job_bytes=MB)
    at = cache.catch_up(_position(store))
    store.create_job(make_job("a2", created=NOW + 1))  # while the page is read
    cache.put_page(at, ("first",), "acct-a", ["a2", "a1"], Page(b"[]", b"r", {}))
    assert cache.page(("first",)) is None
    at = cache.catch_up(_position(store))
    cache.put_page(at, ("first",), "acct-a", ["a2", "a1"], Page(b"[]", b"r", {}))
    assert cache.page(("first",)) is not None


def test_pages_used_longest_ago_go_first_beyond_the_bound(store: SQLiteStore) -> None:
    cache = ListingCache(store, page_bytes=3 * (100 + 40 + 200), job_bytes=MB)
    for key in ("p", "q", "r"):
        at = cache.catch_up(_position(store))
        cache.put_page(at, (key,), "acct-a", ["x"], Page(b"." * 100, b"r", {}))
    assert cache.page(("p",)) is not None  # p is used: q is now the oldest
    cache.put_page(at, ("s",), "acct-a", ["y"], Page(b"." * 100, b"r", {}))
    assert [cache.page((key,)) is not None for key in ("p", "q", "r", "s")] == [True, False, True, True]
    store.update_job("x", {"wait_after_row_ms": 1})  # no such job: the feed names it all the same
    store.create_job(make_job("x"))
    cache.catch_up(_position(store))
    assert [cache.page((key,)) is not None for key in ("p", "r", "s")] == [False, False, True]


# --------------------------------------------------------------------- through the server


def _page(client: httpx.Client, **params: str) -> dict[str, Any]:
    answer = client.get(LISTING, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _add(server: Server, rows: int = 2) -> str:
    source = server.root / "in.csv"
    source.write_text("n\n" + "".join(f"{n}\n" for n in range(rows)))
    out = server.cli("tasks", "add", "apitest", "hold", "--account", ACCOUNT, "--input", str(source), "--json")
    return json.loads(out.stdout)["id"]


@pytest.mark.parametrize("kept_config", [{"page_cache_mb": 0}, {}], ids=["jobs kept", "pages and jobs kept"])
def test_pages_from_kept_jobs_are_the_pages_read_from_the_store(make_server, kept_config: dict[str, Any]) -> None:
    # One server keeps jobs (and pages), the other nothing: every request reads its page from the
    # store. Another process (the command line) changes the jobs between requests; each change
    # shows on the next request, and both servers answer the same.
    kept = make_server("kept", engine=False, api=kept_config)
    plain = make_server("plain", engine=False, data=kept.data, api={"page_cache_mb": 0, "job_cache_mb": 0})
    made = [_add(kept, rows) for rows in range(1, 8)]
    key = kept.add_key()["key"]
    with kept.client(kept.token(key)) as a, plain.client(plain.token(key)) as b:

        def same(**params: str) -> dict[str, Any]:
            one, other = _page(a, **params), _page(b, **params)
            for name in ("data", "revision", "page_size", "start_key", "next_start_key"):
                assert one.get(name) == other.get(name), name
            return one

        for _ in range(2):  # the first read fills the cache, the second answers from it
            page = same()
            assert [job["id"] for job in page["data"]] == made[::-1]
        kept.cli("tasks", "set", made[2], "--wait-ms", "250")
        assert {job["id"]: job for job in same()["data"]}[made[2]]["wait_after_row_ms"] == 250
        kept.cli("tasks", "remove", made[4])
        assert made[4] not in [job["id"] for job in same()["data"]]
        newer = _add(kept)
        assert same()["data"][0]["id"] == newer
        # Pages after the first, from a start_key, are built the same way.
        first = same(page_size="3")
        second = same(page_size="3", start_key=first["next_start_key"])
        kept.cli("tasks", "set", second["data"][0]["id"], "--wait-ms", "7")
        again = same(page_size="3", start_key=first["next_start_key"])
        assert again["data"][0]["wait_after_row_ms"] == 7
        assert again["revision"] != second["revision"]
