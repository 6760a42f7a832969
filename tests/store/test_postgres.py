"""PostgresStore: the shared contract on a real PostgreSQL 15 server started by the tests, plus
what only the PostgreSQL store has (schema versions, a server restarted under it, a dropped
connection, an unreachable server, the driver's errors)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from kzconsole.engine.models import JOB_FIELDS, JobRecord, JobStatus
from kzconsole.engine.store import open_store
from kzconsole.engine.store.base import Fenced, JobStep, StoreError, redact_url
from kzconsole.engine.store.postgres import CHUNK, MIGRATIONS, SCHEMA_VERSION, PostgresStore
from tests.pgserver import PORT, TEST_SETTINGS, PostgresServer
from tests.store.contract import NOW, StoreContract, ids, make_job


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_url)
    yield store
    store.close()


@pytest.fixture
def store_factory(pg_url: str, store: PostgresStore) -> Callable[[], PostgresStore]:
    return functools.partial(PostgresStore, pg_url)


class TestPostgresStore(StoreContract):
    pass


# ------------------------------------------------------------------------------ helpers


def raw(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def queue(store: PostgresStore, count: int, **fields: object) -> list[str]:
    made = []
    for n in range(count):
        job = make_job(f"q{n:03d}", queued_at=NOW + n, **fields)
        store.create_job(job)
        made.append(job.id)
    return made


# ------------------------------------------------------------------------------ opening


def test_open_store_url(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        assert isinstance(store, PostgresStore)
        store.create_job(make_job("j1"))
        assert store.get_job("j1") == make_job("j1")
    finally:
        store.close()


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://kz:secret@/kz?host={tmp_path}&port=5999"
    with pytest.raises(StoreError, match="cannot connect to the store") as info:
        PostgresStore(url, connect_timeout=1)
    assert "secret" not in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_redact_url() -> None:
    assert redact_url("postgresql://kz:pw@db:5432/kz") == "postgresql://kz:***@db:5432/kz"
    assert redact_url("postgresql://kz@db/kz") == "postgresql://kz@db/kz"


def test_closed_store_refuses_calls(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_job("j1")


def test_driver_errors_become_store_errors(store: PostgresStore) -> None:
    with pytest.raises(StoreError, match="creating job"):
        store.create_job(make_job("j1", account_id="\x00"))  # PostgreSQL text holds no NUL


# ------------------------------------------------------------------------------ the schema


def test_schema_version_and_one_column_per_job_field(store: PostgresStore, pg_url: str) -> None:
    with raw(pg_url) as conn:
        version = conn.execute("SELECT version FROM kz_schema").fetchone()[0]
        columns = {
            row[0]
            for row in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'")
        }
    assert version == SCHEMA_VERSION == len(MIGRATIONS) == store.schema_version()
    assert set(JOB_FIELDS) <= columns


def test_nodes_opening_an_empty_database_at_once_migrate_it_once(pg_url: str) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        try:
            barrier.wait(timeout=10)
            stores.append(PostgresStore(pg_url))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not errors and len(stores) == 4
        stores[0].create_job(make_job("j1"))
        assert all(s.get_job("j1") == make_job("j1") for s in stores)
        with raw(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM kz_schema").fetchone()[0] == 1
    finally:
        for s in stores:
            s.close()


def test_newer_schema_is_refused_and_not_touched(store: PostgresStore, pg_url: str) -> None:
    store.create_job(make_job("j1"))
    with raw(pg_url) as conn:
        conn.execute("UPDATE kz_schema SET version = %s", (SCHEMA_VERSION + 5,))
    expected = (
        rf"schema version {SCHEMA_VERSION + 5} is newer than this kzconsole supports"
        rf" \({SCHEMA_VERSION}\)"
    )
    with pytest.raises(StoreError, match=expected):
        PostgresStore(pg_url)
    with raw(pg_url) as conn:
        assert conn.execute("SELECT version FROM kz_schema").fetchone()[0] == SCHEMA_VERSION + 5
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


def test_reopening_keeps_data(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store.create_job(make_job("j1"))
    with PostgresStore(pg_url) as store:
        assert store.get_job("j1") == make_job("j1")


# ------------------------------------------------------------------------------ the clock


def test_now_is_the_servers_clock(store: PostgresStore) -> None:
    first = store.now()
    second = store.now()
    assert second >= first
    # The test server runs on this machine: its clock is ours.
    assert abs(first - time.time()) < 60


# ------------------------------------------------------------------------------ claims


def test_claim_skips_jobs_locked_by_another_transaction(store: PostgresStore, pg_url: str) -> None:
    queue(store, 3)
    with raw(pg_url) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT id FROM jobs WHERE id = 'q000' FOR UPDATE")
        # The head of the queue is locked by someone claiming it: take the next, do not wait.
        assert ids(store.claim_queued("e1", 1, NOW)) == ["q001"]
        holder.execute("ROLLBACK")
    assert ids(store.claim_queued("e1", 5, NOW)) == ["q000", "q002"]


def test_claim_only_tasks_the_engine_has(store: PostgresStore) -> None:
    store.create_job(make_job("a", category="skel", action="id2", queued_at=NOW))
    store.create_job(make_job("b", category="numbers", action="classify", queued_at=NOW + 1))
    store.create_job(make_job("c", category="skel", action="id2", queued_at=NOW + 2))
    assert store.claim_queued("e1", 5, NOW, tasks=[]) == []
    assert ids(store.claim_queued("e1", 5, NOW, tasks=["numbers/classify"])) == ["b"]
    assert ids(store.claim_queued("e2", 1, NOW, tasks=["skel/id2", "x/y"])) == ["a"]
    assert ids(store.claim_queued("e2", 5, NOW)) == ["c"]


def test_claims_bump_the_fencing_token(store: PostgresStore) -> None:
    queue(store, 1)
    (job,) = store.claim_queued("e1", 1, NOW)
    assert job.claim == 1


# ------------------------------------------------------------------------------ failures


def test_dropped_connections_are_replaced(store: PostgresStore, pg_url: str) -> None:
    store.create_job(make_job("j1"))
    with raw(pg_url) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert killed >= 1
    assert store.get_job("j1") == make_job("j1")
    assert store.update_job("j1", {"owner": "e1"}, expect={"owner": None}) is not None


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, to restart."""
    server = PostgresServer().start()
    yield server
    server.stop()


