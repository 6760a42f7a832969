"""Issue 7.3: crashes. ``kzconsole engine`` runs as a real process and is killed with SIGKILL (no
checkpoint, no lease release, no cleanup); the next engine resumes its jobs at the first row whose
outcome was not persisted, so every input row has exactly one outcome and one output row
(contract 4.3). A plugin's own side effects are at-least-once. A job whose state cannot be saved
ends ``internal_error`` after a crash, saying why.

Between kills the test checks each persisted checkpoint from outside: the output cut at
``output_offset`` holds exactly the header and the first ``rows_done`` rows.
"""

from __future__ import annotations

import csv
import io
import random
import re
import time
from pathlib import Path

import pytest

from kzconsole.engine import JobRecord, JobStatus
from tests.reliability.conftest import Site, wait_until

PLUGIN = """
import os
from kzconsole.plugin import task, Next, STOP, INIT

SIDE = os.environ.get("KZ_SIDE_EFFECTS")
TICKS = int(os.environ.get("KZ_TICKS", "1000"))

def side_effect(line):
    # The plugin's own effect on the world: at-least-once across a crash.
    if SIDE:
        with open(SIDE, "a") as f:
            f.write(line + "\\n")

@task("c", "copy", description="One output row per input row", mandatory=["n"], output_header=["n", "tag"])
def copy(ctx, it, row):
    side_effect(f"{ctx.job_id} {row['n']}")
    return [row["n"], "copied"]

@task("c", "count", description="Counts rows in its state", mandatory=["n"], output_header=["n", "seen"])
def count(ctx, it, row):
    seen = (0 if it is INIT else it) + 1
    side_effect(f"{ctx.job_id} {row['n']}")
    return Next(seen, [row["n"], seen])

@task("c", "tick", description="noinput: TICKS calls, counted in its state", output_header=["n"])
def tick(ctx, it):
    i = 0 if it is INIT else it
    if i >= TICKS:
        return STOP
    side_effect(f"{ctx.job_id} {i + 1}")
    return Next(i + 1, [i + 1])

@task("c", "setstate", description="Keeps a set in its state", mandatory=["n"])
def setstate(ctx, it, row):
    return Next((set() if it is INIT else it) | {row["n"]}, None)

@task("c", "tuplestate", description="Keeps a tuple in its state", mandatory=["n"])
def tuplestate(ctx, it, row):
    return Next(((0 if it is INIT else it[0]) + 1,), None)

@task("c", "gen", description="A generator", output_header=["n"])
def gen(ctx):
    for i in range(1, TICKS + 1):
        yield [i]
"""


def make_site(tmp_path: Path, **tasks) -> Site:
    site = Site(tmp_path)
    options = {"wait_after_row_ms": 1, "send_progress_after_processed": 50, "max_running": 4}
    options.update(tasks)
    site.write_config(**options)
    site.plugin("crash.py", PLUGIN)
    site.side_effects = tmp_path / "side-effects.txt"  # type: ignore[attr-defined]
    site.env["KZ_SIDE_EFFECTS"] = str(site.side_effects)  # type: ignore[attr-defined]
    return site


def add_csv_job(site: Site, action: str, rows: int) -> str:
    src = site.root / f"{action}-{rows}.csv"
    src.write_text("n\n" + "".join(f"{i}\n" for i in range(1, rows + 1)))
    job = site.cli_json("tasks", "add", "c", action, "--input", str(src))
    site.cli("tasks", "start", job["id"])
    return job["id"]


def add_noinput_job(site: Site, action: str = "tick") -> str:
    job = site.cli_json("tasks", "add", "c", action)
    site.cli("tasks", "start", job["id"])
    return job["id"]


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def expected_rows(action: str, upto: int) -> list[list[str]]:
    if action == "copy":
        return [["n", "tag", "error"]] + [[str(i), "copied", ""] for i in range(1, upto + 1)]
    if action == "count":  # `seen` comes from the iterator state: it survived every resume
        return [["n", "seen", "error"]] + [[str(i), str(i), ""] for i in range(1, upto + 1)]
    return [["n", "error"]] + [[str(i), ""] for i in range(1, upto + 1)]  # tick


