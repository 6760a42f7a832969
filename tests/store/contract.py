"""The behaviour every Store backend must have, written against the Store API only.

A backend's test module subclasses :class:`StoreContract` and provides the ``store`` and
``store_factory`` fixtures described in ``tests/store/conftest.py``. Nothing here may reach into a
backend: a PostgreSQL store runs this file unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kzconsole.engine.models import EngineLease, Firing, JobRecord, JobStatus, Takeover
from kzconsole.engine.store.base import FILE_KINDS, ApiKey, Claim, Fenced, JobStep, Store, StoreError
from kzconsole.engine.store.job_query import SORTS, InvalidQuery, JobQuery

NOW = 1_764_320_400.0


def make_job(job_id: str, **fields: Any) -> JobRecord:
    values: dict[str, Any] = {
        "account_id": "acct-a",
        "auth_account_id": "acct-a",
        "category": "numbers",
        "action": "classify",
        "file_name": "in.csv",
        "status": JobStatus.PENDING,
        "created": NOW,
    }
    values.update(fields)
    return JobRecord(id=job_id, **values)


def _odd_job(job_id: str, **fields: Any) -> JobRecord:
    """A finished job with every public member set, its text full of what JSON escapes."""
    values: dict[str, Any] = {
        "created": NOW + 0.75,
        "start_timestamp": NOW + 1.999,
        "end_timestamp": NOW + 2.5,
        "status": JobStatus.FAILURE,
        "file_name": 'q"uo\\te\né✓.csv',
        "error": 'bad\trow \u0001 "x"',
        "total_count": 3,
        "success_count": 1,
        "failure_count": 2,
        "node": "nøde",
        "output_rows": 3,
    }
    values.update(fields)
    return make_job(job_id, **values)


def ids(jobs: list[JobRecord]) -> list[str]:
    return [job.id for job in jobs]


# ------------------------------------------------------- child-process workers (must be importable)


def _claim_until_empty(factory: Callable[[], Store], node: str, limit: int, barrier: Any, results: Any) -> None:
    """Claim jobs until none are left; report (node, ids) or (node, error)."""
    try:
        store = factory()
        try:
            barrier.wait(timeout=30)
            claimed: list[str] = []
            first = True
            while True:
                jobs = store.claim_queued(node, limit, NOW + 1)
                if first:
                    # Both have claimed once (connections open, caches warm): from here on they
                    # race for the rest at the same time instead of one finishing before the
                    # other has started.
                    barrier.wait(timeout=30)
                    first = False
                if not jobs:
                    break
                for job in jobs:
                    if job.owner != node or job.status is not JobStatus.EXECUTING:
                        raise AssertionError(f"claimed a job that is not ours: {job}")
                claimed.extend(ids(jobs))
        finally:
            store.close()
        results.put((node, claimed))
    except BaseException as exc:  # noqa: BLE001 - report, do not hang the parent
        results.put((node, f"{type(exc).__name__}: {exc}"))


# =============================================================== job queries (owner: query)
#
# list_jobs / count_jobs / iter_jobs with a JobQuery (kzconsole/engine/store/query.py): filters,
# every sort in both directions, keyset paging, streaming. Each answer is checked against the
# query's own Python meaning (JobQuery.matches and JobQuery.position), so a backend's SQL and the
# Python that the console uses for changed records can never drift apart.

QUERY_NOW = NOW + 10_000.0


def _query_jobs() -> list[JobRecord]:
    """A store's worth of jobs with every case a query meets: ties on created, mixed case, no file
    name, unknown totals, never started, running (live: started, not ended), finished."""
    rng = random.Random(20251128)
    tasks = [("numbers", "normalize"), ("Numbers", "dedupe"), ("skel", "id2"), ("skel", "ID2x"), ("cdrs", "dump")]
    accounts = ["a" * 32, "b" * 31 + "c", "0123456789abcdef" * 2, "acct-Mixed"]
    statuses = list(JobStatus)
    jobs = []
    for n in range(160):
        status = statuses[n % len(statuses)]
        start = None if status is JobStatus.PENDING and n % 3 else NOW + n + rng.choice([0.25, 1.5, 7.0])
        end = (
            None
            if status in (JobStatus.PENDING, JobStatus.EXECUTING) or start is None
            else (start + rng.choice([0.0, 0.5, 3.0, 120.0]))
        )
        total = rng.choice([None, 0, 10, 250])
        success = rng.randint(0, 40)
        failure = rng.choice([0, 0, 1, 7])
        category, action = tasks[n % len(tasks)]
        prefix = "cafe" if n % 11 == 0 else ""
        jobs.append(
            make_job(
                (prefix + f"{rng.getrandbits(128):032x}")[:32],
                account_id=accounts[n % len(accounts)],
                category=category,
                action=action,
                file_name=rng.choice([None, f"In-{n}.csv", f"batch_{n % 7}.CSV", "numbers.csv"]),
                status=status,
                created=NOW + (n // 3),  # three jobs share each creation time
                start_timestamp=start,
                end_timestamp=end,
                total_count=total,
                success_count=success,
                failure_count=failure,
                queued_at=NOW if status is JobStatus.PENDING and n % 2 else None,
            )
        )
    return jobs


def _reference(jobs: list[JobRecord], query: JobQuery) -> list[JobRecord]:
    """What the store must answer, from the query's Python meaning."""
    now = QUERY_NOW if query.now is None else query.now
    found = [job for job in jobs if query.matches(job)]
    found.sort(key=lambda job: query.position(job, now), reverse=query.descending)
    if query.after is not None:
        after = tuple(query.after)
        if query.descending:
            found = [job for job in found if query.position(job, now) < after]
        else:
            found = [job for job in found if query.position(job, now) > after]
    found = found[query.offset :]
    return found if query.limit is None else found[: query.limit]