def test_server_restarted_under_the_store(own_server: PostgresServer) -> None:
    url = own_server.create_database("kz")
    with PostgresStore(url) as store:
        store.create_job(make_job("j1"))
        own_server.restart()  # immediate: every connection drops, as in a crash
        assert store.get_job("j1") == make_job("j1")
        assert store.update_job("j1", {"owner": "e1"}, expect={"owner": None}) is not None


def test_server_down_for_a_while_is_waited_for(own_server: PostgresServer) -> None:
    url = own_server.create_database("kz")
    with PostgresStore(url) as store:
        store.create_job(make_job("j1"))
        own_server.halt()
        started = threading.Event()
        result: list[object] = []

        def call() -> None:
            started.set()
            result.append(store.update_job("j1", {"owner": "e1"}, expect={"owner": None}))

        caller = threading.Thread(target=call)
        caller.start()
        assert started.wait(10)
        own_server.resume()
        caller.join(timeout=60)
        assert len(result) == 1 and getattr(result[0], "owner", None) == "e1"


def test_gives_up_with_a_clear_error_after_the_timeout(own_server: PostgresServer) -> None:
    url = own_server.create_database("kz")
    with PostgresStore(url, timeout=1.0, connect_timeout=1) as store:
        store.create_job(make_job("j1"))
        own_server.halt()
        with pytest.raises(StoreError, match="reading job 'j1' failed"):
            store.get_job("j1")
        own_server.resume()
        assert store.get_job("j1") == make_job("j1")


@pytest.fixture
def lazy_wal_server() -> Iterator[PostgresServer]:
    """A server whose WAL writer waits 10 s between flushes: a step committed without waiting
    for its flush stays in the server's memory, and a crash loses it."""
    server = PostgresServer({**TEST_SETTINGS, "wal_writer_delay": "10000ms"}).start()
    yield server
    server.stop()


