"""Contract 9 with real processes: several ``kzconsole engine --node N`` on one real PostgreSQL
server, each node with its own data dir and plugins; jobs added and started from the command line
of another node."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from kzconsole.engine.models import JobStatus
from tests.cluster.conftest import ONLY_HERE_PLUGIN, Cluster, assert_rows_exactly_once, csv_input, wait_until


def _max_concurrent_jobs(calls: list[tuple[str, int, float, float]]) -> int:
    """The most jobs one process had between their first and last call at the same moment."""
    spans: dict[str, list[float]] = {}
    for job, _, start, end in calls:
        span = spans.setdefault(job, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    most = current = 0
    for _, delta in events:
        current += delta
        most = max(most, current)
    return most


def test_300_mixed_jobs_on_3_engines_each_run_once(cluster: Cluster) -> None:
    nodes = [cluster.node(name).start() for name in ("node-a", "node-b", "node-c")]
    cli = cluster.node("console")
    kinds = [("cl", "plain", 7), ("cl", "state", 6), ("cl", "noinput", None), ("cl", "gen", None)]
    jobs: dict[str, tuple[str, int | None]] = {}
    for n in range(300):
        category, action, rows = kinds[n % len(kinds)]
        jobs[cli.add_fast(category, action, rows, start=False)] = (action, rows)
    ids = list(jobs)
    for job_id in ids:
        cli.facade().start_job(job_id)
    finished = cluster.wait_finished(ids, timeout=300)
    assert {j.status for j in finished.values()} == {JobStatus.SUCCESS}, cluster.logs()

    calls = cluster.calls_by_pid()
    seen: dict[tuple[str, int], int] = {}
    for records in calls.values():
        for job, row, _, _ in records:
            seen[(job, row)] = seen.get((job, row), 0) + 1
    assert all(count == 1 for count in seen.values()), "a row ran twice"
    for job_id, (_action, rows) in jobs.items():
        assert_rows_exactly_once(cluster, job_id, rows or 5)
        assert finished[job_id].node in {"node-a", "node-b", "node-c"}
    # Every engine did work, and never more than its max_running (3) jobs at once.
    pids = {node.pid for node in nodes}
    assert set(calls) == pids
    for pid, records in calls.items():
        assert _max_concurrent_jobs(records) <= 3, pid
    # Each job ran on one node only: all its calls in one process.
    by_job: dict[str, set[int]] = {}
    for pid, records in calls.items():
        for job, *_ in records:
            by_job.setdefault(job, set()).add(pid)
    assert all(len(p) == 1 for p in by_job.values())


def _running_on(cluster: Cluster, job_id: str, node: str, rows_done: int) -> bool:
    job = cluster.store.get_job(job_id)
    return bool(job and job.status is JobStatus.EXECUTING and job.node == node and job.rows_done >= rows_done)


def test_kill_9_an_engine_mid_job_another_resumes_it_rows_exactly_once(cluster: Cluster) -> None:
    a = cluster.node("node-a")
    a.hold_at(100)  # node-b's start may take longer than the whole job: node-a must be mid-job at the kill
    a.start(KZ_ROW_S="0.01")
    cli = cluster.node("console")
    job_id = cli.add("cl", "plain", 300)
    wait_until(lambda: _running_on(cluster, job_id, "node-a", 40), 60, "node-a to be mid-job")
    b = cluster.node("node-b").start(KZ_ROW_S="0.002")
    dead_engine = a.engine_id()
    a.kill()
    final = cluster.wait_finished([job_id])[job_id]
    assert final.status is JobStatus.SUCCESS and final.node == "node-b", cluster.logs()
    assert final.success_count == 300 and final.output_rows == 300
    assert_rows_exactly_once(cluster, job_id, 300)
    # `kzconsole nodes` shows the dead engine and what was resumed elsewhere.
    nodes = {n["engine"]: n for n in cli.cli_json("nodes") if n}
    dead = nodes[dead_engine]
    assert dead["alive"] is False and dead["node"] == "node-a"
    assert [t["job_id"] for t in dead["resumed_elsewhere"]] == [job_id]
    assert dead["resumed_elsewhere"][0]["by_node"] == "node-b"
    assert nodes[b.engine_id()]["alive"] is True


def test_an_engine_frozen_past_its_lease_writes_nothing_more_about_the_job(cluster: Cluster) -> None:
    a = cluster.node("node-a")
    gate = a.hold_at(60)  # still mid-job when frozen, however long node-b takes to start
    a.start(KZ_ROW_S="0.02")
    cli = cluster.node("console")
    job_id = cli.add("cl", "plain", 400)
    wait_until(lambda: _running_on(cluster, job_id, "node-a", 20), 60, "node-a to be mid-job")
    b = cluster.node("node-b").start(KZ_ROW_S="0.002")
    a.signal(signal.SIGSTOP)
    frozen_at = time.time()
    # Past its lease, node-b takes the job over (the lease is judged on the server's clock).
    wait_until(
        lambda: (cluster.store.get_job(job_id) or None) and cluster.store.get_job(job_id).node == "node-b",
        60,
        "node-b to take the job over",
    )
    taken = cluster.store.get_job(job_id)
    assert taken is not None and taken.claim >= 2
    gate.unlink()  # node-a's held row returns when it wakes: what it writes then is fenced
    a.signal(signal.SIGCONT)
    final = cluster.wait_finished([job_id])[job_id]
    assert final.status is JobStatus.SUCCESS and final.node == "node-b", cluster.logs()
    assert_rows_exactly_once(cluster, job_id, 400)
    # Node-a carries on with other work: its lease renews and it runs the next job it gets.
    b.stop()
    wait_until(
        lambda: any(e.pid == a.pid and e.expires > cluster.store.now() for e in cluster.store.engines()),
        30,
        "node-a to renew its lease",
    )
    other = cli.add("cl", "plain", 5)
    done = cluster.wait_finished([other])[other]
    assert done.status is JobStatus.SUCCESS and done.node == "node-a", cluster.logs()
    assert frozen_at < time.time()


def test_postgresql_restarted_under_running_engines(cluster: Cluster, own_pg) -> None:
    cluster = own_pg
    for name in ("node-a", "node-b"):
        cluster.node(name).start(KZ_ROW_S="0.005")
    cli = cluster.node("console")
    ids = [cli.add("cl", "plain", 60) for _ in range(12)]
    wait_until(lambda: cluster.store.count_jobs(status="success") >= 2, 60, "some jobs to finish")
    cluster.server.restart()  # immediate: every connection drops, as in a crash of the server
    finished = cluster.wait_finished(ids, timeout=180)
    assert {j.status for j in finished.values()} == {JobStatus.SUCCESS}, cluster.logs()
    for job_id in ids:
        assert_rows_exactly_once(cluster, job_id, 60)
    # No job ran on two engines at once, none was lost: every row's output is there once.
    assert {lease.name for lease in cluster.store.engines()} == {"node-a", "node-b"}
    # The drop is the store's to report: psycopg's own "error ignored terminating
    # <psycopg.Pipeline [BAD]>: the connection is lost" warning is noise in the engine's log.
    assert "psycopg.Pipeline" not in cluster.logs()


def test_a_task_only_one_node_has_runs_on_that_node(cluster: Cluster) -> None:
    a = cluster.node("node-a")
    (a.plugins / "only_here.py").write_text(ONLY_HERE_PLUGIN)
    a.start()
    cluster.node("node-b").start()
    cli = cluster.node("console")
    (cli.plugins / "only_here.py").write_text(ONLY_HERE_PLUGIN)  # so the command line can add it
    ids = [cli.add("only", "here", 3) for _ in range(6)]
    finished = cluster.wait_finished(ids)
    assert {(j.status, j.node) for j in finished.values()} == {(JobStatus.SUCCESS, "node-a")}
    # With node-a gone, no live engine has the task: a started job ends internal_error.
    a.stop()
    orphan = cli.add("only", "here", 3)
    final = cluster.wait_finished([orphan])[orphan]
    assert final.status is JobStatus.INTERNAL_ERROR
    assert final.error == "task only/here is not in the catalog of any live engine"


HELD_ONLY_HERE_PLUGIN = """
import os
import time