class JobQueryContract:
    """The job query part of the contract (mixed into StoreContract)."""

    @pytest.fixture
    def query_jobs(self, store: Store) -> list[JobRecord]:
        jobs = _query_jobs()
        for job in jobs:
            store.create_job(job)
        return jobs

    def _check(self, store: Store, jobs: list[JobRecord], query: JobQuery) -> None:
        expected = ids(_reference(jobs, query))
        assert ids(store.list_jobs(query)) == expected, query
        with store.iter_jobs(query, ("id",)) as rows:
            assert [row[0] for row in rows] == expected, query
        assert store.count_jobs(query) == len(_reference(jobs, query.filter_only)), query

    # ------------------------------------------------------------------ filters

    def test_query_default_lists_every_job_newest_first(self, store: Store, query_jobs: list[JobRecord]) -> None:
        newest_first = sorted(query_jobs, key=lambda job: (job.created, job.id), reverse=True)
        assert ids(store.list_jobs(JobQuery())) == ids(newest_first)
        assert ids(store.list_jobs()) == ids(newest_first)
        assert store.count_jobs(JobQuery()) == len(query_jobs) == store.count_jobs()

    def test_query_keywords_build_or_change_the_query(self, store: Store, query_jobs: list[JobRecord]) -> None:
        query = JobQuery(status=["failure", "partial"], sort="task")
        assert ids(store.list_jobs(status=["failure", "partial"], sort="task")) == ids(store.list_jobs(query))
        assert ids(store.list_jobs(query, limit=3, offset=2)) == ids(store.list_jobs(query))[2:5]
        assert store.count_jobs(query, account_id="a" * 32) == len(
            [j for j in query_jobs if j.status.value in ("failure", "partial") and j.account_id == "a" * 32]
        )

    def test_query_structured_filters(self, store: Store, query_jobs: list[JobRecord]) -> None:
        for query in (
            JobQuery(account_id="a" * 32),
            JobQuery(status="executing"),
            JobQuery(status=JobStatus.SUCCESS),
            JobQuery(status=["success", "failure", "stopped"]),
            JobQuery(status=[]),
            JobQuery(task="numbers/"),
            JobQuery(task="ID2"),
            JobQuery(task="nothing like it"),
            JobQuery(id_prefix="CAFE"),
            JobQuery(id_prefix="cafe", status=["pending", "success"]),
            JobQuery(account_part="MIXED"),
            JobQuery(account_part="bbbc"),
            JobQuery(account_id="acct-Mixed", task="skel", status=["pending", "executing", "success"]),
        ):
            self._check(store, query_jobs, query)
        assert store.list_jobs(JobQuery(status=[])) == []
        assert store.count_jobs(JobQuery(status=[])) == 0
        assert {job.status for job in store.list_jobs(JobQuery(task="DeDuPe"))} == {
            job.status for job in query_jobs if job.action == "dedupe"
        }

    def test_query_words_search_the_jobs_text(self, store: Store, query_jobs: list[JobRecord]) -> None:
        named = next(job for job in query_jobs if (job.file_name or "").startswith("In-"))
        in_file = store.list_jobs(JobQuery(words=[named.file_name.upper()]))
        assert [job.file_name for job in in_file] == [named.file_name]
        # Each word is a piece of the text: id, task, account or file name, any case.
        for words in (
            ["numbers"],
            ["NUMBERS", "in-"],
            "skel/id2 acct",
            ["cafe"],
            ["numbers", "batch_3"],
            ["aaaa", "dump"],
            ["normalize", "nothing like it"],
            ["/"],
            ["success"],
        ):
            self._check(store, query_jobs, JobQuery(words=words))
        both = store.list_jobs(JobQuery(words="skel MIXED"))
        assert both and all(job.category == "skel" and job.account_id == "acct-Mixed" for job in both)
        assert store.list_jobs(JobQuery(words=["executing"])) == []  # a status is not text: status= says it

    def test_query_regular_expression(self, store: Store, query_jobs: list[JobRecord]) -> None:
        for regex in (
            r"^cafe",
            r"DUMP|dedupe",
            r"\.csv$",
            r"numbers/(normalize|dedupe) ",
            r"skel/id2 ",
            r"^[0-9a-f]{3}[0-3]",
            r"batch_[0-2]\.csv",
            r"acct-mixed",
            r"\D{5}-\d+",
        ):
            self._check(store, query_jobs, JobQuery(regex=regex))
        upper = store.list_jobs(JobQuery(regex="ACCT-MIXED"))
        assert upper and all(job.account_id == "acct-Mixed" for job in upper)

    def test_query_invert_keeps_what_the_words_do_not_match(self, store: Store, query_jobs: list[JobRecord]) -> None:
        for query in (
            JobQuery(words=["numbers"], invert=True),
            JobQuery(regex="skel|cdrs", invert=True),
            JobQuery(words=["csv"], regex="^cafe", invert=True),
            JobQuery(words=["numbers"], invert=True, status="success", account_id="a" * 32),
            JobQuery(invert=True),  # nothing to invert: every job
        ):
            self._check(store, query_jobs, query)
        kept = store.list_jobs(JobQuery(words=["numbers"], invert=True, status="pending"))
        assert kept and all(
            job.status is JobStatus.PENDING
            and "numbers" not in job.task_name.lower()
            and "numbers" not in (job.file_name or "").lower()
            for job in kept
        )

    # ------------------------------------------------------------------- sorts

    @pytest.mark.parametrize("sort", sorted(SORTS))
    def test_query_every_sort_both_ways(self, store: Store, query_jobs: list[JobRecord], sort: str) -> None:
        for descending in (True, False):
            query = JobQuery(sort=sort, descending=descending, now=QUERY_NOW)
            self._check(store, query_jobs, query)
            forward = ids(store.list_jobs(query))
            backward = ids(store.list_jobs(query.replace(descending=not descending)))
            assert forward == list(reversed(backward)), f"{sort}: one direction is the other reversed"
            self._check(store, query_jobs, query.replace(status=["failure", "executing"]))
            self._check(store, query_jobs, query.replace(words=["skel"], after=None))

    def test_query_sort_keys_mean_what_the_columns_show(self, store: Store) -> None:
        # Three jobs whose every column differs in a known way.
        store.create_job(
            make_job(
                "01",
                category="b",
                action="x",
                account_id="acct-2",
                file_name=None,
                status=JobStatus.SUCCESS,
                created=NOW,
                start_timestamp=NOW + 1,
                end_timestamp=NOW + 11,
                total_count=100,
                success_count=100,
            )
        )
        store.create_job(
            make_job(
                "02",
                category="a",
                action="z",
                account_id="acct-3",
                file_name="z.csv",
                status=JobStatus.EXECUTING,
                created=NOW + 1,
                start_timestamp=NOW + 2,
                total_count=None,
                success_count=30,
                failure_count=10,
            )
        )
        store.create_job(
            make_job(
                "03",
                category="a",
                action="y",
                account_id="acct-1",
                file_name="a.csv",
                status=JobStatus.FAILURE,
                created=NOW + 2,
                start_timestamp=NOW + 3,
                end_timestamp=NOW + 4,
                total_count=50,
                success_count=0,
                failure_count=50,
            )
        )
        now = NOW + 42  # job 02 has run 40 s: 1 row/s
        expect = {  # descending
            "created": ["03", "02", "01"],
            "id": ["03", "02", "01"],
            "status": ["02", "03", "01"],  # running first, then failed, then succeeded
            "task": ["01", "02", "03"],  # b/x, a/z, a/y
            "account": ["02", "01", "03"],
            "file": ["02", "03", "01"],  # z.csv, a.csv, none
            "success": ["01", "02", "03"],
            "failure": ["03", "02", "01"],
            "total": ["01", "03", "02"],  # unknown total last
            "progress": ["03", "01", "02"],  # 1.0 and 1.0 (a tie: the newer first), unknown total last
            "started": ["03", "02", "01"],
            "duration": ["02", "01", "03"],  # 40 s (running, to now), 10 s, 1 s
            "rate": ["03", "01", "02"],  # 50/s, 10/s, 1/s
        }
        for sort, order in expect.items():
            assert ids(store.list_jobs(JobQuery(sort=sort, descending=True, now=now))) == order, sort
            assert ids(store.list_jobs(JobQuery(sort=sort, descending=False, now=now))) == order[::-1], sort
        # The live duration moves with now: at NOW + 5 job 02 has run 3 s, less than 01's 10 s.
        assert ids(store.list_jobs(JobQuery(sort="duration", now=NOW + 5))) == ["01", "02", "03"]

    def test_query_natural_directions(self) -> None:
        assert JobQuery().descending and JobQuery(sort="status").descending and JobQuery(sort="rate").descending
        assert not JobQuery(sort="task").descending and not JobQuery(sort="account").descending

    # ------------------------------------------------------------------- paging

    @pytest.mark.parametrize("sort", ["created", "task", "status", "duration", "rate", "id", "file"])
    def test_query_keyset_pages_cover_the_listing(self, store: Store, query_jobs: list[JobRecord], sort: str) -> None:
        for descending in (True, False):
            for narrowing in ({}, {"status": ["success", "pending"]}, {"words": ["csv"]}):
                query = JobQuery(sort=sort, descending=descending, now=QUERY_NOW, **narrowing)
                everything = ids(store.list_jobs(query))
                seen: list[str] = []
                page = query.replace(limit=7)
                for _ in range(len(everything) // 7 + 1):  # a wrong position must fail, not loop
                    rows = store.list_jobs(page)
                    seen.extend(ids(rows))
                    if len(rows) < 7:
                        break
                    page = page.next_page(rows[-1])
                assert seen == everything, (sort, descending, narrowing)

    def test_query_keyset_paging_is_stable_while_jobs_are_added(self, store: Store) -> None:
        for n in range(10):
            store.create_job(make_job(f"old{n}", created=NOW + n))
        first = store.list_jobs(JobQuery(limit=4))
        assert ids(first) == ["old9", "old8", "old7", "old6"]
        for n in range(5):
            store.create_job(make_job(f"new{n}", created=NOW + 100 + n))
        page = JobQuery(limit=4).next_page(first[-1])
        assert ids(store.list_jobs(page)) == ["old5", "old4", "old3", "old2"]
        # The opaque form of the same position (the REST API's next_start_key).
        token = JobQuery(limit=4).page_token(first[-1])
        assert ids(store.list_jobs(JobQuery(limit=4).resume(token))) == ["old5", "old4", "old3", "old2"]

    def test_query_offset_and_limit(self, store: Store, query_jobs: list[JobRecord]) -> None:
        everything = ids(store.list_jobs(JobQuery(sort="task")))
        assert ids(store.list_jobs(JobQuery(sort="task", limit=5))) == everything[:5]
        assert ids(store.list_jobs(JobQuery(sort="task", limit=5, offset=150))) == everything[150:155]
        assert ids(store.list_jobs(JobQuery(sort="task", offset=155))) == everything[155:]
        assert store.list_jobs(JobQuery(limit=0)) == []
        assert store.list_jobs(JobQuery(offset=len(everything))) == []
        first = store.list_jobs(JobQuery(sort="task", limit=5))
        assert ids(store.list_jobs(JobQuery(sort="task", limit=5, offset=5))) == ids(
            store.list_jobs(JobQuery(sort="task", limit=5).next_page(first[-1]))
        )

    def test_query_deep_pages_of_every_order(self, store: Store) -> None:
        # Deep enough that a backend may read a page from the other end (SQLite does past 1,000).
        rng = random.Random(3)
        jobs = []
        for n in range(2100):
            status = rng.choice(list(JobStatus))
            start = None if status is JobStatus.PENDING else NOW + n
            end = None if status in (JobStatus.PENDING, JobStatus.EXECUTING) else NOW + n + rng.randint(0, 99)
            job = make_job(
                f"d{n:05d}",
                status=status,
                created=NOW + n // 2,
                start_timestamp=start,
                end_timestamp=end,
                success_count=rng.randint(0, 9),
                failure_count=rng.randint(0, 3),
                category=rng.choice(["a", "b"]),
                file_name=f"f{n % 13}.csv",
            )
            jobs.append(job)
            store.create_job(job)
        for sort in ("rate", "duration", "failure", "task", "status", "created"):
            for descending in (True, False):
                for narrowing in ({}, {"words": ["f1"]}, {"status": ["success", "executing", "stopped"]}):
                    query = JobQuery(sort=sort, descending=descending, now=NOW + 5000, **narrowing)
                    total = store.count_jobs(query)
                    for offset, limit in (
                        (1001, 64),
                        (total // 2 + 3, 50),
                        (total - 10, 64),
                        (total - 64, None),
                        (total + 5, 10),
                    ):
                        self._check(store, jobs, query.replace(offset=max(0, offset), limit=limit))

    def test_query_random_queries_agree_with_their_meaning(self, store: Store, query_jobs: list[JobRecord]) -> None:
        rng = random.Random(7)
        pieces = ["numbers", "skel", "id2", "csv", "cafe", "aaa", "in-1", "batch", "dump", "mixed", "/", "0"]
        regexes = [r"^cafe", r"(dump|dedupe)", r"\.csv$", r"[0-9]{2}\.", r"^.{10}a", r"skel/id2 p", r"a+b"]
        for _ in range(150):
            fields: dict[str, Any] = {
                "sort": rng.choice(sorted(SORTS)),
                "descending": rng.random() < 0.5,
                "now": QUERY_NOW,
            }
            if rng.random() < 0.3:
                fields["status"] = rng.sample([s.value for s in JobStatus], rng.randint(0, 3))
            if rng.random() < 0.2:
                fields["account_id"] = rng.choice(["a" * 32, "acct-Mixed", "nobody"])
            if rng.random() < 0.2:
                fields["task"] = rng.choice(["numbers", "SKEL/", "dump", "x"])
            if rng.random() < 0.1:
                fields["id_prefix"] = rng.choice(["cafe", "c", "0", "f"])
            if rng.random() < 0.1:
                fields["account_part"] = rng.choice(["aaa", "MIX", "89ab"])
            if rng.random() < 0.3:
                fields["words"] = rng.sample(pieces, rng.randint(1, 2))
            if rng.random() < 0.2:
                fields["regex"] = rng.choice(regexes)
            fields["invert"] = rng.random() < 0.2
            if rng.random() < 0.3:
                fields["limit"] = rng.randint(0, 20)
            if rng.random() < 0.2:
                fields["offset"] = rng.randint(0, 30)
            query = JobQuery(**fields)
            if rng.random() < 0.3:
                anchor = rng.choice(query_jobs)
                query = query.replace(after=query.position(anchor))
            self._check(store, query_jobs, query)

    # --------------------------------------------------------------- streaming

    def test_iter_jobs_gives_plain_tuples_in_list_order(self, store: Store, query_jobs: list[JobRecord]) -> None:
        columns = ("id", "status", "created", "stop_requested", "total_count", "file_name")
        query = JobQuery(sort="duration", now=QUERY_NOW, status=["executing", "success", "pending"])
        with store.iter_jobs(query, columns) as rows:
            got = list(rows)
        expected = store.list_jobs(query)
        assert [row[0] for row in got] == ids(expected)
        for row, job in zip(got, expected, strict=True):
            assert row == (job.id, job.status.value, job.created, job.stop_requested, job.total_count, job.file_name)
            assert type(row[1]) is str and type(row[3]) is bool
        # A bounded page (SQLite reads one at once, for the API's listing) gives the same rows.
        with store.iter_jobs(query.replace(limit=3), columns) as rows:
            assert list(rows) == got[:3]
        with store.iter_jobs(JobQuery(status=[]), ["id"]) as rows:
            assert list(rows) == []

    def test_iter_job_documents_are_the_public_records(self, store: Store, query_jobs: list[JobRecord]) -> None:
        store.create_job(_odd_job("odd"))
        for query in (
            JobQuery(),
            JobQuery(sort="duration", now=QUERY_NOW, status=["executing", "success", "failure"]),
            JobQuery(words="odd"),
            JobQuery(limit=2),
            JobQuery(sort="task", descending=False, limit=5000),
        ):
            with store.iter_job_documents(query) as documents:
                got = [json.loads(document) for (document,) in documents]
            assert got == [job.public() for job in store.list_jobs(query)], query
            assert all(type(doc["created"]) is int for doc in got)
        with store.iter_job_documents(JobQuery(status=[])) as documents:
            assert list(documents) == []
        with pytest.raises(InvalidQuery, match="unknown status"):
            store.iter_job_documents(None, status="bogus")

    def test_iter_job_documents_with_an_epoch_no_nulls_and_columns(
        self, store: Store, query_jobs: list[JobRecord]
    ) -> None:
        # (api) The REST API's listing: times moved to Gregorian seconds, null members left out
        # (in every combination the jobs have), and the columns that tell a job's files after each.
        store.create_job(_odd_job("every-member", output_offset=10))
        store.create_job(
            make_job("noinput-on-a-node", created=NOW + 1.75, file_name=None, node="n1", stop_requested=True)
        )
        epoch = 62167219200
        times = ("created", "start_timestamp", "end_timestamp")
        columns = ("id", "created", "total_count", "output_offset", "output_path", "status", "stop_requested")
        for query in (
            JobQuery(),
            JobQuery(account_id="a" * 32, limit=7),
            JobQuery(limit=5, offset=3),
            JobQuery(status="pending", limit=4),
            JobQuery(sort="task", limit=9),
            JobQuery(words="cafe"),
        ):
            with store.iter_job_documents(query, epoch=epoch, nulls=False, columns=columns) as rows:
                got = list(rows)
            expected = store.list_jobs(query)
            assert [row[1] for row in got] == ids(expected), query
            for row, job in zip(got, expected, strict=True):
                want = {
                    key: value + epoch if key in times else value
                    for key, value in job.public().items()
                    if value is not None
                }
                document = json.loads(row[0])
                assert document == want and list(document) == list(want)  # the members in order
                assert row[1:] == (
                    job.id,
                    job.created,
                    job.total_count,
                    job.output_offset,
                    job.output_path,
                    job.status.value,
                    job.stop_requested,
                )
                assert type(row[-1]) is bool
        with store.iter_job_documents(JobQuery(limit=3), epoch=10) as rows:  # nulls kept
            got = [json.loads(document) for (document,) in rows]
        assert got == [
            {key: value + 10 if key in times and value is not None else value for key, value in job.public().items()}
            for job in store.list_jobs(JobQuery(limit=3))
        ]
        with pytest.raises(InvalidQuery, match="epoch"):
            store.iter_job_documents(None, epoch=1.5)
        with pytest.raises(InvalidQuery, match="columns"):
            store.iter_job_documents(None, columns=("nope",))

    def test_job_documents_are_what_iter_job_documents_gives_each_job(
        self, store: Store, query_jobs: list[JobRecord]
    ) -> None:
        # (api) The jobs of a listing page the API has not kept, read by id: the same row each,
        # whatever the options, keyed by id, in the order asked; unknown ids left out.
        store.create_job(_odd_job("every-member", output_offset=10))
        store.create_job(make_job("noinput", created=NOW + 1.75, file_name=None, node="n1", stop_requested=True))
        columns = ("id", "created", "total_count", "output_offset", "output_path", "status", "stop_requested")
        every = [job.id for job in store.list_jobs(JobQuery())]
        wanted = [every[5], "no-such-job", every[0], every[-1], "every-member", "noinput", every[0]]
        for options in ({}, {"epoch": 62167219200, "nulls": False, "columns": columns}, {"epoch": 7}):
            with store.iter_job_documents(JobQuery(), **options) as rows:
                expected = dict(zip(every, rows, strict=True))
            got = store.job_documents(wanted, **options)
            assert list(got) == [every[5], every[0], every[-1], "every-member", "noinput"], options
            assert got == {job_id: expected[job_id] for job_id in got}, options
        for n in range(450):
            store.create_job(make_job(f"bulk{n:03d}", created=NOW - 10 - n))
        every = [job.id for job in store.list_jobs(JobQuery())]
        many = store.job_documents(every * 2)  # more ids than one statement takes, each twice
        assert list(many) == every
        assert store.job_documents([]) == {}
        store.delete_job("noinput")
        assert store.job_documents(["noinput"]) == {}
        with pytest.raises(InvalidQuery, match="epoch"):
            store.job_documents(every, epoch=1.5)
        with pytest.raises(InvalidQuery, match="columns"):
            store.job_documents(every, columns=("nope",))

    def test_iter_jobs_streams_and_can_stop_early(self, store: Store) -> None:
        for n in range(3000):
            store.create_job(make_job(f"s{n:05d}", created=NOW + n))
        rows = store.iter_jobs(JobQuery(), ["id"])
        assert next(rows) == ("s02999",)
        assert [row[0] for _, row in zip(range(4999), rows, strict=False)][-1] == "s00000"  # the rest, once
        rows.close()
        with store.iter_jobs(JobQuery(), ["id"]) as rows:
            assert next(rows) == ("s02999",)
        # Stopping early let go of the listing: the store goes on as before.
        store.create_job(make_job("after", created=NOW + 10_000))
        assert ids(store.list_jobs(JobQuery(limit=1))) == ["after"]

    def test_iter_jobs_checks_its_arguments_at_once(self, store: Store) -> None:
        with pytest.raises(InvalidQuery, match="not a JobRecord field"):
            store.iter_jobs(JobQuery(), ["id", "no_such_column"])
        with pytest.raises(InvalidQuery, match="columns"):
            store.iter_jobs(JobQuery(), "id")
        with pytest.raises(InvalidQuery, match="unknown status"):
            store.iter_jobs(None, ["id"], status="bogus")

    def test_iter_jobs_after_close_raises_a_store_error(self, store_factory: Callable[[], Store]) -> None:
        other = store_factory()
        for n in range(10_000):
            other.create_job(make_job(f"c{n:05d}", created=NOW + n))
        rows = other.iter_jobs(JobQuery(), ["id"])
        assert next(rows) == ("c09999",)
        other.close()
        with pytest.raises(StoreError):
            for _ in rows:
                pass
        rows.close()  # quietly
        with pytest.raises(StoreError):
            other.iter_jobs(JobQuery(), ["id"])

    # ---------------------------------------------------------------- prefixes

    def test_query_id_prefix_with_a_limit_of_two(self, store: Store) -> None:
        for job_id in ("abcdef01", "abcdef02", "abcdee99", "abcdeg00", "abcdeF55", "abcdeg"):
            store.create_job(make_job(job_id))
        assert sorted(ids(store.list_jobs(JobQuery(id_prefix="abcdef")))) == ["abcdef01", "abcdef02"]
        assert len(store.list_jobs(JobQuery(id_prefix="abcdef", limit=2))) == 2
        assert ids(store.list_jobs(JobQuery(id_prefix="ABCDEF0", limit=2, sort="id"))) == ["abcdef01", "abcdef02"]
        assert ids(store.list_jobs(JobQuery(id_prefix="abcdee", limit=2))) == ["abcdee99"]
        assert store.list_jobs(JobQuery(id_prefix="abcdf", limit=2)) == []
        assert store.count_jobs(JobQuery(id_prefix="abcde")) == 6


class StoreContract(JobQueryContract):
    """Contract tests. Subclass as ``class TestXStore(StoreContract)`` with the fixtures."""

    # ------------------------------------------------------------------ jobs: basics

    def test_create_and_get_round_trips_every_field(self, store: Store) -> None:
        job = make_job(
            "j1",
            file_name=None,
            status=JobStatus.EXECUTING,
            created=NOW + 0.5,
            start_timestamp=NOW + 1.25,
            end_timestamp=None,
            total_count=42,
            success_count=3,
            failure_count=2,
            node="host:1:abc",
            output_rows=7,
            wait_after_row_ms=0,
            error="boom",
            input_path="jobs/j1/input.csv",
            output_path="/abs/out.csv",
            queued_at=NOW + 1,
            stop_requested=True,
            owner="host:1:abc",
            rows_done=5,
            output_offset=1234,
            state='{"cursor": 5}',
            resumable=False,
            finishing=True,
            claim=7,
        )
        store.create_job(job)
        got = store.get_job("j1")
        assert got == job
        assert got is not None and got.status is JobStatus.EXECUTING
        assert isinstance(got.stop_requested, bool) and isinstance(got.resumable, bool)

    def test_defaults_round_trip(self, store: Store) -> None:
        job = make_job("j1")
        store.create_job(job)
        assert store.get_job("j1") == job

    def test_get_missing_is_none(self, store: Store) -> None:
        assert store.get_job("nope") is None

    def test_duplicate_id_is_refused(self, store: Store) -> None:
        store.create_job(make_job("j1", account_id="first"))
        with pytest.raises(StoreError, match="j1"):
            store.create_job(make_job("j1", account_id="second"))
        got = store.get_job("j1")
        assert got is not None and got.account_id == "first"

    # ------------------------------------------------------------------ jobs: listing

    def _populate(self, store: Store) -> None:
        statuses = [JobStatus.PENDING, JobStatus.EXECUTING, JobStatus.SUCCESS, JobStatus.FAILURE]
        for n in range(12):
            store.create_job(
                make_job(
                    f"j{n:02d}",
                    account_id=("acct-a", "acct-b", "acct-c")[n % 3],
                    status=statuses[n % 4],
                    created=NOW + n,
                )
            )

    def test_list_newest_first(self, store: Store) -> None:
        self._populate(store)
        assert ids(store.list_jobs()) == [f"j{n:02d}" for n in reversed(range(12))]

    def test_list_ties_on_created_order_by_id_descending(self, store: Store) -> None:
        for job_id in ("b", "c", "a"):
            store.create_job(make_job(job_id, created=NOW))
        store.create_job(make_job("z", created=NOW - 1))
        assert ids(store.list_jobs()) == ["c", "b", "a", "z"]

    def test_list_filters_by_account_and_status(self, store: Store) -> None:
        self._populate(store)
        assert ids(store.list_jobs(account_id="acct-b")) == ["j10", "j07", "j04", "j01"]
        assert ids(store.list_jobs(status="pending")) == ["j08", "j04", "j00"]
        assert ids(store.list_jobs(status=JobStatus.SUCCESS)) == ["j10", "j06", "j02"]
        assert ids(store.list_jobs(status=["success", JobStatus.FAILURE])) == ["j11", "j10", "j07", "j06", "j03", "j02"]
        assert ids(store.list_jobs(account_id="acct-a", status=("pending", "executing"))) == ["j09", "j00"]
        assert store.list_jobs(account_id="nobody") == []
        assert store.list_jobs(status=[]) == []

    def test_list_and_count_by_task_and_id_prefix(self, store: Store) -> None:
        tasks = [("numbers", "normalize"), ("numbers", "dedupe"), ("skel", "id2")]
        for n in range(9):
            category, action = tasks[n % 3]
            store.create_job(
                make_job(
                    f"{n:x}a{n:x}",
                    category=category,
                    action=action,
                    created=NOW + n,
                    status=(JobStatus.PENDING, JobStatus.SUCCESS)[n % 2],
                )
            )
        assert ids(store.list_jobs(task="numbers/")) == ["7a7", "6a6", "4a4", "3a3", "1a1", "0a0"]
        assert ids(store.list_jobs(task="DEDUP")) == ["7a7", "4a4", "1a1"]  # a piece, any case
        assert ids(store.list_jobs(task="skel/id2", status=["pending", "success"])) == ["8a8", "5a5", "2a2"]
        assert ids(store.list_jobs(task="skel", status="success")) == ["5a5"]
        assert ids(store.list_jobs(id_prefix="4A")) == ["4a4"]
        assert ids(store.list_jobs(task="numbers", limit=2, offset=1)) == ["6a6", "4a4"]
        assert store.count_jobs(task="numbers") == 6
        assert store.count_jobs(task="numbers", status="pending", id_prefix="4") == 1
        assert store.list_jobs(task="nothing like it") == []

    def test_list_paging(self, store: Store) -> None:
        self._populate(store)
        everything = ids(store.list_jobs())
        assert ids(store.list_jobs(limit=5)) == everything[:5]
        assert ids(store.list_jobs(limit=5, offset=5)) == everything[5:10]
        assert ids(store.list_jobs(limit=5, offset=10)) == everything[10:]
        assert ids(store.list_jobs(offset=9)) == everything[9:]
        assert store.list_jobs(limit=5, offset=12) == []
        assert store.list_jobs(limit=0) == []
        assert ids(store.list_jobs(account_id="acct-c", limit=2, offset=1)) == ["j08", "j05"]

    def test_count_matches_list(self, store: Store) -> None:
        self._populate(store)
        assert store.count_jobs() == 12
        assert store.count_jobs(account_id="acct-a") == 4
        assert store.count_jobs(status="executing") == 3
        assert store.count_jobs(status=["success", "failure"]) == 6
        assert store.count_jobs(account_id="acct-b", status="executing") == 1
        assert store.count_jobs(account_id="nobody") == 0
        assert store.count_jobs(status=[]) == 0
        for account in (None, "acct-a", "acct-b"):
            for status in (None, "pending", ["success", "executing"]):
                assert store.count_jobs(account_id=account, status=status) == len(
                    store.list_jobs(account_id=account, status=status)
                )

    def test_jobs_in_status_oldest_first_and_by_owner(self, store: Store) -> None:
        store.create_job(make_job("late", status=JobStatus.EXECUTING, owner="e1", created=NOW + 2))
        store.create_job(make_job("early", status=JobStatus.EXECUTING, owner="e2", created=NOW))
        store.create_job(make_job("mid", status=JobStatus.EXECUTING, owner="e1", created=NOW + 1))
        store.create_job(make_job("other", status=JobStatus.PENDING, owner="e1", created=NOW))
        assert ids(store.jobs_in_status("executing")) == ["early", "mid", "late"]
        assert ids(store.jobs_in_status(JobStatus.EXECUTING, owner="e1")) == ["mid", "late"]
        assert store.jobs_in_status("executing", owner="nobody") == []
        assert store.jobs_in_status("success") == []

    # ------------------------------------------------------------------ jobs: compare-and-set

    def test_update_without_expect(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        new = store.update_job("j1", {"success_count": 5, "status": JobStatus.EXECUTING})
        assert new is not None
        assert new.success_count == 5 and new.status is JobStatus.EXECUTING
        assert store.get_job("j1") == new

    def test_update_with_matching_expect(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        new = store.update_job(
            "j1",
            {"status": "executing", "owner": "e1", "stop_requested": True, "queued_at": None},
            expect={"status": JobStatus.PENDING, "owner": None, "stop_requested": False},
        )
        assert new == make_job("j1", status=JobStatus.EXECUTING, owner="e1", stop_requested=True)
        assert store.get_job("j1") == new

    def test_update_with_mismatched_expect_changes_nothing(self, store: Store) -> None:
        store.create_job(make_job("j1", owner="e1", queued_at=NOW))
        before = store.get_job("j1")
        assert store.update_job("j1", {"status": "executing"}, expect={"status": "success"}) is None
        assert store.update_job("j1", {"status": "executing"}, expect={"owner": None}) is None
        assert store.update_job("j1", {"owner": "e2"}, expect={"owner": "e2"}) is None
        # Every expected field must match, not just one.
        assert store.update_job("j1", {"owner": "e2"}, expect={"owner": "e1", "status": "executing"}) is None
        assert store.get_job("j1") == before
        assert store.update_job("j1", {"owner": "e2"}, expect={"owner": "e1", "queued_at": NOW}) is not None

    def test_update_races_only_one_wins(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        first = store.update_job("j1", {"owner": "e1"}, expect={"owner": None})
        second = store.update_job("j1", {"owner": "e2"}, expect={"owner": None})
        assert first is not None and first.owner == "e1"
        assert second is None

    def test_update_missing_job_is_none(self, store: Store) -> None:
        assert store.update_job("nope", {"owner": "e1"}) is None

    def test_update_rejects_unknown_fields_and_id(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        with pytest.raises(ValueError, match="colour"):
            store.update_job("j1", {"colour": "red"})
        with pytest.raises(ValueError, match="colour"):
            store.update_job("j1", {"owner": "e1"}, expect={"colour": "red"})
        with pytest.raises(ValueError, match="id"):
            store.update_job("j1", {"id": "j2"})
        assert store.get_job("j1") == make_job("j1")

    def test_update_with_no_changes_reports_the_match(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        assert store.update_job("j1", {}, expect={"status": "pending"}) == make_job("j1")
        assert store.update_job("j1", {}, expect={"status": "success"}) is None

    def test_delete_with_expect(self, store: Store) -> None:
        store.create_job(make_job("j1", status=JobStatus.SUCCESS))
        assert store.delete_job("j1", expect={"status": "executing"}) is None
        assert store.get_job("j1") is not None
        deleted = store.delete_job("j1", expect={"status": JobStatus.SUCCESS, "owner": None})
        assert deleted == make_job("j1", status=JobStatus.SUCCESS)
        assert store.get_job("j1") is None
        assert store.delete_job("j1") is None

    def test_delete_without_expect(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        store.create_job(make_job("j2"))
        assert store.delete_job("j1") == make_job("j1")
        assert ids(store.list_jobs()) == ["j2"]

    # ------------------------------------------------------------------ jobs: claiming

    def test_claim_queued_in_queue_order_with_limit(self, store: Store) -> None:
        store.create_job(make_job("q3", queued_at=NOW + 3, created=NOW - 10))
        store.create_job(make_job("q1b", queued_at=NOW + 1))
        store.create_job(make_job("q1a", queued_at=NOW + 1, created=NOW + 5))
        store.create_job(make_job("q2", queued_at=NOW + 2))
        store.create_job(make_job("not-started"))  # pending but never queued
        store.create_job(make_job("running", status=JobStatus.EXECUTING, queued_at=NOW))
        store.create_job(make_job("done", status=JobStatus.SUCCESS, queued_at=NOW))
        store.create_job(make_job("stopped", status=JobStatus.STOPPED, queued_at=NOW))

        claimed = store.claim_queued("e1", 2, NOW + 100)
        assert ids(claimed) == ["q1a", "q1b"]
        for job in claimed:
            assert job.status is JobStatus.EXECUTING
            assert job.owner == "e1" and job.node == "e1"
            assert job.start_timestamp == NOW + 100
            assert store.get_job(job.id) == job

        assert ids(store.claim_queued("e2", 10, NOW + 200)) == ["q2", "q3"]
        assert store.claim_queued("e2", 10, NOW + 300) == []
        assert store.get_job("not-started").status is JobStatus.PENDING  # type: ignore[union-attr]
        assert store.get_job("running").owner is None  # type: ignore[union-attr]
        assert store.get_job("done").status is JobStatus.SUCCESS  # type: ignore[union-attr]

    def test_claim_with_zero_limit_takes_nothing(self, store: Store) -> None:
        store.create_job(make_job("q", queued_at=NOW))
        assert store.claim_queued("e1", 0, NOW) == []
        assert store.get_job("q").status is JobStatus.PENDING  # type: ignore[union-attr]

    def _queue(self, store: Store, count: int) -> set[str]:
        for n in range(count):
            store.create_job(make_job(f"q{n:03d}", queued_at=NOW + n))
        return {f"q{n:03d}" for n in range(count)}

    def _check_claims(self, store: Store, by_node: dict[str, list[str]], expected: set[str]) -> None:
        all_claims = [job_id for claimed in by_node.values() for job_id in claimed]
        assert len(all_claims) == len(set(all_claims)), "a job was claimed twice"
        assert set(all_claims) == expected, "a job was lost"
        for node, claimed in by_node.items():
            for job_id in claimed:
                job = store.get_job(job_id)
                assert job is not None and job.owner == node and job.status is JobStatus.EXECUTING
        assert store.count_jobs(status="pending") == 0

    def test_two_threads_claim_concurrently(self, store: Store) -> None:
        expected = self._queue(store, 200)
        barrier = threading.Barrier(2)
        by_node: dict[str, list[str]] = {"t1": [], "t2": []}
        errors: list[BaseException] = []

        def claim(node: str) -> None:
            try:
                barrier.wait(timeout=10)
                jobs = store.claim_queued(node, 3, NOW + 1)
                barrier.wait(timeout=10)  # both claimed once: now race for the rest together
                while jobs:
                    by_node[node].extend(ids(jobs))
                    jobs = store.claim_queued(node, 3, NOW + 1)
            except BaseException as exc:  # noqa: BLE001 - the test thread reports whatever ends it
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(node,)) for node in by_node]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        assert by_node["t1"] and by_node["t2"]
        self._check_claims(store, by_node, expected)

    def test_two_processes_claim_concurrently(
        self, store: Store, store_factory: Callable[[], Store], mp: Any, start_process: Any
    ) -> None:
        expected = self._queue(store, 200)
        barrier = mp.Barrier(2)
        results = mp.Queue()
        for node in ("p1", "p2"):
            start_process(_claim_until_empty, store_factory, node, 2, barrier, results)
        # Read before joining: a child cannot exit while its result sits in the pipe.
        reported = dict(results.get(timeout=60) for _ in range(2))
        for node, outcome in reported.items():
            assert isinstance(outcome, list), f"{node}: {outcome}"
            assert outcome, f"{node} claimed nothing: the processes did not run concurrently"
        self._check_claims(store, reported, expected)

    # ---------------------------------------------------------------- fencing token

    def test_claims_increment_the_fencing_token(self, store: Store) -> None:
        store.create_job(make_job("q", queued_at=NOW))
        assert store.get_job("q").claim == 0  # type: ignore[union-attr]
        (claimed,) = store.claim_queued("e1", 1, NOW)
        assert claimed.claim == 1
        # A takeover is a compare-and-set on the claim the taker saw.
        taken = store.update_job("q", {"owner": "e2", "claim": 2}, expect={"claim": 1})
        assert taken is not None and taken.claim == 2
        # The first engine's writes now expect a claim that is gone.
        assert store.update_job("q", {"rows_done": 5}, expect={"claim": 1, "owner": "e1"}) is None
        assert store.get_job("q").rows_done == 0  # type: ignore[union-attr]

    def test_claim_queued_defaults_to_the_stores_clock(self, store: Store) -> None:
        store.create_job(make_job("q", queued_at=NOW))
        before = store.now()
        (claimed,) = store.claim_queued("e1", 1)
        assert claimed.start_timestamp is not None
        assert before <= claimed.start_timestamp <= store.now()

    def test_now_is_unix_seconds(self, store: Store) -> None:
        first = store.now()
        assert abs(first - time.time()) < 3600  # the store's clock, not an epoch of its own
        assert store.now() >= first

    # ------------------------------------------------------------------ job files

    def test_create_job_stores_its_input(self, store: Store) -> None:
        data = b"n\n" + b"".join(b"%d\n" % i for i in range(200_000))  # larger than one chunk
        store.create_job(make_job("j1"), input=io.BytesIO(data))
        assert store.file_size("j1", "input") == len(data)
        with store.open_file("j1", "input") as f:  # type: ignore[union-attr]
            assert f.read() == data
            f.seek(2)
            assert f.read(3) == b"0\n1"
            assert f.seek(0, io.SEEK_END) == len(data)

    def test_a_job_without_files_has_none(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        for kind in FILE_KINDS:
            assert store.open_file("j1", kind) is None
            assert store.file_size("j1", kind) is None
        assert store.open_file("nope", "output") is None
        assert store.file_size("nope", "log") is None

    def test_unknown_file_kind_is_a_value_error(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        with pytest.raises(ValueError, match="kind"):
            store.append_file("j1", "secrets", b"x")

    def test_a_negative_offset_is_a_value_error_and_cuts_nothing(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        store.append_file("j1", "output", b"h\nr1\n")
        with pytest.raises(ValueError, match="offset"):
            store.append_file("j1", "output", b"x", offset=-1)
        with pytest.raises(ValueError, match="offset"):
            store.save_job("j1", JobStep({"rows_done": 1}, expect={}, appends={"output": (-1, b"x")}))
        with store.open_file("j1", "output") as f:  # type: ignore[union-attr]
            assert f.read() == b"h\nr1\n"
        assert store.get_job("j1").rows_done == 0  # type: ignore[union-attr]

    def test_an_input_that_fails_to_read_stores_nothing(self, store: Store) -> None:
        class Broken(io.RawIOBase):
            def __init__(self) -> None:
                self.sent = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if self.sent >= 3:
                    raise OSError("the pipe broke")
                self.sent += 1
                buffer[:4] = b"a,b\n"
                return 4

        with pytest.raises((OSError, StoreError)):
            store.create_job(make_job("j1"), input=io.BufferedReader(Broken()))
        assert store.get_job("j1") is None
        assert store.open_file("j1", "input") is None

    def test_a_duplicate_id_keeps_the_first_input(self, store: Store) -> None:
        store.create_job(make_job("j1"), input=io.BytesIO(b"first\n"))
        with pytest.raises(StoreError):
            store.create_job(make_job("j1"), input=io.BytesIO(b"second\n"))
        with store.open_file("j1", "input") as f:  # type: ignore[union-attr]
            assert f.read() == b"first\n"

    def test_append_and_cut_back(self, store: Store) -> None:
        store.create_job(make_job("j1"))
        assert store.append_file("j1", "output", b"h\n") == 2
        assert store.append_file("j1", "output", b"row1\nrow2\n") == 12
        # A resumed run cuts the output back to its checkpoint, then goes on.
        assert store.append_file("j1", "output", b"ROW2\n", offset=7) == 12
        assert store.append_file("j1", "output", b"", offset=2) == 2
        assert store.append_file("j1", "output", b"r\n", offset=2) == 4
        with store.open_file("j1", "output") as f:  # type: ignore[union-attr]
            assert f.read() == b"h\nr\n"
        assert store.file_size("j1", "output") == 4
        with pytest.raises(StoreError):
            store.append_file("j1", "output", b"x", offset=99)  # bytes counted on are gone
        assert store.file_size("j1", "output") == 4

    def test_every_kind_is_its_own_file(self, store: Store) -> None:
        store.create_job(make_job("j1"), input=io.BytesIO(b"in\n"))
        for kind in ("output", "log", "failed"):
            store.append_file("j1", kind, kind.encode())
        for kind, expected in (("input", b"in\n"), ("output", b"output"), ("log", b"log"), ("failed", b"failed")):
            with store.open_file("j1", kind) as f:  # type: ignore[union-attr]
                assert f.read() == expected

    def test_appends_are_fenced_by_the_claim(self, store: Store) -> None:
        store.create_job(make_job("j1", queued_at=NOW))
        (job,) = store.claim_queued("e1", 1, NOW)
        assert store.append_file("j1", "output", b"mine\n", claim=job.claim) == 5
        store.update_job("j1", {"claim": job.claim + 1, "owner": "e2"}, expect={"claim": job.claim})
        for kind in ("output", "log", "failed"):
            with pytest.raises(Fenced):
                store.append_file("j1", kind, b"late\n", claim=job.claim)
        with pytest.raises(Fenced):
            store.append_file("j1", "output", b"", offset=0, claim=job.claim)
        assert store.file_size("j1", "output") == 5
        assert store.file_size("j1", "log") is None
        assert issubclass(Fenced, StoreError)
        with pytest.raises(Fenced):
            store.append_file("gone", "output", b"x", claim=1)
        with pytest.raises(StoreError):
            store.append_file("gone", "output", b"x")

    def test_delete_removes_the_files(self, store: Store) -> None:
        store.create_job(make_job("j1"), input=io.BytesIO(b"in\n"))
        store.append_file("j1", "output", b"out\n")
        store.append_file("j1", "log", b"line\n")
        assert store.delete_job("j1") is not None
        for kind in FILE_KINDS:
            assert store.open_file("j1", kind) is None
        # A new job may reuse nothing of it.
        store.create_job(make_job("j1"))
        assert store.open_file("j1", "output") is None

    def test_files_are_shared_by_every_handle(self, store: Store, store_factory: Callable[[], Store]) -> None:
        store.create_job(make_job("j1"), input=io.BytesIO(b"in\n"))
        store.append_file("j1", "log", b"one\n")
        with store_factory() as other:
            with other.open_file("j1", "input") as f:  # type: ignore[union-attr]
                assert f.read() == b"in\n"
            other.append_file("j1", "log", b"two\n")
        with store.open_file("j1", "log") as f:  # type: ignore[union-attr]
            assert f.read() == b"one\ntwo\n"

    def test_save_job_appends_updates_and_claims_the_next(self, store: Store) -> None:
        store.create_job(make_job("a", queued_at=NOW))
        store.create_job(make_job("b", queued_at=NOW + 1))
        (job,) = store.claim_queued("e1", 1, NOW)
        updated, claimed = store.save_job(
            "a",
            JobStep(
                {"status": JobStatus.SUCCESS, "rows_done": 3, "output_offset": 9, "owner": None},
                expect={"status": "executing", "claim": job.claim},
                appends={"output": (0, b"h\nr1\nr2\n"), "log": (None, b"done\n"), "failed": (0, b"2\n")},
                claim=job.claim,
                sync=True,
                claim_next=Claim("e1", 1, NOW + 5),
            ),
        )
        assert updated is not None and updated.status is JobStatus.SUCCESS and updated.rows_done == 3
        assert ids(claimed) == ["b"] and claimed[0].owner == "e1" and claimed[0].start_timestamp == NOW + 5
        for kind, expected in (("output", b"h\nr1\nr2\n"), ("log", b"done\n"), ("failed", b"2\n")):
            with store.open_file("a", kind) as f:  # type: ignore[union-attr]
                assert f.read() == expected
        # A step that does not match changes nothing but what it appended (a checkpoint of a job
        # removed meanwhile is refused by its claim first).
        assert store.save_job("a", JobStep({"rows_done": 4}, expect={"status": "executing"}))[0] is None
        assert store.get_job("a").rows_done == 3  # type: ignore[union-attr]

    def test_save_job_is_fenced_by_the_claim(self, store: Store) -> None:
        store.create_job(make_job("a", queued_at=NOW))
        (job,) = store.claim_queued("e1", 1, NOW)
        store.update_job("a", {"claim": job.claim + 1}, expect={"claim": job.claim})
        with pytest.raises(Fenced):
            store.save_job(
                "a",
                JobStep(
                    {"rows_done": 1}, expect={"claim": job.claim}, appends={"output": (0, b"late\n")}, claim=job.claim
                ),
            )
        assert store.file_size("a", "output") is None
        assert store.get_job("a").rows_done == 0  # type: ignore[union-attr]

    def test_refused_steps_leave_the_store_able_to_store_the_next(self, store: Store) -> None:
        # An engine woken past its lease is refused step after step, while its other jobs go
        # on; a refusal must not spoil what the handle keeps between calls. (A driver that
        # prepares a statement after a few runs once took the skipped statement for prepared,
        # and every later step of every job failed.)
        store.create_job(make_job("late", queued_at=NOW))
        store.create_job(make_job("mine", queued_at=NOW + 1))
        late, mine = store.claim_queued("e1", 2, NOW)
        store.update_job("late", {"claim": late.claim + 1}, expect={"claim": late.claim})
        offsets = {"late": 0, "mine": 0}
        for n in range(1, 13):
            for job in (mine, late):
                data = f"row {n}\n".encode()
                step = JobStep(
                    {"rows_done": n, "output_offset": offsets[job.id] + len(data)},
                    expect={"status": "executing", "claim": job.claim},
                    appends={"output": (offsets[job.id], data)},
                    claim=job.claim,
                )
                if job is late:
                    with pytest.raises(Fenced):
                        store.save_job(job.id, step)
                    continue
                updated, _ = store.save_job(job.id, step)
                assert updated is not None and updated.rows_done == n
                offsets[job.id] += len(data)
        assert store.file_size("late", "output") is None
        assert store.file_size("mine", "output") == offsets["mine"]

    # Overlapped steps (JobStep.overlap): a backend may answer before the step is stored.

    def _overlapped(self, job: JobRecord, n: int, offset: int, data: bytes) -> JobStep:
        return JobStep(
            {"rows_done": n, "output_offset": offset + len(data)},
            expect={"status": "executing", "claim": job.claim},
            appends={"output": (offset, data)},
            claim=job.claim,
            overlap=True,
        )

    def test_overlapped_steps_are_stored_in_order_and_each_answers_with_a_step_stored(self, store: Store) -> None:
        store.create_job(make_job("a", queued_at=NOW))
        (job,) = store.claim_queued("e1", 1, NOW)
        offset, stored = 0, []
        for n in range(1, 6):
            data = f"row {n}\n".encode()
            updated, claimed = store.save_job("a", self._overlapped(job, n, offset, data))
            assert claimed == []
            # This step's record, or (answered before it was stored) the one of the step before.
            assert updated is not None and updated.rows_done in (n, n - 1) and updated.rows_done in stored + [n]
            stored.append(n)
            offset += len(data)
        # The next write of the run settles the last one: a step, or an append at an offset.
        assert store.append_file("a", "output", b"tail\n", offset=offset, claim=job.claim) == offset + 5
        updated, _ = store.save_job(
            "a", JobStep({"rows_done": 6}, expect={"claim": job.claim}, claim=job.claim, sync=True)
        )
        assert updated is not None and updated.rows_done == 6 and updated.output_offset == offset
        with store.open_file("a", "output") as f:  # type: ignore[union-attr]
            assert f.read() == b"".join(f"row {n}\n".encode() for n in range(1, 6)) + b"tail\n"

    def test_an_overlapped_step_refused_is_the_next_writes_refusal(self, store: Store) -> None:
        store.create_job(make_job("a", queued_at=NOW))
        (job,) = store.claim_queued("e1", 1, NOW)
        store.save_job("a", self._overlapped(job, 1, 0, b"one\n"))
        store.save_job("a", self._overlapped(job, 2, 4, b"two\n"))
        # Taken over by another engine: the steps this run sends from now on are refused, at the
        # latest by its next write.
        store.update_job("a", {"claim": job.claim + 1}, expect={"claim": job.claim})
        refused = False
        try:
            updated, _ = store.save_job("a", self._overlapped(job, 3, 8, b"three\n"))
            refused = updated is None
            if not refused:
                updated, _ = store.save_job("a", self._overlapped(job, 4, 14, b"four\n"))
                refused = updated is None
        except Fenced:
            refused = True
        if not refused:
            with pytest.raises(Fenced):
                store.append_file("a", "output", b"late\n", offset=19, claim=job.claim)
        final = store.get_job("a")
        assert final is not None and final.rows_done <= 2 and final.claim == job.claim + 1
        with store.open_file("a", "output") as f:  # type: ignore[union-attr]
            assert f.read() in (b"one\n", b"one\ntwo\n")

    # ---------------------------------------------------------------- changes feed

    def test_changes_of_another_handle_name_it_and_the_job(
        self, store: Store, store_factory: Callable[[], Store]
    ) -> None:
        position, nothing = store.changes(None)
        assert nothing == []
        assert store.changes(position) == (position, [])
        with store_factory() as other:
            assert other.origin != store.origin
            other.create_job(make_job("j1"))
            other.update_job("j1", {"stop_requested": True})
            other.update_job("j1", {"rows_done": 9}, expect={"status": "success"})  # no match: no change
            other.delete_job("j1")
        position2, found = store.changes(position)
        assert position2 > position
        assert [(c.kind, c.job_id, c.origin) for c in found] == [
            ("job", "j1", other.origin),
            ("job", "j1", other.origin),
            ("deleted", "j1", other.origin),
        ]
        assert store.changes(position2) == (position2, [])

    def test_every_write_about_a_job_firing_or_engine_is_a_change(self, store: Store) -> None:
        position, _ = store.changes(None)
        store.create_job(make_job("q", queued_at=NOW))
        store.claim_queued("e1", 1, NOW)
        store.append_file("q", "log", b"line\n")
        lease = EngineLease(node="h:1:a", host="h", pid=1, started=NOW, expires=NOW + 5)
        store.heartbeat(lease)
        store.heartbeat(lease)  # a renewal is not news
        firing = store.begin_firing("minutely", "k1", "e1", NOW)
        assert firing is not None
        store.end_firing(dataclasses.replace(firing, ended=NOW + 1, status="ok"))
        store.remove_engine("h:1:a")
        _, found = store.changes(position)
        assert [(c.kind, c.job_id) for c in found] == [
            ("job", "q"),
            ("job", "q"),
            ("log", "q"),
            ("engine", None),
            ("firing", None),
            ("firing", None),
            ("engine", None),
        ]
        assert {c.origin for c in found} == {store.origin}

    # (api) What Store.ordered_changes promises: the REST API's page cache answers a page again
    # only while changes(None) says what it said before the page was read.
    def test_ordered_changes_move_the_position_at_every_commit_about_a_job(
        self, store: Store, store_factory: Callable[[], Store]
    ) -> None:
        if not store.ordered_changes:
            pytest.skip("this backend does not promise positions in commit order")
        with store_factory() as other:
            writes = [
                lambda: other.create_job(make_job("j1")),
                lambda: other.update_job("j1", {"wait_after_row_ms": 7}),
                lambda: store.update_job("j1", {"stop_requested": True}),  # this handle's own
                lambda: other.delete_job("j1"),
            ]
            for write in writes:
                before = store.changes(None)[0]
                write()
                assert store.changes(None)[0] > before

    def test_wait_changes_wakes_on_another_handles_commit(
        self, store: Store, store_factory: Callable[[], Store]
    ) -> None:
        position, _ = store.changes(None)
        assert store.wait_changes(position, 0.05) == (position, [])
        other = store_factory()
        ready = threading.Event()

        def write() -> None:
            ready.wait(10)
            other.create_job(make_job("j1"))

        writer = threading.Thread(target=write)
        writer.start()
        try:
            ready.set()
            found: list[Any] = []
            while not found:  # a long timeout: the write wakes it, however slow the machine
                position, found = store.wait_changes(position, 30)
        finally:
            writer.join(30)
            other.close()
        assert [(c.kind, c.job_id, c.origin) for c in found] == [("job", "j1", other.origin)]

    # ---------------------------------------------------------------- engines

    def test_heartbeat_inserts_and_renews(self, store: Store) -> None:
        assert store.engines() == []
        lease = EngineLease(node="h:1:a", host="h", pid=1, started=NOW, expires=NOW + 5)
        store.heartbeat(lease)
        assert store.engines() == [lease]
        renewed = EngineLease(node="h:1:a", host="h", pid=1, started=NOW, expires=NOW + 6)
        store.heartbeat(renewed)
        assert store.engines() == [renewed]

    def test_several_engines_and_remove(self, store: Store) -> None:
        a = EngineLease(node="h:1:a", host="h", pid=1, started=NOW, expires=NOW + 5)
        b = EngineLease(node="g:2:b", host="g", pid=2, started=NOW + 1, expires=NOW - 1)
        store.heartbeat(a)
        store.heartbeat(b)
        assert sorted(store.engines(), key=lambda e: e.node) == [b, a]  # expired ones too
        store.remove_engine("h:1:a")
        assert store.engines() == [b]
        store.remove_engine("unknown")  # no error
        store.remove_engine("g:2:b")
        assert store.engines() == []

    # ------------------------------------------------------ nodes (contract 9; owner: pg)

    def test_a_lease_says_what_kzconsole_nodes_shows(self, store: Store) -> None:
        lease = EngineLease(
            node="kz-1:12:ab",
            host="h1",
            pid=12,
            started=NOW,
            expires=NOW + 10,
            name="kz-1",
            version="1.2",
            slots=4,
            running=3,
            tasks=("skel/id2", "numbers/classify"),
        )
        store.heartbeat(lease)
        assert store.engines() == [lease]
        assert store.engines()[0].tasks == ("skel/id2", "numbers/classify")
        store.heartbeat(
            EngineLease(node="kz-1:12:ab", host="h1", pid=12, started=NOW, expires=NOW + 11, name="kz-1", running=0)
        )
        (renewed,) = store.engines()
        assert (renewed.running, renewed.tasks, renewed.expires) == (0, (), NOW + 11)

    def test_claim_names_the_node_and_owner(self, store: Store) -> None:
        store.create_job(make_job("q", queued_at=NOW))
        (job,) = store.claim_queued("kz-1:12:ab", 1, NOW, name="kz-1")
        assert (job.owner, job.node) == ("kz-1:12:ab", "kz-1")

    def test_claim_only_the_tasks_the_engine_has(self, store: Store) -> None:
        store.create_job(make_job("a", category="skel", action="id2", queued_at=NOW))
        store.create_job(make_job("b", category="numbers", action="classify", queued_at=NOW + 1))
        store.create_job(make_job("c", category="gone", action="away", queued_at=NOW + 2))
        store.create_job(make_job("d", category="skel", action="id2", queued_at=NOW + 3))
        assert store.claim_queued("e1", 5, NOW, tasks=[]) == []
        assert ids(store.claim_queued("e1", 5, NOW, tasks=["numbers/classify"])) == ["b"]
        # A task no live engine serves is claimed too (to be ended internal_error), others not.
        assert ids(store.claim_queued("e2", 5, NOW, tasks=["x/y"], served=["x/y", "skel/id2", "numbers/classify"])) == [
            "c"
        ]
        assert ids(store.claim_queued("e2", 1, NOW, tasks=["skel/id2"])) == ["a"]
        assert ids(store.claim_queued("e2", 5, NOW)) == ["d"]

    def test_takeovers_newest_first(self, store: Store) -> None:
        first = Takeover(
            job_id="j1",
            from_engine="kz-1:1:a",
            to_engine="kz-2:2:b",
            to_name="kz-2",
            at=NOW,
            rows_done=5,
            outcome="resumed",
        )
        second = Takeover(
            job_id="j2",
            from_engine="kz-1:1:a",
            to_engine="kz-3:3:c",
            to_name="kz-3",
            at=NOW + 1,
            rows_done=0,
            outcome="internal_error",
        )
        other = Takeover(
            job_id="j3",
            from_engine="kz-9:9:z",
            to_engine="kz-2:2:b",
            to_name="kz-2",
            at=NOW + 2,
            rows_done=1,
            outcome="resumed",
        )
        for takeover in (first, second, other):
            store.record_takeover(takeover)
        assert store.takeovers() == [other, second, first]
        assert store.takeovers(from_engine="kz-1:1:a") == [second, first]
        assert store.takeovers(limit=1) == [other]
        assert store.takeovers(from_engine="nobody") == []

    # --------------------------------------------------------------- triggers

    def test_begin_firing_once_per_trigger_and_key(self, store: Store) -> None:
        firing = store.begin_firing("sync", "minutely:60", "e1", NOW)
        assert firing is not None
        assert (firing.trigger, firing.key, firing.node, firing.started) == ("sync", "minutely:60", "e1", NOW)
        assert firing.status == "running" and firing.ended is None
        assert firing.functions == () and firing.databases == ()
        assert store.begin_firing("sync", "minutely:60", "e2", NOW + 0.1) is None
        assert store.list_firings() == [firing]
        other_key = store.begin_firing("sync", "minutely:120", "e2", NOW + 60)
        other_trigger = store.begin_firing("report", "minutely:60", "e2", NOW)
        assert other_key is not None and other_trigger is not None
        assert len({firing.id, other_key.id, other_trigger.id}) == 3

    def test_end_firing(self, store: Store) -> None:
        firing = store.begin_firing("sync", "k1", "e1", NOW)
        assert firing is not None
        functions = [{"function": "sync", "ok": False, "error": "boom", "seconds": 0.5}]
        databases = [{"name": "account%2Fab%2Fcd", "kind": "account", "ok": True}]
        ended = store.end_firing(
            dataclasses.replace(
                firing,
                ended=NOW + 2,
                status="failed",
                reason="sync: boom",
                functions=tuple(functions),
                databases=tuple(databases),
            )
        )
        expected = Firing(
            id=firing.id,
            trigger="sync",
            key="k1",
            node="e1",
            started=NOW,
            ended=NOW + 2,
            status="failed",
            reason="sync: boom",
            functions=tuple(functions),
            databases=tuple(databases),
        )
        assert ended == expected
        assert store.list_firings() == [expected]
        assert store.running_firings("sync") == []

    def test_end_firing_unknown_is_none(self, store: Store) -> None:
        assert (
            store.end_firing(Firing(id=12345, trigger="sync", key="k", node="e1", started=NOW, ended=NOW, status="ok"))
            is None
        )

    def test_record_firing_assigns_an_id(self, store: Store) -> None:
        given = Firing(
            id=-7,
            trigger="sync",
            key="k1",
            node="e1",
            started=NOW,
            ended=NOW,
            status="skipped",
            reason="still running",
            functions=({"function": "f", "ok": True, "error": None, "seconds": 0.0},),
        )
        stored = store.record_firing(given)
        assert stored.id != -7
        assert stored == Firing(**{**given.__dict__, "id": stored.id})
        assert store.list_firings() == [stored]
        second = store.record_firing(Firing(id=0, trigger="sync", key="k2", node="e1", started=NOW + 1))
        assert second.id != stored.id
        assert store.list_firings() == [second, stored]

    def test_running_firings(self, store: Store) -> None:
        a = store.begin_firing("sync", "k1", "e1", NOW)
        b = store.begin_firing("sync", "k2", "e2", NOW + 1)
        c = store.begin_firing("other", "k1", "e1", NOW)
        assert a and b and c
        store.end_firing(dataclasses.replace(a, ended=NOW + 3, status="ok"))
        assert store.running_firings("sync") == [b]
        assert store.running_firings("other") == [c]
        assert store.running_firings("nothing") == []

    def test_list_firings_newest_first_filter_and_limit(self, store: Store) -> None:
        made = []
        for n, trigger in enumerate(["a", "b", "a", "b", "a"]):
            firing = store.begin_firing(trigger, f"k{n}", "e1", NOW + n)
            assert firing is not None
            made.append(firing)
        tie = store.begin_firing("a", "tie", "e1", NOW + 4)  # same start as made[4]: id decides
        assert tie is not None
        assert store.list_firings() == [tie, *reversed(made)]
        assert store.list_firings(trigger="b") == [made[3], made[1]]
        assert store.list_firings(limit=2) == [tie, made[4]]
        assert store.list_firings(trigger="a", limit=3) == [tie, made[4], made[2]]
        assert store.list_firings(trigger="none") == []

    def test_prune_firings_keeps_running_and_recent(self, store: Store) -> None:
        old_done = store.begin_firing("t", "old-done", "e1", NOW)
        old_running = store.begin_firing("t", "old-running", "e1", NOW + 1)
        new_done = store.begin_firing("t", "new-done", "e1", NOW + 100)
        assert old_done and old_running and new_done
        for firing in (old_done, new_done):
            store.end_firing(dataclasses.replace(firing, ended=firing.started + 1, status="ok"))
        skipped = store.record_firing(
            Firing(id=0, trigger="t", key="old-skip", node="e1", started=NOW + 2, status="skipped")
        )
        assert store.prune_firings(NOW + 50) == 2
        remaining = store.list_firings()
        assert [f.key for f in remaining] == ["new-done", "old-running"]
        assert skipped.id not in {f.id for f in remaining}
        assert store.prune_firings(NOW + 50) == 0
        # A pruned firing's key may fire again (its row is gone).
        assert store.begin_firing("t", "old-done", "e1", NOW + 200) is not None

    # ------------------------------------------------------- API keys (owner: api)

    @staticmethod
    def _key(key_id: str, **fields: Any) -> ApiKey:
        values: dict[str, Any] = {
            "account_id": "acct-a",
            "name": None,
            "superadmin": False,
            "created": NOW,
            "key_hash": f"hash-{key_id}",
        }
        values.update(fields)
        return ApiKey(id=key_id, **values)

    def test_api_keys_round_trip_and_list_oldest_first(self, store: Store) -> None:
        newer = self._key("k2", name="ops", superadmin=True, created=NOW + 1)
        older = self._key("k1", account_id="acct-b", created=NOW)
        store.add_api_key(newer)
        store.add_api_key(older)
        assert store.api_keys() == [older, newer]
        assert store.api_key("k2") == newer
        assert store.api_key_by_hash("hash-k1") == older
        assert store.api_key("nope") is None
        assert store.api_key_by_hash("nope") is None

    def test_api_key_duplicate_id_or_hash_is_refused(self, store: Store) -> None:
        store.add_api_key(self._key("k1"))
        with pytest.raises(StoreError):
            store.add_api_key(self._key("k1", key_hash="other"))
        with pytest.raises(StoreError):
            store.add_api_key(self._key("k2", key_hash="hash-k1"))
        assert [k.id for k in store.api_keys()] == ["k1"]

    def test_api_tokens_expire_and_die_with_their_key(self, store: Store) -> None:
        key = self._key("k1")
        store.add_api_key(key)
        store.add_api_key(self._key("k2"))
        before = store.now()
        expires = store.add_api_token("t1", "k1", 3600)
        assert expires is not None and before + 3600 <= expires <= store.now() + 3600
        assert store.add_api_token("t2", "k2", 3600) is not None
        assert store.api_token("t1") == (key, expires)
        assert store.add_api_token("t0", "k1", -1) is not None
        assert store.api_token("t0") is None  # expired, by the store's clock
        assert store.api_token("unknown") is None
        assert store.remove_api_key("k1") == key
        assert store.remove_api_key("k1") is None
        assert store.api_token("t1") is None
        assert store.api_token("t2") is not None  # another key's token lives on

    def test_api_token_of_a_missing_key_is_not_stored(self, store: Store) -> None:
        assert store.add_api_token("t1", "gone", 3600) is None
        store.add_api_key(self._key("k1"))
        assert store.add_api_token("t1", "k1", 3600) is not None
        store.remove_api_key("k1")
        store.add_api_key(self._key("k1"))  # same id again: the old token must not come back
        assert store.api_token("t1") is None

    def test_prune_api_tokens(self, store: Store) -> None:
        store.add_api_key(self._key("k1"))
        store.add_api_token("old", "k1", -1)
        store.add_api_token("new", "k1", 3600)
        assert store.prune_api_tokens() == 1
        assert store.api_token("new") is not None
        assert store.prune_api_tokens() == 0

    def test_removing_an_api_key_is_in_the_changes_feed(self, store: Store) -> None:
        # (api) A server keeping verified tokens drops them when the feed moves.
        store.add_api_key(self._key("k1"))
        store.add_api_token("t1", "k1", 3600)
        position = store.changes(None)[0]
        assert store.remove_api_key("nothing") is None
        assert store.changes(position) == (position, [])  # nothing removed, nothing recorded
        store.remove_api_key("k1")
        moved, changes = store.changes(position)
        assert moved > position and [(c.kind, c.job_id) for c in changes] == [("api_key", None)]

    def test_api_keys_are_seen_by_another_handle(self, store: Store, store_factory: Callable[[], Store]) -> None:
        store.add_api_key(self._key("k1"))
        store.add_api_token("t1", "k1", 3600)
        with store_factory() as other:
            assert other.api_key_by_hash("hash-k1") == self._key("k1")
            assert other.api_token("t1") is not None
            other.remove_api_key("k1")
        assert store.api_token("t1") is None

    # -------------------------------------------------------------- lifecycle

    def test_close_twice(self, store_factory: Callable[[], Store]) -> None:
        other = store_factory()
        other.close()
        other.close()

    def test_context_manager_closes(self, store_factory: Callable[[], Store]) -> None:
        with store_factory() as other:
            other.create_job(make_job("j1"))
        with store_factory() as again:
            assert again.get_job("j1") == make_job("j1")