def _crash_one_backend(url: str) -> None:
    """kill -9 a backend: the server ends every session and starts afresh from its WAL on disk,
    with the same start time (pg_postmaster_start_time)."""
    with raw(url) as conn, raw(url) as witness:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT 1")
        # Returned only once the server has ended every other session too (the witness's): a
        # store call made before that, on a connection not yet ended, would still see what the
        # crash loses (under load the server can take a while to react).
        with contextlib.suppress(psycopg.Error):
            while True:
                witness.execute("SELECT 1")
                time.sleep(0.01)


@pytest.mark.parametrize("crash", ["server restarted", "one backend crashed"])
def test_steps_a_crashed_server_lost_are_written_again(lazy_wal_server: PostgresServer, crash: str) -> None:
    """A running job's steps commit without waiting for their flush to disk; what a crash of the
    server loses of them, the handle that wrote them writes again, in their order, before
    anything else it does there. The job's record and output end as the steps left them."""
    url = lazy_wal_server.create_database("kz")
    with PostgresStore(url) as store:
        queue(store, 1)
        (job,) = store.claim_queued("e1", 1, NOW)  # durable: everything before is on disk
        mine = {"status": "executing", "claim": job.claim}
        offset = 0
        for n in range(1, 6):
            row = f"row {n}\n".encode()
            updated, _ = store.save_job(
                job.id,
                JobStep(
                    {"rows_done": n, "output_offset": offset + len(row)},
                    expect=mine,
                    appends={"output": (offset, row), "log": (None, f"step {n}\n".encode())},
                    claim=job.claim,
                ),
            )
            assert updated is not None and updated.rows_done == n
            offset += len(row)
        if crash == "server restarted":
            lazy_wal_server.restart()  # immediate: no flush, as in a crash
        else:
            _crash_one_backend(url)
        got = store.get_job(job.id)  # the first call after the crash writes the lost steps again
        assert got is not None and got.rows_done == 5 and got.output_offset == offset
        with store.open_file(job.id, "output") as f:
            assert f.read() == b"".join(f"row {n}\n".encode() for n in range(1, 6))
        with store.open_file(job.id, "log") as f:
            assert f.read() == b"".join(f"step {n}\n".encode() for n in range(1, 6))
        # Written again durably: another crash now loses nothing.
        lazy_wal_server.restart()
    with PostgresStore(url) as fresh:
        got = fresh.get_job(job.id)
        assert got is not None and got.rows_done == 5 and fresh.file_size(job.id, "output") == offset


def _overlapped_steps(store: PostgresStore, job: JobRecord, rows: range) -> int:
    """Checkpoints as a fast run sends them (JobStep.overlap), one output row each; returns
    the output's length."""
    offset = 0
    for n in rows:
        row = f"row {n}\n".encode()
        updated, _ = store.save_job(
            job.id,
            JobStep(
                {"rows_done": n, "output_offset": offset + len(row)},
                expect={"status": "executing", "claim": job.claim},
                appends={"output": (offset, row)},
                claim=job.claim,
                overlap=True,
            ),
        )
        assert updated is not None and updated.rows_done in (n - 1, n)
        offset += len(row)
    return offset


@pytest.mark.parametrize("crash", ["server restarted", "one backend crashed"])
def test_overlapped_steps_a_crashed_server_lost_are_written_again(lazy_wal_server: PostgresServer, crash: str) -> None:
    """The same with overlapped steps, the last one in flight when the server crashes: the
    run's next write finds out what became of it and writes again what was lost, never twice."""
    url = lazy_wal_server.create_database("kz")
    with PostgresStore(url) as store:
        queue(store, 1)
        (job,) = store.claim_queued("e1", 1, NOW)
        offset = _overlapped_steps(store, job, range(1, 8))
        if crash == "server restarted":
            lazy_wal_server.restart()
        else:
            _crash_one_backend(url)
        final, _ = store.save_job(
            job.id,
            JobStep(
                {"rows_done": 8, "output_offset": offset + 6},
                expect={"status": "executing", "claim": job.claim},
                appends={"output": (offset, b"row 8\n")},
                claim=job.claim,
                sync=True,
            ),
        )
        assert final is not None and final.rows_done == 8 and final.output_offset == offset + 6
        lazy_wal_server.restart()  # durable now: another crash loses nothing
    with PostgresStore(url) as fresh:
        got = fresh.get_job(job.id)
        assert got is not None and got.rows_done == 8
        with fresh.open_file(job.id, "output") as f:  # type: ignore[union-attr]
            assert f.read() == b"".join(f"row {n}\n".encode() for n in range(1, 9))