def stored_output(site: Site, job: JobRecord) -> bytes:
    """The job's output as the store holds it (or its local fallback)."""
    if job.output_path:
        return Path(job.output_path).read_bytes()
    store = site.store()
    try:
        stream = store.open_file(job.id, "output")
        assert stream is not None, "no stored output"
        with stream:
            return stream.read()
    finally:
        store.close()


def check_checkpoint(site: Site, job: JobRecord, action: str) -> None:
    """What a dead engine left behind is consistent: the counts describe exactly the persisted
    rows, and the output up to output_offset is exactly those rows (a resume truncates there)."""
    assert job.success_count + job.failure_count == job.rows_done, job
    assert job.failure_count == 0 and job.output_rows == job.rows_done, job
    if job.rows_done == 0 and job.output_offset == 0:
        return
    data = stored_output(site, job)
    assert len(data) >= job.output_offset, "the output is shorter than its checkpoint"
    assert parse(data[: job.output_offset]) == expected_rows(action, job.rows_done)


def check_final(site: Site, job: JobRecord, action: str, total: int) -> None:
    assert (job.status, job.error) == (JobStatus.SUCCESS, None), job
    assert (job.success_count, job.failure_count, job.output_rows) == (total, 0, total), job
    # Exactly one output row per input row, in order: nothing lost, nothing twice.
    assert parse(site.cli("tasks", "output", job.id).stdout) == expected_rows(action, total)


