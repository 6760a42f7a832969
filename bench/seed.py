"""Fill a data dir's store with many finished jobs, fast (for the startup and console benchmarks).

The jobs are made as the engine makes them (JobRecord, encoded by the SQLite store's own
``job_values``) and inserted with one ``executemany`` in one transaction: 100,000 jobs in a few
seconds, where 100,000 ``create_job`` calls (a transaction each) would take minutes.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from pathlib import Path

from kzconsole.engine.models import JOB_FIELDS, JobRecord, JobStatus
from kzconsole.engine.store.sqlite import SQLiteStore

ACCOUNTS = [f"{i:032x}" for i in range(1, 21)]
TASKS = [("number_management", "import"), ("skel", "id2"), ("bench", "ok"), ("numbers", "e164")]
STATUSES = [JobStatus.SUCCESS] * 6 + [JobStatus.FAILURE, JobStatus.PARTIAL, JobStatus.STOPPED, JobStatus.INTERNAL_ERROR]


def seed_jobs(data_dir: Path, count: int, *, seed: int = 1) -> float:
    """Insert ``count`` finished jobs into ``data_dir``'s store; returns the seconds it took."""
    start = time.perf_counter()
    rng = random.Random(seed)
    store = SQLiteStore(data_dir / "kzconsole.db")  # creates the file and its schema
    store.close()  # job_values needs no connection
    now = time.time()
    rows = []
    for i in range(count):
        created = now - (count - i) * 3.0
        total = rng.randint(1, 5000)
        failed = rng.randint(0, total // 10)
        status = rng.choice(STATUSES)
        category, action = rng.choice(TASKS)
        job = JobRecord(
            id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            account_id=rng.choice(ACCOUNTS),
            auth_account_id=ACCOUNTS[0],
            category=category,
            action=action,
            file_name=f"input-{i}.csv",
            status=status,
            created=created,
            start_timestamp=created + 1,
            end_timestamp=created + 2,
            total_count=total,
            success_count=total - failed,
            failure_count=failed,
            node="seed:1:000000",
            output_rows=total,
            wait_after_row_ms=0,
            input_path=f"jobs/{i}/in.csv",
            rows_done=total,
        )
        rows.append(store.job_values(job))
    conn = sqlite3.connect(data_dir / "kzconsole.db", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO jobs ({', '.join(JOB_FIELDS)}) VALUES ({', '.join('?' * len(JOB_FIELDS))})", rows
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - start