def test_a_lost_step_refused_now_is_dropped(lazy_wal_server: PostgresServer) -> None:
    """A lost step whose job was taken over meanwhile is not written again (fencing)."""
    url = lazy_wal_server.create_database("kz")
    with PostgresStore(url) as store:
        queue(store, 1)
        (job,) = store.claim_queued("e1", 1, NOW)
        store.save_job(
            job.id,
            JobStep(
                {"rows_done": 1},
                expect={"status": "executing", "claim": job.claim},
                appends={"output": (0, b"row 1\n")},
                claim=job.claim,
            ),
        )
        lazy_wal_server.restart()
        with PostgresStore(url) as other:  # another engine takes the job over first
            assert (
                other.update_job(job.id, {"owner": "e2", "claim": job.claim + 1}, expect={"claim": job.claim})
                is not None
            )
        got = store.get_job(job.id)
        assert got is not None and got.owner == "e2" and got.rows_done in (0, 1)
        if got.rows_done == 0:  # the step was lost, and not written over the takeover
            assert store.file_size(job.id, "output") in (None, 0)
        with pytest.raises(Fenced):
            store.append_file(job.id, "output", b"more\n", claim=job.claim)


class _CommitDropper:
    """A TCP proxy in front of the server's socket that, once armed with a piece of SQL, forwards
    the next message holding it (a COMMIT, or a statement run in autocommit) and then drops the
    connection before the server's answer reaches the client: the client cannot tell whether its
    transaction committed."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.pattern = b"COMMIT"
        self.dropped = threading.Event()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.socket_path)
            muted = threading.Event()  # the server's answers no longer reach the client
            threading.Thread(target=self._pipe, args=(client, server, True, muted), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False, muted), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool, muted: threading.Event) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not upstream and muted.is_set():
                    continue
                if upstream and self.armed.is_set() and self.pattern in data:
                    self.armed.clear()
                    muted.set()
                    dst.sendall(data)
                    time.sleep(0.5)  # the server commits; its answer is never delivered
                    self.dropped.set()
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()


@contextlib.contextmanager
def _behind_dropper(
    pg_server: PostgresServer, pg_url: str, pool_size: int
) -> Iterator[tuple[_CommitDropper, PostgresStore]]:
    """A store on ``pg_url``'s database reached through a :class:`_CommitDropper`."""
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    proxy = _CommitDropper(str(pg_server.socket_dir / f".s.PGSQL.{PORT}"))
    try:
        with PostgresStore(f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}", pool_size=pool_size) as store:
            yield proxy, store
    finally:
        proxy.close()


def test_a_commit_whose_answer_was_lost_is_not_run_twice(pg_server: PostgresServer, pg_url: str) -> None:
    with PostgresStore(pg_url) as direct:
        queue(direct, 4)
        with _behind_dropper(pg_server, pg_url, 2) as (proxy, store):
            proxy.pattern = b"FOR UPDATE SKIP LOCKED"
            proxy.armed.set()
            claimed = store.claim_queued("e1", 2, NOW)
            assert proxy.dropped.is_set()
            # The first attempt committed: its claims are the answer, and nothing more was taken.
            assert ids(claimed) == ["q000", "q001"]
            assert ids(direct.jobs_in_status("executing")) == ["q000", "q001"]
            proxy.dropped.clear()
            proxy.pattern = b"UPDATE jobs SET status"
            proxy.armed.set()
            assert store.update_job("q002", {"status": "success"}, expect={"status": "pending"}) is not None
            assert proxy.dropped.is_set()
            proxy.dropped.clear()
            proxy.pattern = b"COMMIT"  # a write in a transaction: its COMMIT's answer is lost
            proxy.armed.set()
            assert store.delete_job("q003", expect={"status": "pending"}) is not None
            assert proxy.dropped.is_set()
            assert direct.get_job("q003") is None
            assert direct.get_job("q002").status is JobStatus.SUCCESS  # type: ignore[union-attr]