def check_side_effects(site: Site, jobs: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Every row's side effect happened at least once; returns how many happened twice."""
    seen: dict[str, list[str]] = {}
    for line in site.side_effects.read_text().splitlines():  # type: ignore[attr-defined]
        job_id, n = line.split()
        seen.setdefault(job_id, []).append(n)
    repeats = {}
    for job_id, (_, total) in jobs.items():
        calls = seen.get(job_id, [])
        assert set(calls) == {str(i) for i in range(1, total + 1)}, job_id
        repeats[job_id] = len(calls) - total
    return repeats


def wait_finished(site: Site, store, job_ids, timeout: float = 60.0) -> dict[str, JobRecord]:
    def done():
        jobs = {i: store.get_job(i) for i in job_ids}
        return jobs if all(j.status.is_finished for j in jobs.values()) else None

    return wait_until(done, timeout, "the jobs to finish")


# ------------------------------------------------------------------------------------ (a)


def test_sigkill_mid_job_then_resume_exactly_once(tmp_path, engines):
    site = make_site(tmp_path)
    total = 2000
    job_id = add_csv_job(site, "copy", total)
    store = site.store()
    try:
        first = site.engine("first")
        engines.append(first)
        wait_until(lambda: store.get_job(job_id).rows_done > 0, 30, "a first checkpoint")
        first.kill()
        left = store.get_job(job_id)
        assert left.status is JobStatus.EXECUTING and left.rows_done < total, "killed too late"
        assert left.owner is not None and str(first.pid) in left.owner
        check_checkpoint(site, left, "copy")

        second = site.engine("second")
        engines.append(second)
        final = wait_finished(site, store, [job_id])[job_id]
        assert final.node == "second", "the second engine did not resume it"
        check_final(site, final, "copy", total)
        repeats = check_side_effects(site, {job_id: ("copy", total)})
        assert repeats[job_id] >= 0
        with store.open_file(job_id, "log") as stream:
            log = stream.read().decode()
        assert re.search(rf"resumed by second:{second.pid}:\w+ at row {left.rows_done + 1}", log)
        assert second.terminate() == 0, second.log()
    finally:
        store.close()


def test_graceful_shutdown_releases_jobs_for_the_next_engine(tmp_path, engines):
    site = make_site(tmp_path)
    total = 800
    job_id = add_csv_job(site, "count", total)
    store = site.store()
    try:
        first = site.engine("first")
        engines.append(first)
        wait_until(lambda: store.get_job(job_id).rows_done > 0, 30, "a first checkpoint")
        assert first.terminate() == 0, first.log()
        left = store.get_job(job_id)
        assert left.status is JobStatus.EXECUTING and left.owner is None, left
        check_checkpoint(site, left, "count")
        second = site.engine("second")
        engines.append(second)
        check_final(site, wait_finished(site, store, [job_id])[job_id], "count", total)
        assert second.terminate() == 0
    finally:
        store.close()


# ------------------------------------------------------------------------------------ (b)


def soak(tmp_path: Path, engines: list, kills: int, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    site = make_site(tmp_path)
    site.env["KZ_TICKS"] = str(rows)
    jobs = {
        add_csv_job(site, "copy", rows): ("copy", rows),
        add_csv_job(site, "count", rows): ("count", rows),
        add_noinput_job(site, "tick"): ("tick", rows),
        add_csv_job(site, "count", rows // 2): ("count", rows // 2),
    }
    store = site.store()
    try:
        progress = 0
        for kill in range(kills):
            engine = site.engine(f"engine{kill}")
            engines.append(engine)
            # A random point: some rows after the previous kill, anywhere in a row, a pause, a
            # checkpoint or a job's end.
            target = progress + rng.randint(1, max(2, rows // (kills + 1)))

            def advanced(target=target):
                current = [store.get_job(i) for i in jobs]
                done = sum(j.rows_done for j in current)
                return done if done >= target or all(j.status.is_finished for j in current) else None

            progress = wait_until(advanced, 60, f"progress before kill {kill + 1}")
            # Then anywhere: in a row, a pause, a checkpoint, a job's end (correctness does not
            # depend on where; this only spreads the kill points).
            time.sleep(rng.uniform(0, 0.15))
            engine.kill()
            for job_id, (action, total) in jobs.items():
                job = store.get_job(job_id)
                if job.status.is_finished:
                    check_final(site, job, action, total)
                else:
                    assert job.status is JobStatus.EXECUTING, job
                    check_checkpoint(site, job, action)
        last = site.engine("last")
        engines.append(last)
        finals = wait_finished(site, store, list(jobs), timeout=120)
        for job_id, (action, total) in jobs.items():
            check_final(site, finals[job_id], action, total)
        check_side_effects(site, jobs)
        assert last.terminate() == 0, last.log()
    finally:
        store.close()


def test_soak_three_kills(tmp_path, engines):
    soak(tmp_path, engines, kills=3, rows=600, seed=7)


@pytest.mark.slow
def test_soak_twenty_kills(tmp_path, engines):
    soak(tmp_path, engines, kills=20, rows=2000, seed=20)


# ------------------------------------------------------------------------------------ (c)


@pytest.mark.parametrize(
    "action, reason",
    [
        ("setstate", "does not survive a JSON round trip"),
        ("tuplestate", "does not survive a JSON round trip"),
        ("gen", "generator"),
    ],
)
def test_state_that_cannot_be_saved_ends_internal_error_after_a_crash(tmp_path, engines, action, reason):
    site = make_site(tmp_path)
    job_id = add_noinput_job(site, action) if action == "gen" else add_csv_job(site, action, 2000)
    store = site.store()
    try:
        first = site.engine("first")
        engines.append(first)
        wait_until(lambda: store.get_job(job_id).rows_done > 0, 30, "a first checkpoint")
        first.kill()
        left = store.get_job(job_id)
        assert left.status is JobStatus.EXECUTING and not left.resumable and left.state is None
        second = site.engine("second")
        engines.append(second)
        final = wait_finished(site, store, [job_id])[job_id]
        assert final.status is JobStatus.INTERNAL_ERROR
        assert "cannot be resumed" in final.error and reason in final.error, final.error
        # What was persisted stays readable.
        assert final.success_count == left.success_count
        assert second.terminate() == 0
    finally:
        store.close()
