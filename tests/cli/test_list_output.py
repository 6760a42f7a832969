"""`tasks list` and `tasks list --json` (owner: query): the lines are written as the store streams
them, by hand for speed, so they are checked against the records themselves: the JSON is exactly
`JobRecord.public()` of each job, newest first, whatever its strings hold."""

from __future__ import annotations

import json
import time

from kzconsole.config import load_settings
from kzconsole.engine import Engine, JobRecord, JobStatus

ODD = ['quote " and backslash \\', "tab\tnewline\nend", "ünïcødé ✔ 漢字", "control \x01\x1f", "</script>"]


def seed(cli) -> list[JobRecord]:
    jobs = []
    with Engine(load_settings(None, data_dir=str(cli.data))) as engine:
        for n in range(12):
            job = JobRecord(
                id=f"{n:032x}",
                account_id=f"{n % 3:032x}",
                auth_account_id="f" * 32,
                category="skel",
                action="count" if n % 2 else "id2",
                file_name=None if n % 4 == 0 else ODD[n % len(ODD)],
                status=list(JobStatus)[n % len(JobStatus)],
                created=1_700_000_000.75 + n * 61,
                start_timestamp=None if n % 3 == 0 else 1_700_000_001.5 + n,
                end_timestamp=None if n % 2 else 1_700_009_999.9,
                total_count=None if n % 5 == 0 else n * 10,
                success_count=n,
                failure_count=n % 3,
                node=None if n % 2 else "host:1:abc",
                output_rows=n,
                wait_after_row_ms=n * 7,
                error=None if n % 3 else ODD[n % len(ODD)],
            )
            engine.store.create_job(job)
            jobs.append(job)
    return sorted(jobs, key=lambda j: (j.created, j.id), reverse=True)


def test_list_json_is_every_public_record_newest_first(cli):
    jobs = seed(cli)
    assert cli.json("tasks", "list") == [job.public() for job in jobs]
    assert cli.json("tasks", "list", "--limit", "3") == [job.public() for job in jobs[:3]]
    assert cli.json("tasks", "list", "--status", "success", "--status", "failure") == [
        job.public() for job in jobs if job.status.value in ("success", "failure")
    ]
    assert cli.json("tasks", "list", "--account", "2" * 32) == []


def test_list_text_is_one_line_a_job(cli):
    jobs = seed(cli)
    lines = cli("tasks", "list").stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "TASK", "STATUS", "OK", "FAILED", "TOTAL", "CREATED"]
    assert len(lines) == 1 + len(jobs)
    for line, job in zip(lines[1:], jobs, strict=True):
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created))
        total = "-" if job.total_count is None else str(job.total_count)
        assert line.split() == [
            job.id,
            job.task_name,
            job.status.value,
            str(job.success_count),
            str(job.failure_count),
            total,
            *created.split(),
        ]


def test_an_empty_listing(cli):
    assert cli("tasks", "list", "--json").stdout == b"[]\n"
    assert cli("tasks", "list").stdout.decode().split() == ["ID", "TASK", "STATUS", "OK", "FAILED", "TOTAL", "CREATED"]
    assert json.loads(cli("tasks", "list", "--json", "--status", "executing").stdout) == []