def test_an_overlapped_step_whose_answer_was_lost_is_not_run_twice(pg_server: PostgresServer, pg_url: str) -> None:
    """The connection drops after an overlapped step reached the server: the run's next
    write looks it up (by its request) before writing it again."""
    with PostgresStore(pg_url) as direct:
        queue(direct, 1)
        with _behind_dropper(pg_server, pg_url, 4) as (proxy, store):
            (job,) = store.claim_queued("e1", 1, NOW)
            proxy.pattern = b"row 4\n"
            proxy.armed.set()
            offset = _overlapped_steps(store, job, range(1, 7))
            assert store.append_file(job.id, "output", b"end\n", offset=offset, claim=job.claim) == offset + 4
            assert proxy.dropped.is_set()
        got = direct.get_job(job.id)
        assert got is not None and got.rows_done in (5, 6)
        with direct.open_file(job.id, "output") as f:  # type: ignore[union-attr]
            assert f.read() == b"".join(f"row {n}\n".encode() for n in range(1, 7)) + b"end\n"


# ------------------------------------------------------------------------------ job files


def test_files_stored_in_chunks_read_back_seekable(store: PostgresStore) -> None:
    payload = bytes(range(256)) * (3 * CHUNK // 256 + 7)  # a bit over 3 chunks
    store.create_job(make_job("j1"), input=io.BytesIO(payload))
    assert store.file_size("j1", "input") == len(payload)
    with store.open_file("j1", "input") as f:
        assert f.read() == payload
        assert f.seek(0, io.SEEK_END) == len(payload)
        f.seek(CHUNK - 3)
        assert f.read(10) == payload[CHUNK - 3 : CHUNK + 7]
        f.seek(-5, io.SEEK_END)
        assert f.read() == payload[-5:]
    assert store.open_file("j1", "output") is None and store.file_size("j1", "output") is None


def test_append_at_an_offset_cuts_back_first(store: PostgresStore) -> None:
    store.create_job(make_job("j1"))
    assert store.append_file("j1", "output", b"header\n") == 7
    assert store.append_file("j1", "output", b"row1\nrow2\n") == 17
    assert store.append_file("j1", "output", b"ROW2\n", offset=12) == 17  # resumed after row1
    big = b"x" * (2 * CHUNK + 5)
    assert store.append_file("j1", "output", big) == 17 + len(big)
    assert store.append_file("j1", "output", b"tail", offset=17 + CHUNK + 1) == 17 + CHUNK + 5
    with store.open_file("j1", "output") as f:
        assert f.read() == b"header\nrow1\nROW2\n" + b"x" * (CHUNK + 1) + b"tail"
    with pytest.raises(StoreError, match="holds only"):
        store.append_file("j1", "output", b"gap", offset=10**9)
    for n in range(100):  # log lines, one append each
        store.append_file("j1", "log", f"line {n}\n".encode())
    with store.open_file("j1", "log") as f:
        assert f.read().decode().splitlines() == [f"line {n}" for n in range(100)]


def test_a_growing_file_is_read_as_it_grows(store: PostgresStore) -> None:
    store.create_job(make_job("j1"))
    store.append_file("j1", "log", b"first\n")
    with store.open_file("j1", "log") as f:
        assert f.read() == b"first\n"
        store.append_file("j1", "log", b"second\n")
        assert f.read() == b"second\n"
        assert f.seek(0, io.SEEK_END) == 13


def test_writes_with_a_stale_claim_are_fenced(store: PostgresStore) -> None:
    queue(store, 1)
    (job,) = store.claim_queued("e1", 1, NOW)
    mine = job.claim
    assert store.append_file(job.id, "output", b"a\n", claim=mine) == 2
    taken = store.update_job(job.id, {"owner": "e2", "claim": mine + 1}, expect={"claim": mine})
    assert taken is not None
    with pytest.raises(Fenced):
        store.append_file(job.id, "output", b"b\n", claim=mine)
    assert store.update_job(job.id, {"success_count": 9}, expect={"claim": mine}) is None
    assert store.file_size(job.id, "output") == 2


def test_deleting_a_job_deletes_its_files(store: PostgresStore, pg_url: str) -> None:
    store.create_job(make_job("j1"), input=io.BytesIO(b"a,b\n1,2\n"))
    store.append_file("j1", "output", b"out\n")
    assert store.delete_job("j1") is not None
    with raw(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM file_chunks").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM job_files").fetchone()[0] == 0


# ------------------------------------------------------------------------------ changes feed


def test_changes_of_other_handles_with_their_origin(
    store: PostgresStore, store_factory: Callable[[], PostgresStore]
) -> None:
    position, found = store.changes(None)
    assert found == []
    with store_factory() as other:
        other.create_job(make_job("j1"))
        other.update_job("j1", {"stop_requested": True})
        store.create_job(make_job("j2"))
        new_position, found = store.changes(position)
        assert [(c.kind, c.job_id) for c in found] == [("job", "j1"), ("job", "j1"), ("job", "j2")]
        assert [c.origin for c in found] == [other.origin, other.origin, store.origin]
        assert store.changes(new_position) == (new_position, [])


def test_a_change_committed_late_is_not_skipped(store: PostgresStore, pg_url: str) -> None:
    position, _ = store.changes(None)
    store.create_job(make_job("j1"))
    with raw(pg_url) as slow:
        # A transaction that began before the next one and commits after it.
        slow.execute("BEGIN")
        slow.execute(
            "INSERT INTO changes (tx, kind, job_id, origin, at)"
            " VALUES (pg_current_xact_id()::text::bigint, 'job', 'late', 'x', 0)"
        )
        store.create_job(make_job("j2"))
        position, found = store.changes(position)
        assert [c.job_id for c in found] == ["j1"]  # j2 waits for the older transaction
        slow.execute("COMMIT")
    position, found = store.changes(position)
    assert [c.job_id for c in found] == ["late", "j2"]


def test_wait_changes_wakes_on_a_write_elsewhere(
    store: PostgresStore, store_factory: Callable[[], PostgresStore]
) -> None:
    position, _ = store.changes(None)
    assert store.wait_changes(position, 0.05) == (position, [])
    other = store_factory()

    def write() -> None:
        other.create_job(make_job("j1", queued_at=NOW))

    writer = threading.Timer(0.2, write)
    writer.start()
    try:
        _, found = store.wait_changes(position, 60)
        assert [(c.kind, c.job_id) for c in found] == [("job", "j1")]
    finally:
        writer.join()
        other.close()


def test_a_reader_behind_pruned_changes_is_told_to_reset(store: PostgresStore) -> None:
    position, _ = store.changes(None)
    store.create_job(make_job("j1"))
    assert store.prune_changes(store.now() + 1) == 1
    after, found = store.changes(position)
    assert [c.kind for c in found] == ["reset"]
    store.create_job(make_job("j2"))
    _, found = store.changes(after)
    assert [(c.kind, c.job_id) for c in found] == [("job", "j2")]


def test_migrates_a_version_1_database(pg_url: str) -> None:
    with raw(pg_url) as conn:
        conn.execute("CREATE TABLE kz_schema (version integer NOT NULL)")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO kz_schema VALUES (1)")
        conn.execute(
            "INSERT INTO jobs (id, account_id, auth_account_id, category, action, status, created)"
            " VALUES ('j1', 'a', 'a', 'c', 'x', 'pending', 1)"
        )
        conn.execute("INSERT INTO engines (node, host, pid, started, expires) VALUES ('e', 'h', 1, 0, 1)")
    with PostgresStore(pg_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.get_job("j1") is not None
        (lease,) = store.engines()
        assert (lease.name, lease.tasks, lease.slots) == ("", (), 0)
