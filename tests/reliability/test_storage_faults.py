"""Issue 7.4: storage faults. The output location becomes unwritable (when the job starts or in the
middle of it) or the disk fills up: the output continues, whole, in the fallback file, the record
says where, and ``tasks output`` reads it from there (contract 4.3). The store is locked by another
process: commands wait and succeed, nobody sees "database is locked". The store is corrupt or from
a newer kzconsole: a clear error, exit 2, the file untouched. Schema migrations are tested from
every earlier version.

Faults are simulated below the runner's output sink (its files take what fits, then fail like a
full or read-only disk), because these tests run as root, whom permissions do not stop.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kzconsole.engine import JobStatus
from kzconsole.engine.models import JobRecord
from kzconsole.engine.store import sqlite as sqlite_mod
from kzconsole.engine.store.base import Store
from kzconsole.engine.store.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStore
from tests.conftest import read_csv, write_csv
from tests.reliability.conftest import Finished, Site, subprocess_env

PLUGIN = """
import threading
from kzconsole.plugin import task

GATE = threading.Event()
BLOCK_AT = [None]
AT_ROW = threading.Event()

@task("s", "copy", description="One row out per row in", mandatory=["n"], output_header=["n", "pad"])
def copy(ctx, it, row):
    if row["n"] == BLOCK_AT[0]:
        AT_ROW.set()
        GATE.wait(30)
    return [row["n"], "x" * 20]
