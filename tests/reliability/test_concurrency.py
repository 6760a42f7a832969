"""Issue 7.5: concurrency. Eight command-line processes add and start hundreds of jobs while two
engine processes run them (at most ``tasks.max_running`` = 4 each) and a console (the real app,
headless) is attached to the store: no job is lost, none runs twice, every one ends ``success``, no
engine runs more than 4 at once, and nobody is shown "database is locked".

Each worker process calls the command line's ``main()`` once per command (the same code path as
``kzconsole tasks add`` / ``tasks start``, without paying for a new interpreter each time);
the bigger variant (``make soak``) adds real ``kzconsole`` processes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from kzconsole.engine import JobStatus
from tests.reliability.conftest import Site, wait_until

PLUGIN = """
import os
import time
from kzconsole.plugin import task, Next, STOP

MARKS = os.environ["KZ_MARKS"]

def mark(kind, job_id):
    # One O_APPEND write per line: lines from many processes never interleave.
    fd = os.open(MARKS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{kind} {os.getpid()} {job_id}\\n".encode())
    finally:
        os.close(fd)

@task("cc", "mark", description="Appends its job id to a file, once per call", output_header=["job"])
def mark_(ctx, it):
    mark("B", ctx.job_id)
    time.sleep(0.005)  # long enough for the jobs of one engine to overlap
    mark("E", ctx.job_id)
    return Next(STOP, [ctx.job_id])
"""

WORKER = r"""
import contextlib, io, json, subprocess, sys
from kzconsole.cli import main

base, count, real_cli, result = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ids, failures, stderr = [], [], []

def call(*args):
    if real_cli:
        proc = subprocess.run([sys.executable, "-m", "kzconsole", *base, *args], capture_output=True)
        out, err, rc = proc.stdout.decode(), proc.stderr.decode(), proc.returncode
    else:
        out_buf, err_buf = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
            rc = main([*base, *args])
        out, err = out_buf.getvalue(), err_buf.getvalue()
    if err:
        stderr.append(err)
    if rc != 0:
        failures.append([args, rc, err])
    return out

for i in range(count):
    out = call("tasks", "add", "cc", "mark", "--wait-ms", "0", "--json")
    if not out:
        continue
    job_id = json.loads(out)["id"]
    ids.append(job_id)
    call("tasks", "start", job_id)
    if i % 10 == 0:  # now and then, read as a user would
        json.loads(call("tasks", "show", job_id, "--json"))
        json.loads(call("tasks", "list", "--limit", "20", "--json"))

with open(result, "w") as f:
    json.dump({"ids": ids, "failures": failures, "stderr": stderr}, f)
"""


class Reader(threading.Thread):
    """An attached console: the real app (headless, its engine not started: the engine processes run
    the jobs) on the same store, pressed a few times a second while the jobs are added and run."""

    def __init__(self, site: Site) -> None:
        super().__init__(daemon=True)
        from kzconsole.config import load_settings

        self.settings = load_settings(str(site.config), data_dir=str(site.data), env=site.env)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.reads = 0
        self.shown = 0

    def run(self) -> None:
        try:
            asyncio.run(self._drive())
        except Exception as exc:  # noqa: BLE001 - recorded, asserted on
            self.errors.append(repr(exc))

    async def _drive(self) -> None:
        from kzconsole.app import KzConsoleApp
        from kzconsole.widgets.job_list import JobList

        app = KzConsoleApp(self.settings, start_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            keys = ["down", "down", "up", "S", "S", "S", "S", "S"]
            while not self.stop.is_set():
                await pilot.press(keys[self.reads % len(keys)])
                await pilot.pause(0.05)
                self.reads += 1
                self.shown = max(self.shown, app.screen.query_one(JobList).total)
            errors = [m.line() for m in app.message_log if m.severity == "error"]
            self.errors.extend(errors)

    def close(self) -> None:
        self.stop.set()
        self.join(30)


def run_concurrently(
    tmp_path: Path,
    engines: list,
    *,
    jobs: int,
    workers: int,
    real_cli_workers: int = 0,
    real_cli_jobs: int = 0,
    timeout: float,
) -> None:
    """``jobs`` in all; ``real_cli_workers`` of the ``workers`` run ``real_cli_jobs`` each through
    real ``kzconsole`` processes (a new interpreter per command), the others share the rest."""
    site = Site(tmp_path)
    site.write_config(wait_after_row_ms=0, max_running=4)
    site.plugin("cc.py", PLUGIN)
    marks = tmp_path / "marks.txt"
    site.env["KZ_MARKS"] = str(marks)
    site.cli("tasks", "list")  # the store exists before anyone races to create it
    reader = Reader(site)
    reader.start()
    procs = []
    try:
        engines.extend([site.engine("engine-a"), site.engine("engine-b")])
        base = json.dumps(["--config", str(site.config), "--data-dir", str(site.data), "--plugins", str(site.plugins)])
        rest, in_process = jobs - real_cli_workers * real_cli_jobs, workers - real_cli_workers
        for w in range(workers):
            real = 1 if w < real_cli_workers else 0
            i = w - real_cli_workers
            count = real_cli_jobs if real else rest // in_process + (1 if i < rest % in_process else 0)
            procs.append(
                (
                    subprocess.Popen(
                        [sys.executable, "-c", WORKER, base, str(count), str(real), str(tmp_path / f"worker{w}.json")],
                        cwd=tmp_path,
                        env=site.env,
                        stderr=subprocess.PIPE,
                    ),
                    tmp_path / f"worker{w}.json",
                )
            )
        results = []
        for proc, path in procs:
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err.decode()
            assert err == b"", err.decode()
            results.append(json.loads(path.read_text()))
        ids = [i for r in results for i in r["ids"]]
        assert [f for r in results for f in r["failures"]] == []
        shown = "".join(e for r in results for e in r["stderr"])
        assert "locked" not in shown.lower() and shown == ""
        assert len(ids) == len(set(ids)) == jobs

        store = site.store()
        try:
            wait_until(
                lambda: store.count_jobs(status="success") == jobs, timeout, f"{jobs} jobs to succeed", interval=0.1
            )
            assert store.count_jobs() == jobs  # no job lost, none extra
            records = store.list_jobs()
        finally:
            store.close()
    finally:
        reader.close()
    for engine in engines:
        assert engine.terminate() == 0
        log = engine.log()
        assert "locked" not in log.lower() and "Traceback" not in log, log[-3000:]
    assert reader.errors == [] and reader.reads > 0
    assert reader.shown > 0  # the console saw the jobs come in

    assert {r.id for r in records} == set(ids)
    for r in records:
        assert (r.status, r.success_count, r.failure_count, r.output_rows) == (JobStatus.SUCCESS, 1, 0, 1), r
    # No job ran twice: one begin and one end per job, across both engines.
    lines = [line.split() for line in marks.read_text().splitlines()]
    begins = Counter(job for kind, _, job in lines if kind == "B")
    assert set(begins) == set(ids) and set(begins.values()) == {1}
    assert Counter(job for kind, _, job in lines if kind == "E") == begins
    # At most max_running at once in each engine.
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    for kind, pid, _ in lines:
        running[pid] += 1 if kind == "B" else -1
        peak[pid] = max(peak[pid], running[pid])
    assert peak and max(peak.values()) <= 4, dict(peak)


def test_500_jobs_from_8_processes_and_2_engines(tmp_path, engines):
    run_concurrently(tmp_path, engines, jobs=500, workers=8, timeout=120)


@pytest.mark.slow
def test_2000_jobs_with_real_command_line_processes(tmp_path, engines):
    run_concurrently(tmp_path, engines, jobs=2000, workers=8, real_cli_workers=2, real_cli_jobs=60, timeout=600)
