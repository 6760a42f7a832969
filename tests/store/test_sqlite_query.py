"""SQLite's job queries use their indexes: every sort is an index walk in both directions, text
filters read jobs_text, prefixes are a range of the id index. A plan that falls back to sorting
every job or building its text row by row is what made the console take seconds at 100,000 jobs;
these tests read the plans SQLite chooses (``EXPLAIN QUERY PLAN``), so they do not depend on timing.
The speed itself is measured by bench/bench_query.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzconsole.engine.models import JOB_FIELDS
from kzconsole.engine.store.job_query import SORTS, JobQuery
from kzconsole.engine.store.job_regex import regexp_match
from kzconsole.engine.store.query import count_statement, select_statement
from kzconsole.engine.store.sqlite import MIGRATIONS, SQLiteStore
from tests.store.contract import NOW, make_job

# The index each order walks; the orders by counts and times read the finished jobs' fixed values
# from jobs_settled and sort them (they are not an index's order: see migration 2).
SORT_INDEX = {
    "created": "jobs_created",
    "id": "sqlite_autoindex_jobs_1",
    "status": "jobs_settled",
    "task": "jobs_task",
    "account": "jobs_account",
    "file": "jobs_file",
    "success": "jobs_settled",
    "failure": "jobs_settled",
    "total": "jobs_settled",
    "progress": "jobs_settled",
    "started": "jobs_settled",
    "duration": "jobs_settled",
    "rate": "jobs_settled",
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[SQLiteStore, sqlite3.Connection]]:
    store = SQLiteStore(tmp_path / "kz.db")
    store.create_job(make_job("j1"))
    conn = sqlite3.connect(tmp_path / "kz.db")
    conn.create_function("kz_regexp", 2, regexp_match, deterministic=True)
    yield store, conn
    conn.close()
    store.close()


def plan(conn: sqlite3.Connection, query: JobQuery, *, count: bool = False) -> str:
    if count:
        statement = count_statement(query, SQLiteStore.dialect)
    else:
        statement = select_statement(query, JOB_FIELDS, SQLiteStore.dialect, now=NOW)
    assert statement is not None
    rows = conn.execute("EXPLAIN QUERY PLAN " + statement.sql, statement.params).fetchall()
    # A page is found by its keys, then its rows are read and put in order: that sort (at the top
    # level, of the page's rows only) is left out.
    return " | ".join(
        detail
        for _, parent, _, detail in rows
        if not (parent == 0 and detail == "USE TEMP B-TREE FOR ORDER BY" and "kz_page" in statement.sql)
    )


def test_every_migrated_index_exists(db: tuple[SQLiteStore, sqlite3.Connection]) -> None:
    _, conn = db
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert set(SORT_INDEX.values()) | {"jobs_text"} <= names
    assert "jobs_account_created" not in names  # replaced by jobs_account (either direction)


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("descending", [True, False])
def test_every_sort_walks_its_index(db: tuple[SQLiteStore, sqlite3.Connection], sort: str, descending: bool) -> None:
    _, conn = db
    for query in (
        JobQuery(sort=sort, descending=descending, limit=64),
        JobQuery(sort=sort, descending=descending, limit=64, offset=5000),
    ):
        found = plan(conn, query)
        assert f"INDEX {SORT_INDEX[sort]}" in found, found
        if SORTS[sort].live_keys is None:
            assert "TEMP B-TREE" not in found, found  # an index walk, no sort
        else:  # the finished jobs' values from jobs_settled (covering), the others apart
            assert found.startswith(
                "MATERIALIZE kz_page | MERGE (UNION ALL) | LEFT | SCAN jobs USING COVERING INDEX jobs_settled"
            ), found
            assert "RIGHT | SEARCH jobs USING " in found and "INDEX jobs_status_created (status=?)" in found, found
    # The next page starts where the last one ended: still the same walk.
    anchor = make_job("x", start_timestamp=NOW, end_timestamp=NOW + 1)
    paged = JobQuery(sort=sort, descending=descending, limit=64, now=NOW).next_page(anchor)
    found = plan(conn, paged)
    assert f"INDEX {SORT_INDEX[sort]}" in found, found
    assert SORTS[sort].live_keys is not None or "TEMP B-TREE" not in found, found


@pytest.mark.parametrize(
    "query",
    [
        JobQuery(words=["skel"]),
        JobQuery(regex="fail|partial"),
        JobQuery(task="numbers"),
        JobQuery(account_part="abc"),
        JobQuery(words=["skel"], invert=True, sort="task"),
    ],
)
def test_text_filters_read_the_text_index(db: tuple[SQLiteStore, sqlite3.Connection], query: JobQuery) -> None:
    _, conn = db
    assert "jobs_text" in plan(conn, query.replace(limit=64))
    assert "jobs_text" in plan(conn, query, count=True)


def test_prefixes_are_a_range_of_the_id_index(db: tuple[SQLiteStore, sqlite3.Connection]) -> None:
    _, conn = db
    found = plan(conn, JobQuery(id_prefix="0f3a9c12", limit=2))
    assert "sqlite_autoindex_jobs_1 (id>? AND id<?)" in found, found
    found = plan(conn, JobQuery(id_prefix="0f3a9c12"), count=True)
    assert "sqlite_autoindex_jobs_1 (id>? AND id<?)" in found, found


def test_status_and_account_filters_use_their_indexes(db: tuple[SQLiteStore, sqlite3.Connection]) -> None:
    _, conn = db
    found = plan(conn, JobQuery(status=["failure", "partial", "stopped"], limit=64))
    assert found.count("jobs_status_created (status=?)") == 3 and "MERGE" in found, found
    assert "TEMP B-TREE" not in found
    found = plan(conn, JobQuery(account_id="a" * 32, limit=64, offset=100))
    assert "jobs_account (account_id=?)" in found and "TEMP B-TREE" not in found, found
    assert "jobs_account (account_id=?)" in plan(conn, JobQuery(account_id="a" * 32), count=True)


def test_a_version_1_store_with_jobs_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO jobs (id, account_id, auth_account_id, category, action, status, created)"
        " VALUES ('old1', 'a', 'a', 'skel', 'id2', 'success', ?)",
        (NOW,),
    )
    conn.close()
    with SQLiteStore(path) as store:
        assert [job.id for job in store.list_jobs(JobQuery(sort="task", words=["ID2"]))] == ["old1"]
        assert store.count_jobs(JobQuery(regex="^old")) == 1


@pytest.mark.parametrize("sort", ["task", "account", "file"])
def test_a_status_filter_walks_the_sort_index(db: tuple[SQLiteStore, sqlite3.Connection], sort: str) -> None:
    # Not the status index and a sort of every success: the order's walk, checking each status.
    _, conn = db
    found = plan(conn, JobQuery(sort=sort, status=["success", "failure"], limit=64))
    assert f"INDEX {SORT_INDEX[sort]}" in found and "TEMP B-TREE" not in found, found


def test_a_status_filter_on_counts_reads_only_the_settled_or_the_running(
    db: tuple[SQLiteStore, sqlite3.Connection],
) -> None:
    _, conn = db
    found = plan(conn, JobQuery(sort="rate", status=["success", "failure"], limit=64, now=NOW))
    assert "jobs_settled" in found and "UNION" not in found, found
    found = plan(conn, JobQuery(sort="rate", status="executing", limit=64, now=NOW))
    assert "jobs_settled" not in found and "jobs_status_created" in found, found
