"""SQLiteStore: the shared contract, plus what only the SQLite file has (permissions, schema
versions, corrupt files, WAL, lock waits)."""

from __future__ import annotations

import functools
import io
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kzconsole.engine.models import JOB_FIELDS, JobStatus
from kzconsole.engine.store import open_store
from kzconsole.engine.store import sqlite as sqlite_module
from kzconsole.engine.store.base import ApiKey, StoreError
from kzconsole.engine.store.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStore
from tests.store.contract import NOW, StoreContract, make_job


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "kz.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(db_path)
    yield store
    store.close()


@pytest.fixture
def store_factory(db_path: Path, store: SQLiteStore) -> Callable[[], SQLiteStore]:
    # functools.partial of a class is picklable: it reaches spawned children.
    return functools.partial(SQLiteStore, str(db_path))


class TestSQLiteStore(StoreContract):
    pass


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=10)


# ------------------------------------------------------------------------------ the file


def test_creates_private_directory_and_files(tmp_path: Path) -> None:
    path = tmp_path / "data" / "kz.db"
    with SQLiteStore(path) as store:
        store.create_job(make_job("j1"))
        assert mode(path.parent) == 0o700
        assert mode(path) == 0o600
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            assert side.exists() and mode(side) == 0o600


def test_open_store_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kz.db'}")
    try:
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "kz.db"
    finally:
        store.close()


def test_wal_and_synchronous_normal(store: SQLiteStore, db_path: Path) -> None:
    store.create_job(make_job("j1"))
    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    own = store.connection()
    assert own.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert own.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_a_handle_checkpoints_the_wal_in_a_thread_of_its_own(store: SQLiteStore, db_path: Path) -> None:
    """Writers never wait for a checkpoint's fsyncs in their COMMIT: the handle's own thread
    copies the WAL into the database every so many commits, long before the WAL reaches the
    size at which a committing connection would."""
    store.create_job(make_job("j0"))
    before = db_path.stat().st_size
    others = set(threading.enumerate())
    for i in range(1, 80):  # 80 small commits: a few hundred pages, far below wal_autocheckpoint
        store.create_job(make_job(f"j{i}"))
    (thread,) = [t for t in set(threading.enumerate()) - others if t.name == "kz-sqlite-checkpoint"]
    deadline = time.monotonic() + 30
    while db_path.stat().st_size <= before:  # the pages reach the database file
        assert time.monotonic() < deadline, "the WAL was not checkpointed"
        time.sleep(0.01)
    assert store.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 1000
    store.close()
    assert not thread.is_alive()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        SQLiteStore(tmp_path)