from kzconsole.plugin import task


@task("only", "held", description="a task only one node has; row 3 on waits while KZ_HOLD exists",
      mandatory=["n"], output_header=["n", "error"])
def held(ctx, it, row):
    while int(row["n"]) >= 3 and os.path.exists(os.environ["KZ_HOLD"]):
        time.sleep(0.01)
    return [row["n"]]
"""


def test_a_dead_nodes_job_no_live_engine_can_run_is_not_shown_as_resumed(cluster: Cluster) -> None:
    # Node-a alone has the task and dies mid-job: node-b takes the job only to end it
    # internal_error. `kzconsole nodes` said "resumed by node-b" (outcome "resumed") for it.
    a = cluster.node("node-a")
    (a.plugins / "only_held.py").write_text(HELD_ONLY_HERE_PLUGIN)
    a.hold_at(1)  # sets KZ_HOLD: the job is mid-job, at row 3, until node-a is killed
    a.start()
    b = cluster.node("node-b").start()
    cli = cluster.node("console")
    (cli.plugins / "only_held.py").write_text(HELD_ONLY_HERE_PLUGIN)  # so the command line can add it
    job_id = cli.add("only", "held", 5)
    wait_until(lambda: _running_on(cluster, job_id, "node-a", 0), 60, "node-a to run the job")
    dead_engine = a.engine_id()
    a.kill()
    final = cluster.wait_finished([job_id])[job_id]
    assert final.status is JobStatus.INTERNAL_ERROR, cluster.logs()
    assert final.error == "task only/held is not in the catalog of any live engine"
    dead = {n["engine"]: n for n in cli.cli_json("nodes")}[dead_engine]
    assert [(t["job_id"], t["by_node"], t["outcome"]) for t in dead["resumed_elsewhere"]] == [
        (job_id, "node-b", "internal_error")
    ]
    text = cli.cli("nodes").stdout.decode()
    assert f"job {job_id} ended internal_error by node-b" in text, text
    assert "resuming job" not in b.log()


def test_nodes_shows_heartbeats_on_the_stores_clock_whatever_the_asking_nodes_clock(cluster: Cluster) -> None:
    # The heartbeat is on the store's clock; `kzconsole nodes` subtracted it from its own clock, so
    # on a node whose clock is 10 minutes ahead of the server every live engine beat "10 min ago".
    cluster.node("node-a").start()
    cli = cluster.node("console")
    ahead = cli.root / "clock-ahead"
    ahead.mkdir()
    (ahead / "sitecustomize.py").write_text("import time\n_time = time.time\ntime.time = lambda: _time() + 600.0\n")
    cli.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ahead), cli.env.get("PYTHONPATH", "")) if p)
    text = cli.cli("nodes").stdout.decode()
    line = next(line for line in text.splitlines() if line.startswith("node-a "))
    assert " alive " in line and re.search(r" [0-9] s ago ", line), text


def test_nodes_shows_a_tasks_run_process_as_claiming_no_job_not_as_1_of_0_slots(cluster: Cluster) -> None:
    # A `tasks run` process heartbeats (its job is resumed if it dies) but has no slots: its
    # row said "1/0", as if it ran more than it could.
    cluster.node("node-a").start()
    cli = cluster.node("console")
    gate = cli.hold_at(2)
    runner = subprocess.Popen(
        cli.argv("tasks", "add", "cl", "plain", "--input", "-", "--run"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cli.root,
        env=cli.env,
    )
    try:
        assert runner.stdin is not None
        runner.stdin.write(csv_input(3))
        runner.stdin.close()
        wait_until(
            lambda: any(n["pid"] == runner.pid and n["running"] == 1 for n in cli.cli_json("nodes")),
            60,
            "the tasks run process to run its job",
        )
        text = cli.cli("nodes").stdout.decode()
        line = next(line for line in text.splitlines() if f" {runner.pid} " in line)
        assert line.endswith("1/-"), text
        assert next(line for line in text.splitlines() if line.startswith("node-a ")).endswith("0/3"), text
    finally:
        gate.unlink()
        runner.wait(60)
    assert runner.returncode == 0
