"""A cluster on one real PostgreSQL server (contract 9): nodes are real ``kzconsole engine --node
NAME`` processes, each with its own data dir and plugin dir (nothing shared but the store), and the
command line of a third node. Plugins record every call they get in a per-process file, so a test
can tell which rows ran where, and how many jobs an engine ran at once."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kzconsole.engine.store.postgres import PostgresStore
from tests.reliability.conftest import CommandSite, wait_until

# Tasks of every node. Each call appends "<pid> <job> <row> <start> <end>" to $KZ_CALLS/<pid>.
CLUSTER_PLUGIN = '''
import os
import time

from kzconsole.plugin import STOP, Next, task

CALLS = os.environ["KZ_CALLS"]


def record(ctx, row, started):
    line = f"{os.getpid()} {ctx.job_id} {row} {started!r} {time.time()!r}\\n"
    fd = os.open(os.path.join(CALLS, str(os.getpid())), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def pause():
    time.sleep(float(os.environ.get("KZ_ROW_S", "0")))


def hold(n):
    """Row KZ_HOLD_AT (and every row after it) waits while the file KZ_HOLD exists: a node a test
    kills or freezes mid-job is still mid-job then, however slowly the machine runs."""
    at, path = os.environ.get("KZ_HOLD_AT"), os.environ.get("KZ_HOLD")
    while at and path and int(n) >= int(at) and os.path.exists(path):
        time.sleep(0.01)


@task("cl", "plain", description="one output row per input row", mandatory=["n"],
      output_header=["n", "error"])
def plain(ctx, it, row):
    started = time.time()
    pause()
    hold(row["n"])
    record(ctx, row["n"], started)
    return [row["n"]]


@task("cl", "chatty", description="one output row and one log line per input row", mandatory=["n"],
      output_header=["n", "error"])
def chatty(ctx, it, row):
    started = time.time()
    pause()
    record(ctx, row["n"], started)
    ctx.log.info("row %s on pid %d", row["n"], os.getpid())
    return [row["n"]]


@task("cl", "state", description="carries a running count in its state", mandatory=["n"],
      output_header=["n", "count", "error"])
def state(ctx, it, row):
    started = time.time()
    count = 0 if it is None or it == {} or not isinstance(it, int) else it
    record(ctx, row["n"], started)
    return Next(count + 1, [row["n"], count + 1])


@task("cl", "noinput", description="five rows, no input", output_header=["n", "error"])
def noinput(ctx, it):
    started = time.time()
    n = it if isinstance(it, int) else 0
    if n >= 5:
        return STOP
    record(ctx, n + 1, started)
    return Next(n + 1, [n + 1])


@task("cl", "gen", description="a generator of five rows", output_header=["n", "error"])
def gen(ctx):
    for n in range(1, 6):
        started = time.time()
        record(ctx, n, started)
        yield [n]
'''

ONLY_HERE_PLUGIN = """
from kzconsole.plugin import OK, task


@task("only", "here", description="a task only one node has", mandatory=["n"])
def only_here(ctx, it, row):
    return OK