def test_closed_store_refuses_calls(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_job("j1")


# ------------------------------------------------------------------------------ the schema


def test_schema_version_and_one_column_per_job_field(store: SQLiteStore, db_path: Path) -> None:
    conn = raw(db_path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(jobs)"))
    finally:
        conn.close()
    assert version == SCHEMA_VERSION == len(MIGRATIONS)
    # A new JobRecord field needs a new migration adding its column.
    assert columns == JOB_FIELDS


def test_migrates_an_empty_file(db_path: Path) -> None:
    db_path.touch()
    with SQLiteStore(db_path) as store:
        store.create_job(make_job("j1"))
        assert store.get_job("j1") == make_job("j1")
    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_migrates_a_version_0_database(db_path: Path) -> None:
    conn = raw(db_path)
    conn.execute("CREATE TABLE unrelated (x)")
    conn.close()
    with SQLiteStore(db_path) as store:
        store.create_job(make_job("j1"))
    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = {row[0] for row in rows}
    finally:
        conn.close()
    assert {"jobs", "engines", "firings", "unrelated"} <= tables


def test_reopening_keeps_data(db_path: Path) -> None:
    with SQLiteStore(db_path) as store:
        store.create_job(make_job("j1"))
    with SQLiteStore(db_path) as store:
        assert store.get_job("j1") == make_job("j1")


def test_newer_schema_is_refused_and_not_touched(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    conn = raw(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    before = db_path.read_bytes()
    expected = (
        f"schema version {SCHEMA_VERSION + 5} is newer than this kzconsole supports "
        rf"\({SCHEMA_VERSION}\)"
    )
    with pytest.raises(StoreError, match=expected):
        SQLiteStore(db_path)
    assert db_path.read_bytes() == before


def test_corrupt_file_is_refused_and_not_overwritten(db_path: Path) -> None:
    garbage = b"this is a CSV file, not a database\n" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StoreError, match=str(db_path)) as info:
        SQLiteStore(db_path)
    assert "not a" in str(info.value)
    assert db_path.read_bytes() == garbage


# ------------------------------------------------------------------------------ large stores


def test_queries_use_indexes_with_100k_jobs(store: SQLiteStore, db_path: Path) -> None:
    statuses = [s.value for s in JobStatus]
    # Rows built straight as column tuples: 100,000 JobRecords would take longer than the test.
    template = dict(zip(JOB_FIELDS, store.job_values(make_job("x")), strict=True))
    values = []
    for n in range(100_000):
        template.update(
            id=f"j{n:06d}",
            account_id=f"acct-{n % 50}",
            status=statuses[n % len(statuses)],
            created=NOW + n,
            queued_at=NOW + n if n % 7 == 0 else None,
        )
        values.append(tuple(template.values()))
    conn = raw(db_path)
    try:
        conn.execute("BEGIN")
        marks = ", ".join("?" * len(JOB_FIELDS))
        conn.executemany(f"INSERT INTO jobs ({', '.join(JOB_FIELDS)}) VALUES ({marks})", values)
        conn.execute("COMMIT")
    finally:
        conn.close()

    # Record the SQL the store really runs (with values expanded), to check its query plans.
    conn = store.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)

    assert [j.id for j in store.list_jobs(limit=3)] == ["j099999", "j099998", "j099997"]
    assert len(store.list_jobs(limit=50, offset=50_000)) == 50
    assert len(store.list_jobs(account_id="acct-7", limit=50)) == 50
    assert len(store.list_jobs(status="pending", limit=50, offset=100)) == 50
    finished = store.list_jobs(status=["success", "failure", "stopped", "success"], limit=50)
    assert [j.created for j in finished] == sorted((j.created for j in finished), reverse=True)
    assert {j.status.value for j in finished} == {"success", "failure", "stopped"}
    assert len(finished) == 50
    assert len(store.list_jobs(account_id="acct-7", status=["pending", "partial"], limit=5)) == 5
    assert store.count_jobs() == 100_000
    assert store.count_jobs(account_id="acct-7") == 2_000
    assert store.count_jobs(status="executing") == len(range(1, 100_000, len(statuses)))
    assert store.count_jobs(status=["success", "failure"]) == 2 * len(range(0, 100_000, 7))
    claimed = store.claim_queued("e1", 5, NOW)
    assert [j.id for j in claimed] == ["j000000", "j000007", "j000014", "j000021", "j000028"]
    # Their speed is the query plans checked below (bench/bench_query.py times them): no
    # wall-clock limit here, which a loaded machine would break.
    conn.set_trace_callback(None)

    # No ANALYZE was run: the plans must be good on a store that never had statistics.
    selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 10
    for query in selects:
        # A page is found by its keys, then its rows are read and put in order: that last sort
        # (top level, of the page's rows only) is the one temporary b-tree allowed.
        plan = " | ".join(
            detail
            for _, parent, _, detail in conn.execute(f"EXPLAIN QUERY PLAN {query}")
            if not (parent == 0 and detail == "USE TEMP B-TREE FOR ORDER BY" and "kz_page" in query)
        )
        assert "USING" in plan and "TEMP B-TREE" not in plan, f"{query}: {plan}"


# ------------------------------------------------------------------------------ locks


def _hold_write_lock(path: str, ready: Any, seconds: float) -> None:
    """In another process: take the write lock, change j1, hold it ``seconds``, commit."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE jobs SET error = 'held' WHERE id = 'j1'")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_waits_for_another_process_holding_the_write_lock(
    store: SQLiteStore, db_path: Path, mp: Any, start_process: Any
) -> None:
    store.create_job(make_job("j1"))
    ready = mp.Event()
    holder = start_process(_hold_write_lock, str(db_path), ready, 2.0)
    assert ready.wait(timeout=30)
    # Readers are not blocked by the writer (WAL), and see the last committed state.
    assert store.get_job("j1") == make_job("j1")
    started = time.monotonic()
    updated = store.update_job("j1", {"owner": "e1"}, expect={"owner": None})
    waited = time.monotonic() - started
    holder.join(timeout=30)
    assert holder.exitcode == 0
    assert updated is not None and updated.owner == "e1" and updated.error == "held"
    assert waited > 0.5  # it really waited for the other process's commit


def test_retries_beyond_sqlites_busy_timeout(
    db_path: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_job(make_job("j1"))
    monkeypatch.setattr(sqlite_module, "_BUSY_TIMEOUT_S", 0.02)
    impatient = SQLiteStore(db_path)
    ready = threading.Event()

    def hold() -> None:
        conn = raw(db_path)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE jobs SET error = 'held' WHERE id = 'j1'")
        ready.set()
        time.sleep(0.4)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert ready.wait(timeout=10)
        started = time.monotonic()
        updated = impatient.update_job("j1", {"owner": "e1"})
        assert time.monotonic() - started > 0.2  # many busy_timeouts long: the retry loop waited
        assert updated is not None and updated.owner == "e1" and updated.error == "held"
    finally:
        holder.join()
        impatient.close()


def test_gives_up_with_a_clear_error_after_the_timeout(db_path: Path, store: SQLiteStore) -> None:
    store.create_job(make_job("j1"))
    short = SQLiteStore(db_path, timeout=0.3)
    holder = raw(db_path)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked by another process") as info:
            short.update_job("j1", {"owner": "e1"})
        assert str(db_path) in str(info.value)
        holder.execute("ROLLBACK")
        assert short.update_job("j1", {"owner": "e1"}) is not None
    finally:
        holder.close()
        short.close()


# ------------------------------------------------------------------------------ threads


def test_one_connection_per_thread_and_dead_threads_are_released(store: SQLiteStore) -> None:
    store.create_job(make_job("j1"))
    seen: list[sqlite3.Connection] = []

    def read() -> None:
        assert store.get_job("j1") is not None
        seen.append(store.connection())

    for _ in range(5):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert all(store.connection() is not conn for conn in seen)
    assert len({id(conn) for conn in seen}) == 5
    # Each new thread's connect closed the connections of threads that had ended (the last one's
    # is closed by the next connect, or by close()).
    for conn in seen[:-1]:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")


def test_close_closes_every_threads_connection(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    conns: list[sqlite3.Connection] = [store.connection()]
    thread = threading.Thread(target=lambda: conns.append(store.connection()))
    thread.start()
    thread.join()
    store.close()
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")


def test_unknown_status_is_a_value_error(store: SQLiteStore) -> None:
    store.create_job(make_job("j1"))
    with pytest.raises(ValueError):
        store.update_job("j1", {"status": "bogus"})


def test_a_version_1_store_keeps_its_jobs_and_gains_api_keys(db_path: Path) -> None:
    conn = raw(db_path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO jobs (id, account_id, auth_account_id, category, action, status, created)"
        " VALUES ('j1', 'acct-a', 'acct-a', 'numbers', 'classify', 'pending', ?)",
        (NOW,),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with SQLiteStore(db_path) as store:
        assert store.get_job("j1") == make_job("j1", file_name=None)
        store.add_api_key(ApiKey("k1", "acct-a", None, False, NOW, "h"))
        assert [k.id for k in store.api_keys()] == ["k1"]


# ------------------------------------------------------------------------------ job files


def test_small_files_live_in_the_database_and_large_ones_beside_it(store: SQLiteStore, db_path: Path) -> None:
    from kzconsole.engine.store.sqlite_files import INLINE_MAX

    store.create_job(make_job("j1"), input=io.BytesIO(b"n\n1\n"))
    store.append_file("j1", "output", b"h\n")
    store.append_file("j1", "log", b"line\n")
    folder = db_path.parent / "jobs" / "j1"
    assert not folder.exists()  # a small job costs no folder and no inode
    big = b"x" * (INLINE_MAX - 1) + b"\n"
    assert store.append_file("j1", "output", big) == 2 + len(big)  # grown past the limit: moved out
    assert (folder / "out.csv").read_bytes() == b"h\n" + big
    assert mode(folder) == 0o700 and mode(folder / "out.csv") == 0o600
    assert store.append_file("j1", "output", b"tail\n", offset=2) == 7  # then appended there
    with store.open_file("j1", "output") as f:  # type: ignore[union-attr]
        assert f.read() == b"h\ntail\n"
    with store.open_file("j1", "input") as f:  # type: ignore[union-attr]
        assert f.read() == b"n\n1\n"
    store.create_job(make_job("j2"), input=io.BytesIO(big * 2))
    assert (db_path.parent / "jobs" / "j2" / "in.csv").read_bytes() == big * 2
    store.delete_job("j1")
    assert not folder.exists() and store.open_file("j1", "log") is None


def test_files_of_a_store_made_before_job_files_are_read_and_appended(store: SQLiteStore, db_path: Path) -> None:
    store.create_job(make_job("old"))
    folder = db_path.parent / "jobs" / "old"
    folder.mkdir(parents=True)
    (folder / "out.csv").write_bytes(b"h\nr1\n")
    (folder / "job.log").write_bytes(b"started\n")
    assert store.file_size("old", "output") == 5
    assert store.append_file("old", "output", b"r2\n", offset=5) == 8
    assert (folder / "out.csv").read_bytes() == b"h\nr1\nr2\n"
    with store.open_file("old", "log") as f:  # type: ignore[union-attr]
        assert f.read() == b"started\n"
