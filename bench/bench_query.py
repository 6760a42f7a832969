"""Issue 13.11 / 11.6: job queries at 100,000 jobs (the console's filters and sorts, prefix lookups).

What the console does when the operator changes its filter or sort: ``count_jobs(query)`` (the
count line, the scrollbar) and ``list_jobs(query)`` of the first page (64 rows). Each filter and
each sort (both directions) is timed so, through the store's public interface, on a store of
100,000 jobs of every kind (finished, running, never started; varied durations); each sort also
for its middle and last pages (``G``: offset to the end) and its second page by keyset (``after``,
the API's ``next_start_key``). The baseline, measured alternately with every case in the same run, is the
plain status filter (``status=failure``, newest first), which indexes answered before this work.
Goal: < 300 ms for any filter or sort.

Prefix lookups (``tasks show 0f3a9c12``): ``JobQuery(id_prefix=..., limit=2)`` against a lookup
by the full id, alternately.

    python bench/bench_query.py [--jobs 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Workspace, median

PAGE = 64


def _vary(db: Path) -> None:
    """seed.py's jobs all ended 1 s after they started: give them varied durations, and make some
    run now and some never start, as a real store has (deterministic: by rowid)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE jobs SET end_timestamp = start_timestamp + (rowid * 7919 % 36000) / 10.0")
        conn.execute(
            "UPDATE jobs SET status = 'executing', end_timestamp = NULL, start_timestamp = ?"
            " - (rowid % 3600) WHERE rowid % 400 = 0",
            (time.time(),),
        )
        conn.execute(
            "UPDATE jobs SET status = 'pending', start_timestamp = NULL, end_timestamp = NULL,"
            " success_count = 0, failure_count = 0 WHERE rowid % 50 = 1"
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def run(jobs: int = 100_000, repeats: int = 5, log=print) -> list[Result]:
    from seed import seed_jobs

    from kzconsole.engine import JobQuery
    from kzconsole.engine.store.sqlite import SQLiteStore

    with Workspace(prefix="kzbench-query-") as ws:
        data = ws.data_dir("query")
        seconds = seed_jobs(data, jobs)
        _vary(data / "kzconsole.db")
        log(f"  seeded {jobs:,} jobs in {seconds:.1f} s")
        store = SQLiteStore(data / "kzconsole.db")
        try:
            some = store.list_jobs(JobQuery(limit=1, offset=jobs // 3))[0]
            account = some.account_id
            now = time.time()
            baseline_query = JobQuery(status="failure")

            def answer(query: JobQuery) -> Callable[[], Any]:
                # What the console does for a new filter or sort: the count and the first page.
                return lambda: (store.count_jobs(query), store.list_jobs(query.replace(limit=PAGE)))

            base_all: list[float] = []

            def measure(fn: Callable[[], Any]) -> tuple[float, float]:
                fn()  # warm: the first read of an index from the OS cache is not what is measured
                ours, base = [], []
                for _ in range(repeats):
                    base.append(_timed(answer(baseline_query)))
                    ours.append(_timed(fn))
                base_all.extend(base)
                return median(ours), median(base)

            filters: list[tuple[str, JobQuery]] = [
                ("no filter", JobQuery()),
                ("status executing (0.25% of jobs)", JobQuery(status="executing")),
                (
                    "status: done (5 statuses)",
                    JobQuery(status=["success", "failure", "partial", "stopped", "internal_error"]),
                ),
                ("status failure,partial", JobQuery(status=["failure", "partial"])),
                ("account (exact)", JobQuery(account_id=account)),
                ("account: a piece", JobQuery(account_part=account[-5:])),
                ("task: skel", JobQuery(task="skel")),
                ("task: no match", JobQuery(task="nothing")),
                ("id: prefix", JobQuery(id_prefix=some.id[:2])),
                ("word, a quarter of jobs (skel)", JobQuery(words=["skel"])),
                ("word, one job (file name)", JobQuery(words=[some.file_name or "x"])),
                ("word, no match", JobQuery(words=["zzzz"])),
                ("two words", JobQuery(words=["skel", account[-6:]])),
                ("regex, a fifth (fail|partial)", JobQuery(regex="fail|partial")),
                ("regex, few (input-12\\d\\d5\\.csv$)", JobQuery(regex=r"input-12\d\d5\.csv$")),
                ("regex, no match", JobQuery(regex="zz+y")),
                ("regex, anchored (^ab)", JobQuery(regex="^ab")),
                ("!skel (invert)", JobQuery(words=["skel"], invert=True)),
                ("word + status", JobQuery(words=["skel"], status="failure")),
                ("regex + account", JobQuery(regex="input-1", account_id=account)),
                ("word + sort by task", JobQuery(words=["import"], sort="task")),
                ("regex + sort by rate", JobQuery(regex=r"input-12\d\d5", sort="rate", now=now)),
                ("status done + sort by duration", JobQuery(status=["success", "failure"], sort="duration", now=now)),
                ("account + sort by failures", JobQuery(account_id=account, sort="failure")),
            ]
            from kzconsole.engine import SORTS

            rows: list[tuple[str, float, float, float | None, float | None]] = []
            for name, query in filters:
                ours, base = measure(answer(query))
                rows.append((f"filter {name}", ours, base, None, None))
                log(f"  filter {name:36} {ours:7.1f} ms   (status filter {base:5.1f} ms)")
            for sort in SORTS:
                for descending in (True, False):
                    query = JobQuery(sort=sort, descending=descending, now=now)
                    ours, base = measure(answer(query))
                    total = store.count_jobs(query)
                    deep, _ = measure(
                        lambda q=query, t=total: store.list_jobs(q.replace(limit=PAGE, offset=max(0, t - PAGE)))
                    )
                    middle, _ = measure(lambda q=query, t=total: store.list_jobs(q.replace(limit=PAGE, offset=t // 2)))
                    first = store.list_jobs(query.replace(limit=PAGE))
                    nxt, _ = measure(lambda q=query, f=first: store.list_jobs(q.replace(limit=PAGE).next_page(f[-1])))
                    label = f"sort {sort} {'desc' if descending else 'asc'}"
                    rows.append((label, ours, base, max(deep, middle), nxt))
                    log(
                        f"  {label:30} {ours:7.1f} ms   middle page {middle:6.1f} ms   last page {deep:6.1f} ms"
                        f"   next page {nxt:5.1f} ms   (status filter {base:5.1f} ms)"
                    )

            def by_prefix() -> None:
                assert len(store.list_jobs(JobQuery(id_prefix=some.id[:8], limit=2))) == 1

            def by_id() -> None:
                assert store.get_job(some.id) is not None

            prefix_s, full_s = [], []
            by_prefix(), by_id()
            for _ in range(repeats * 4):
                full_s.append(_timed(by_id))
                prefix_s.append(_timed(by_prefix))
            log(
                f"  prefix lookup (8 characters, limit 2) {median(prefix_s):.2f} ms, by full id {median(full_s):.2f} ms"
            )
        finally:
            store.close()
        shutil.rmtree(data, ignore_errors=True)

    worst = max(rows, key=lambda r: r[1])
    worst_deep = max((r for r in rows if r[3] is not None), key=lambda r: r[3] or 0)
    worst_next = max((r for r in rows if r[4] is not None), key=lambda r: r[4] or 0)
    base = median(base_all)
    return [
        Result(
            "13.11 filter and sort",
            f"slowest of {len(rows)} filters/sorts: {worst[0]}"[:48],
            worst[1],
            "ms",
            baseline=base,
            baseline_name="status filter (failure): count + first page",
            goal="< 300 ms (count + first page)",
            met=worst[1] < 300,
            note=f"{jobs:,} jobs; median of all {len(rows)}: {median([r[1] for r in rows]):.1f} ms",
        ),
        Result(
            "13.11 filter and sort",
            f"slowest middle/last page: {worst_deep[0]}"[:48],
            worst_deep[3],
            "ms",
            baseline=base,
            baseline_name="status filter (failure): count + first page",
            goal="< 300 ms",
            met=(worst_deep[3] or 0) < 300,
            note=f"slowest keyset next page: {worst_next[0]} {worst_next[4]:.1f} ms",
        ),
        Result(
            "11.6 prefix lookup",
            "find_job by an 8-character prefix (limit 2)",
            median(prefix_s),
            "ms",
            baseline=median(full_s),
            baseline_name="get_job by the full id",
            goal="as fast as the full id",
            met=median(prefix_s) < max(1.0, 3 * median(full_s)),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    for r in run(args.jobs, args.repeats):
        print(
            f"{r.target}: {r.name}: {r.value:.2f} {r.unit} vs {r.baseline:.2f} ({r.baseline_name}) met={r.met} {r.note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