"""

ROWS = 300


class FaultyStore(SQLiteStore):
    """A SQLite store on a device that takes ``room`` more bytes of job output and then fails with
    ``err``. Like a real disk filling up, the append that reaches the limit takes what fits."""

    room: int | None = None
    err = errno.ENOSPC

    # A job's steps store their output through append_file (the interface's default), so the
    # fault applies to them too.
    save_job = Store.save_job

    def append_file(self, job_id, kind, data, **options):
        if kind != "output" or self.room is None or len(data) <= self.room:
            if kind == "output" and self.room is not None:
                self.room -= len(data)
            return super().append_file(job_id, kind, data, **options)
        super().append_file(job_id, kind, bytes(data[: max(0, self.room)]), **options)
        self.room = 0
        cause = OSError(self.err, os.strerror(self.err))
        raise sqlite_mod.StoreError(f"writing the output failed: {cause}") from cause


class FaultyDisk:
    def __init__(self, tmp_path, plugin_dir) -> None:
        self.tmp_path = tmp_path
        self.plugin_dir = plugin_dir
        self.engines: list = []
        self.stores: list = []

    def engine(self, **tasks):
        from kzconsole.engine import Engine
        from tests.conftest import make_settings

        settings = make_settings(self.tmp_path, self.plugin_dir.path, **tasks)
        store = FaultyStore(settings.store_url[len("sqlite://") :])
        self.stores.append(store)
        engine = Engine(settings, store=store)
        self.engines.append(engine)
        return engine

    def fail(self, room: int, err: int = errno.ENOSPC) -> None:
        for store in self.stores:
            store.room, store.err = room, err


@pytest.fixture
def faulty_disk(tmp_path, plugin_dir):
    """``.engine(**tasks)``: an engine whose store's job output fails after ``.fail(room, err)``
    bytes more; the fallback folder (tmp_path/fallback) stays healthy."""
    disk = FaultyDisk(tmp_path, plugin_dir)
    yield disk
    for engine in disk.engines:
        engine.close()


def expected_output(rows: int = ROWS) -> list[list[str]]:
    return [["n", "pad", "error"]] + [[str(i), "x" * 20, ""] for i in range(1, rows + 1)]


def make_engine(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("s.py", PLUGIN)
    engine = engine_factory(send_progress_after_processed=25)
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(1, ROWS + 1)])
    return engine, src


def make_faulty_engine(faulty_disk, plugin_dir, tmp_path):
    plugin_dir.write("s.py", PLUGIN)
    engine = faulty_disk.engine(send_progress_after_processed=25)
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(1, ROWS + 1)])
    return engine, src


def cli_output(tmp_path: Path, job_id: str) -> bytes:
    """``kzconsole tasks output`` in its own process, on the same data dir."""
    proc = subprocess.run(
        [sys.executable, "-m", "kzconsole", "--data-dir", str(tmp_path / "data"), "tasks", "output", job_id],
        capture_output=True,
        env=subprocess_env(tmp_path),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EIO], ids=errno.errorcode.get)
def test_output_unwritable_mid_job_continues_in_the_fallback(plugin_dir, tmp_path, faulty_disk, err):
    engine, src = make_faulty_engine(faulty_disk, plugin_dir, tmp_path)
    faulty_disk.fail(room=2000, err=err)  # a few checkpoints in
    job = engine.add_job("s", "copy", input=src)
    final = engine.run_job(job.id)
    fallback = tmp_path / "fallback" / f"task_out.{job.id}.csv"
    assert final.status is JobStatus.SUCCESS and final.success_count == ROWS
    assert final.error == (
        f"output written to {fallback} (the output location could not be written: {os.strerror(err)})"
    )
    # The fallback holds the whole output, what was written before included, nothing twice.
    assert read_csv(fallback) == expected_output()
    assert final.output_path == str(fallback)
    with engine.open_output(final) as output:  # the facade reads the fallback
        assert output.read() == fallback.read_bytes()
    assert final.output_offset == fallback.stat().st_size
    assert (fallback.stat().st_mode & 0o777) == 0o600
    assert cli_output(tmp_path, job.id) == fallback.read_bytes()
    assert "could not be written" in engine.read_log(final)[0].decode()


def test_output_unwritable_when_the_job_starts(plugin_dir, tmp_path, faulty_disk):
    engine, src = make_faulty_engine(faulty_disk, plugin_dir, tmp_path)
    job = engine.add_job("s", "copy", input=src)
    faulty_disk.fail(room=0, err=errno.EACCES)  # not even the header can be stored
    final = engine.run_job(job.id)
    fallback = tmp_path / "fallback" / f"task_out.{job.id}.csv"
    assert final.status is JobStatus.SUCCESS
    assert final.error.startswith(f"output written to {fallback}")
    assert read_csv(fallback) == expected_output()
    assert cli_output(tmp_path, job.id) == fallback.read_bytes()


def test_disk_full_everywhere_is_an_internal_error(plugin_dir, tmp_path, faulty_disk):
    plugin_dir.write("s.py", PLUGIN)
    (tmp_path / "not-a-dir").write_text("")
    engine = faulty_disk.engine(
        send_progress_after_processed=25, output_fallback_dir=str(tmp_path / "not-a-dir" / "fallback")
    )
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(1, ROWS + 1)])
    faulty_disk.fail(room=2000)
    job = engine.add_job("s", "copy", input=src)
    final = engine.run_job(job.id)
    assert final.status is JobStatus.INTERNAL_ERROR
    assert "No space left on device" in final.error and "nor to the fallback" in final.error
    assert final.success_count < ROWS
    # The engine goes on: the next job (with room on the disk) runs.
    faulty_disk.fail(room=10**9)
    assert engine.run_job(engine.add_job("s", "copy", input=src).id).status is JobStatus.SUCCESS


def test_resume_after_the_fallback_keeps_every_row_once(engine_factory, plugin_dir, tmp_path, faulty_disk):
    """The checkpoint taken after a switch to the fallback must count the bytes moved there, or a
    resumed job would cut rows off the output."""
    engine, src = make_faulty_engine(faulty_disk, plugin_dir, tmp_path)
    mod = engine.catalog.task("s", "copy").function.__globals__
    mod["BLOCK_AT"][0] = "200"
    faulty_disk.fail(room=700)
    job = engine.add_job("s", "copy", input=src)
    engine.start(watch=False, triggers=False)
    engine.start_job(job.id)
    assert mod["AT_ROW"].wait(15)
    control = engine.scheduler.control(job.id)
    stopper = threading.Thread(target=engine.stop, kwargs={"timeout": 15})
    stopper.start()
    while not control.shutdown.is_set():  # the graceful shutdown reached the job
        stopper.join(0.01)
    mod["BLOCK_AT"][0] = None
    mod["GATE"].set()
    stopper.join(15)
    left = engine.get_job(job.id)
    assert left.status is JobStatus.EXECUTING and left.owner is None and left.rows_done == 200
    fallback = tmp_path / "fallback" / f"task_out.{job.id}.csv"
    assert left.output_path == str(fallback)
    assert read_csv(fallback)[: left.rows_done + 1] == expected_output(left.rows_done)
    assert left.output_offset == fallback.stat().st_size

    second = engine_factory(send_progress_after_processed=25)
    finished = Finished(second)
    second.start(watch=False, triggers=False)
    final = finished.wait(job.id)
    assert final.status is JobStatus.SUCCESS and final.success_count == ROWS
    assert read_csv(fallback) == expected_output()
    assert final.error.startswith(f"output written to {fallback}")


# ---------------------------------------------------------------------------------- the store


def hold_write_lock(db: Path, seconds: float | None) -> subprocess.Popen:
    """Another process holding the store's write lock (BEGIN IMMEDIATE) for ``seconds``, or (None)
    until a line is written to its stdin."""
    wait = "sys.stdin.readline()" if seconds is None else f"time.sleep({seconds})"
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        f"{wait}\n"
        "c.execute('COMMIT')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    assert proc.stdout.readline() == b"locked\n"
    return proc


def locked_store_commands(tmp_path: Path, seconds: float) -> None:
    site = Site(tmp_path)
    site.plugin("s.py", PLUGIN)
    src = write_csv(tmp_path / "in.csv", [["n"], ["1"]])
    site.cli("tasks", "list")  # creates the store
    locker = hold_write_lock(site.data / "kzconsole.db", None)  # held until we say
    try:
        # Reading is not blocked by a writer (WAL): the listing ends while the lock is held.
        assert site.cli_json("tasks", "list") == []
        add = subprocess.Popen(
            site.argv("tasks", "add", "s", "copy", "--input", str(src), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=site.env,
            cwd=site.root,
        )
        try:
            add.wait(seconds)  # it cannot end while the lock is held, however long that is
        except subprocess.TimeoutExpired:
            pass
        assert add.poll() is None, "the add did not wait for the lock"
        locker.stdin.write(b"release\n")
        locker.stdin.close()
        out, err = add.communicate(timeout=120)
    finally:
        if locker.poll() is None and not locker.stdin.closed:
            locker.stdin.close()
        locker.wait(30)
    assert add.returncode == 0, err
    assert b"locked" not in err.lower() and err == b""
    job_id = __import__("json").loads(out)["id"]
    assert site.cli_json("tasks", "show", job_id)["status"] == "pending"


def test_store_locked_by_another_process_for_3_s(tmp_path):
    locked_store_commands(tmp_path, 3)


@pytest.mark.slow
def test_store_locked_by_another_process_for_10_s(tmp_path):
    locked_store_commands(tmp_path, 10)


def refused(site: Site, db: Path, needle: str) -> None:
    before = db.read_bytes()
    for args in (("tasks", "list"), ("tasks", "show", "0" * 32), ("tasks", "add", "skel", "count")):
        proc = site.cli(*args, check=2)
        assert needle in proc.stderr.decode(), proc.stderr
        assert b"Traceback" not in proc.stderr
    engine = subprocess.run(site.argv("engine"), capture_output=True, env=site.env, cwd=site.root, timeout=30)
    assert engine.returncode == 2 and needle in engine.stderr.decode(), engine.stderr
    assert db.read_bytes() == before, "the store file was changed"
    assert not (site.data / "jobs").exists() or not any((site.data / "jobs").iterdir())


@pytest.mark.parametrize(
    "content", [b"this is not a database\n" * 200, b"SQLite format 3\x00" + b"\xff" * 4080], ids=["text", "bad-header"]
)
def test_corrupt_store_is_a_clear_error_and_untouched(tmp_path, content):
    site = Site(tmp_path)
    site.data.mkdir(mode=0o700)
    db = site.data / "kzconsole.db"
    db.write_bytes(content)
    refused(site, db, "is not a usable kzconsole store")


def test_store_with_corrupt_pages_is_a_clear_error(tmp_path):
    site = Site(tmp_path)
    site.cli("tasks", "add", "skel", "count")
    db = site.data / "kzconsole.db"
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the damage below is what is read
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range(page, len(data)):  # every page after the first: tables and indexes
        data[i] = 0xA5
    db.write_bytes(bytes(data))
    refused(site, db, "is not a usable kzconsole store")


def test_newer_schema_is_a_clear_error_and_untouched(tmp_path):
    site = Site(tmp_path)
    site.cli("tasks", "list")
    db = site.data / "kzconsole.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    refused(site, db, f"schema version {SCHEMA_VERSION + 1}")


# ----------------------------------------------------------------------------------- migrations


def build_old_store(path: Path, version: int) -> dict | None:
    """A store file as kzconsole at schema ``version`` left it, with one job in it when the
    version has a jobs table. Returns the job's stored columns."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for step in MIGRATIONS[:version]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        if version == 0:
            return None
        columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        full = JobRecord(
            id="ab" * 16,
            account_id="a" * 32,
            auth_account_id="b" * 32,
            category="skel",
            action="count",
            file_name="old.csv",
            status="success",
            created=1.0,
            end_timestamp=2.0,
            total_count=3,
            success_count=3,
            output_rows=3,
            error=None,
        )
        values = {c: getattr(full, c) for c in columns if hasattr(full, c)}
        values["status"] = "success"
        for flag in ("stop_requested", "resumable", "finishing"):
            if flag in values:
                values[flag] = int(values[flag])
        conn.execute(
            f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values())
        )
        return values
    finally:
        conn.close()