"""


def csv_input(rows: int) -> bytes:
    return ("n\n" + "".join(f"{n}\n" for n in range(1, rows + 1))).encode()


class Node(CommandSite):
    """One node: a data dir, a plugin dir, a config naming the shared store."""

    task_defaults = {"max_running": 3, "send_progress_after_processed": 5}

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.store_url = cluster.url
        super().__init__(cluster.root / name)
        (self.plugins / "cluster_plugin.py").write_text(CLUSTER_PLUGIN)
        self.env["KZ_CALLS"] = str(cluster.calls)
        self.env["KZ_ROW_S"] = "0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "engine.log"
        self._facade: Any = None

    def facade(self) -> Any:
        """This node's engine facade in the test process (not started: it adds and starts jobs
        as the command line does, without a process per job)."""
        if self._facade is None:
            from kzconsole.config import load_settings
            from kzconsole.engine import Engine

            self.env_into_process()
            settings = load_settings(
                str(self.config),
                data_dir=str(self.data),
                extra_plugin_paths=[str(self.plugins)],
                env=self.env,
                cwd=self.root,
            )
            self._facade = Engine(settings)
        return self._facade

    def env_into_process(self) -> None:
        os.environ.setdefault("KZ_CALLS", self.env["KZ_CALLS"])

    def add_fast(self, category: str, action: str, rows: int | None = None, *, start: bool = True) -> str:
        data = None if rows is None else io.BytesIO(csv_input(rows))
        return self.facade().add_job(category, action, input=data, start=start).id

    def add(self, category: str, action: str, rows: int | None = None, *, start: bool = True) -> str:
        args = ["tasks", "add", category, action, "--json"]
        data = None
        if rows is not None:
            args += ["--input", "-"]
            data = csv_input(rows)
        job_id = json.loads(self.cli(*args, input=data).stdout)["id"]
        if start:
            self.cli("tasks", "start", job_id)
        return job_id

    # ------------------------------------------------------------------ the engine process

    def hold_at(self, row: int) -> Path:
        """From ``row`` on, this node's ``cl plain`` rows wait until the returned file is removed
        (call before :meth:`start`)."""
        gate = self.root / "hold"
        gate.touch()
        self.env.update(KZ_HOLD_AT=str(row), KZ_HOLD=str(gate))
        return gate

    def start(self, **env: str) -> Node:
        self.env.update(env)
        log = open(self.log_path, "ab")  # the child keeps it open; ours is closed below
        self.proc = subprocess.Popen(
            self.argv("engine", "--node", self.name), stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root
        )
        log.close()
        store = self.cluster.store
        wait_until(
            lambda: any(lease.name == self.name and lease.pid == self.pid and lease.tasks for lease in store.engines()),
            60,
            f"engine {self.name} to join",
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def engine_id(self) -> str:
        return next(lease.node for lease in self.cluster.store.engines() if lease.pid == self.pid)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def close_facade(self) -> None:
        if self._facade is not None:
            self._facade.close()
            self._facade = None

    def stop(self, timeout: float = 30) -> None:
        self.close_facade()
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGCONT)  # a frozen one cannot stop
        except ProcessLookupError:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.calls = root / "calls"
        self.calls.mkdir(parents=True)
        self.store = PostgresStore(url)
        self.nodes: dict[str, Node] = {}

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            self.nodes[name] = Node(self, name)
        return self.nodes[name]

    def calls_by_pid(self) -> dict[int, list[tuple[str, int, float, float]]]:
        """Every recorded call: pid -> [(job, row, start, end), ...]."""
        out: dict[int, list[tuple[str, int, float, float]]] = {}
        for path in self.calls.iterdir():
            for line in path.read_text().splitlines():
                pid, job, row, start, end = line.split()
                out.setdefault(int(pid), []).append((job, int(row), float(start), float(end)))
        return out

    def output_rows(self, job_id: str) -> list[list[str]]:
        stream = self.store.open_file(job_id, "output")
        if stream is None:
            return []
        with stream:
            text = stream.read().decode()
        return list(csv.reader(io.StringIO(text)))[1:]

    def wait_finished(self, job_ids: list[str], timeout: float = 120) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            jobs = {i: self.store.get_job(i) for i in job_ids}
            if all(j is not None and j.status.is_finished for j in jobs.values()):
                return jobs
            return None

        return wait_until(done, timeout, f"{len(job_ids)} jobs to finish", interval=0.1)

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.store.close()

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log()[-4000:]}" for n in self.nodes.values())


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    made = Cluster(tmp_path, pg_url)
    yield made
    failed = getattr(request.node, "rep_call", None)
    made.close()
    if failed is not None and failed.failed:
        sys.stderr.write(made.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster on a server of the test's own (to restart it)."""
    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    made = Cluster(tmp_path / "own", server.create_database("kz"))
    made.server = server  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        made.close()
        server.stop()


def assert_rows_exactly_once(cluster: Cluster, job_id: str, rows: int) -> None:
    got = [int(r[0]) for r in cluster.output_rows(job_id)]
    assert got == list(range(1, rows + 1)), f"job {job_id}: output rows {got[:20]}..."


__all__ = ["Cluster", "Node", "ONLY_HERE_PLUGIN", "assert_rows_exactly_once", "csv_input", "wait_until", "Callable"]