@pytest.mark.parametrize("version", range(len(MIGRATIONS)))
def test_migrates_from_every_earlier_version(tmp_path, version):
    db = tmp_path / "kzconsole.db"
    stored = build_old_store(db, version)
    store = SQLiteStore(db)
    try:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        if stored is not None:
            job = store.get_job(stored["id"])
            assert job is not None
            for column, value in stored.items():
                got = getattr(job, column)
                assert (got.value if column == "status" else got) == value, column
        # The migrated file is a working store.
        new = JobRecord(
            id="cd" * 16,
            account_id="a" * 32,
            auth_account_id="a" * 32,
            category="skel",
            action="count",
            file_name=None,
            status=JobStatus.PENDING,
            created=5.0,
        )
        store.create_job(new)
        assert store.get_job(new.id) == new
    finally:
        store.close()
    reopened = SQLiteStore(db)
    try:
        assert reopened.get_job("cd" * 16) is not None
    finally:
        reopened.close()


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    db = tmp_path / "kzconsole.db"
    SQLiteStore(db).close()
    store = SQLiteStore(db)
    store.create_job(
        JobRecord(
            id="ef" * 16,
            account_id="a" * 32,
            auth_account_id="a" * 32,
            category="skel",
            action="count",
            file_name=None,
            status=JobStatus.PENDING,
            created=1.0,
        )
    )
    store.close()
    broken = ("ALTER TABLE jobs ADD COLUMN added_by_the_next_version TEXT", "THIS IS NOT SQL")
    monkeypatch.setattr(sqlite_mod, "MIGRATIONS", MIGRATIONS + (broken,))
    monkeypatch.setattr(sqlite_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite_mod.StoreError):
        SQLiteStore(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        assert "added_by_the_next_version" not in columns  # the whole step was rolled back
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


# ------------------------------------------------------- a locked store under running engines


class StallingStore:
    """Just the lease part of a store; the next heartbeat takes ``delay`` seconds of the fake clock
    (the store was locked meanwhile)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.delay = 0.0
        self.leases: dict = {}

    def now(self) -> float:
        return self.clock.time()

    def heartbeat(self, lease) -> None:
        self.clock.advance(self.delay)
        self.delay = 0.0
        self.leases[lease.node] = lease

    def engines(self) -> list:
        return list(self.leases.values())


def test_after_its_own_stall_an_engine_does_not_trust_expired_leases():
    from kzconsole.engine.clock import FakeClock
    from kzconsole.engine.leases import HEARTBEAT_S, LEASE_TTL, Lease, dead_owners
    from kzconsole.engine.models import EngineLease

    clock = FakeClock()
    store = StallingStore(clock)
    lease = Lease(store, "me", clock)
    lease.renew(force=True)
    clock.advance(HEARTBEAT_S)
    lease.renew()
    assert lease.trusts_expiry(clock.time())
    # The store is locked for 12 s: our heartbeat waits, and so did everyone else's.
    store.delay = 12.0
    clock.advance(HEARTBEAT_S)
    lease.renew()
    now = clock.time()
    assert store.leases["me"].expires > now, "the lease written after the wait must not be stale"
    assert not lease.trusts_expiry(now)
    store.leases["other-host"] = EngineLease("other-host", "elsewhere", 1, 0.0, now - 1)
    store.leases["dead-here"] = EngineLease("dead-here", lease.host, 2**22 + 7, 0.0, now - 1)
    is_dead = dead_owners(store, now, lease.host, trust_expiry=lease.trusts_expiry(now))
    assert not is_dead("other-host")  # expired, but we were held up as long as it was
    assert is_dead("dead-here")  # a process that does not exist is dead all the same
    assert is_dead(None) and is_dead("no-lease-at-all")
    for _ in range(int(LEASE_TTL / HEARTBEAT_S)):  # a TTL of our own heartbeats on time
        clock.advance(HEARTBEAT_S)
        lease.renew()
    now = clock.time()
    assert lease.trusts_expiry(now)
    assert dead_owners(store, now, lease.host, trust_expiry=True)("other-host")


def locked_store_under_running_engines(tmp_path: Path, engines: list, seconds: float, rows: int) -> None:
    """Engine A runs two jobs, engine B has free slots; the store is locked for ``seconds``. No job
    may be taken from its live engine: no row runs twice, no output row is doubled."""
    from tests.reliability.conftest import wait_until
    from tests.reliability.test_crash_resume import add_csv_job, check_final, check_side_effects, make_site

    site = make_site(tmp_path, max_running=4, wait_after_row_ms=1)
    first = site.engine("a")
    engines.append(first)
    jobs = {add_csv_job(site, "copy", rows): ("copy", rows) for _ in range(2)}
    store = site.store()
    try:
        wait_until(lambda: all(store.get_job(j).rows_done > 0 for j in jobs), 30, "both jobs to run")
        second = site.engine("b")
        engines.append(second)
        wait_until(lambda: len(store.engines()) == 2, 30, "the second engine's lease")
        locker = hold_write_lock(site.data / "kzconsole.db", seconds)
        locker.wait(seconds + 30)
        wait_until(lambda: all(store.get_job(j).status.is_finished for j in jobs), 120, "the jobs to end")
        for job_id, (action, total) in jobs.items():
            final = store.get_job(job_id)
            check_final(site, final, action, total)
            assert final.node == "a", "the job was taken from its live engine"
        assert set(check_side_effects(site, jobs).values()) == {0}, "rows ran twice"
    finally:
        store.close()
    for engine in (first, second):
        assert engine.terminate() == 0
        assert "resuming job" not in engine.log() and "database is locked" not in engine.log(), engine.log()


def test_store_locked_for_3_s_under_running_engines(tmp_path, engines):
    locked_store_under_running_engines(tmp_path, engines, 3, rows=1500)


@pytest.mark.slow
def test_store_locked_for_12_s_under_running_engines(tmp_path, engines):
    # Longer than an engine lease (10 s): every heartbeat expires while the lock is held.
    locked_store_under_running_engines(tmp_path, engines, 12, rows=3000)


def test_output_shorter_than_its_checkpoint_is_not_resumed_into_garbage(engine_factory, plugin_dir, tmp_path):
    """After a machine crash the page cache may lose output the store says was written; resuming
    would pad the file with NUL bytes. The job ends internal_error saying why instead."""
    engine, src = make_engine(engine_factory, plugin_dir, tmp_path)
    mod = engine.catalog.task("s", "copy").function.__globals__
    mod["BLOCK_AT"][0] = "100"
    job = engine.add_job("s", "copy", input=src)
    engine.start(watch=False, triggers=False)
    engine.start_job(job.id)
    assert mod["AT_ROW"].wait(15)
    control = engine.scheduler.control(job.id)
    stopper = threading.Thread(target=engine.stop, kwargs={"timeout": 15})
    stopper.start()
    while not control.shutdown.is_set():
        stopper.join(0.01)
    mod["BLOCK_AT"][0] = None
    mod["GATE"].set()
    stopper.join(15)
    left = engine.get_job(job.id)
    assert left.status is JobStatus.EXECUTING and left.owner is None and left.output_offset > 0
    # A machine crash lost the end of the stored output.
    engine.store.append_file(job.id, "output", b"", offset=left.output_offset // 2)

    second = engine_factory(send_progress_after_processed=25)
    finished = Finished(second)
    second.start(watch=False, triggers=False)
    final = finished.wait(job.id)
    assert final.status is JobStatus.INTERNAL_ERROR
    assert final.error.startswith(f"cannot resume: the stored output holds {left.output_offset // 2} bytes")
    with second.open_output(final) as output:
        assert b"\x00" not in output.read()
