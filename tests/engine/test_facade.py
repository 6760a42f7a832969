"""Facade additions others rely on: restart of the failed rows only, why a queued job waits, the
plugin runtime of each engine, the engine's log records as events, the input check of the
console's form."""

from __future__ import annotations

import csv
import io
import threading

import pytest

from kzconsole.engine import Engine, EngineLogged, InvalidJobState, JobChanged, JobStatus
from kzconsole.engine.models import EngineLease
from tests.conftest import make_settings, write_csv

PLUGIN = """
import threading
from kzconsole.plugin import task, trigger, runtime

GATE = threading.Event()
WAIT_AT = [None]
SEEN = []

@task("f", "odd", description="rows with an odd n fail", mandatory=["n"])
def odd(ctx, it, row):
    if row["n"] == WAIT_AT[0]:
        GATE.wait(30)
    return "odd" if int(row["n"]) % 2 else None

@task("f", "where", description="the data dir of the engine running it")
def where(ctx, it):
    SEEN.append(("job", str(runtime().data_dir)))
    return STOP_NOW

@trigger("hourly")
def hourly():
    SEEN.append(("trigger", str(runtime().data_dir)))

from kzconsole.plugin import STOP as STOP_NOW
"""


def read(stream) -> list[list[str]]:
    with stream:
        return list(csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline="")))


def test_restart_failed_only_runs_the_failed_rows(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("f.py", PLUGIN)
    engine = engine_factory()
    src = write_csv(tmp_path / "in.csv", [["n", "note"]] + [[str(i), f"row {i}"] for i in range(1, 8)])
    job = engine.add_job("f", "odd", input=src)
    with pytest.raises(InvalidJobState, match="not finished"):
        engine.restart_job(job.id, failed_only=True)
    final = engine.run_job(job.id)
    assert (final.success_count, final.failure_count) == (3, 4)
    again = engine.restart_job(job.id, failed_only=True, start=False)
    assert again.total_count == 4 and again.status is JobStatus.PENDING and again.queued_at is None
    assert read(engine.open_input(again)) == [
        ["n", "note"],
        ["1", "row 1"],
        ["3", "row 3"],
        ["5", "row 5"],
        ["7", "row 7"],
    ]
    assert engine.run_job(again.id).failure_count == 4
    # A plain restart keeps the whole input.
    assert engine.restart_job(job.id, start=False).total_count == 7


def test_restart_failed_only_refuses_when_nothing_failed(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("f.py", PLUGIN)
    engine = engine_factory()
    src = write_csv(tmp_path / "in.csv", [["n"], ["2"], ["4"]])
    final = engine.run_job(engine.add_job("f", "odd", input=src).id)
    assert final.status is JobStatus.SUCCESS
    with pytest.raises(InvalidJobState, match=r"no input row of job .* failed"):
        engine.restart_job(final.id, failed_only=True)
    noinput = engine.run_job(engine.add_job("skel", "count").id)
    with pytest.raises(InvalidJobState, match="takes no input"):
        engine.restart_job(noinput.id, failed_only=True)


def test_failed_rows_are_recorded_once_across_a_resume(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("f.py", PLUGIN)
    engine = engine_factory(send_progress_after_processed=2)
    mod = engine.catalog.task("f", "odd").function.__globals__
    mod["WAIT_AT"][0] = "6"
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(1, 10)])
    job = engine.add_job("f", "odd", input=src)
    at_row = threading.Event()
    engine.events.subscribe(lambda e: at_row.set() if isinstance(e, JobChanged) and e.job.rows_done >= 4 else None)
    engine.start(watch=False, triggers=False)
    engine.start_job(job.id)
    assert at_row.wait(30)
    control = engine.scheduler.control(job.id)
    stopper = threading.Thread(target=engine.stop)
    stopper.start()
    while not control.shutdown.is_set():  # the graceful shutdown reached the job
        stopper.join(0.01)
    mod["GATE"].set()  # row 6 returns; the shutdown checkpoints and releases the job
    stopper.join(30)
    left = engine.get_job(job.id)
    assert left.status is JobStatus.EXECUTING and left.owner is None and left.rows_done == 6
    # What a crash after storing failed rows, before the checkpoint counting them, leaves behind.
    engine.store.append_file(job.id, "failed", b"7\n")
    second = engine_factory()
    done = threading.Event()
    second.events.subscribe(lambda e: done.set() if isinstance(e, JobChanged) and e.job.status.is_finished else None)
    second.start(watch=False, triggers=False)
    assert done.wait(30)
    final = second.get_job(job.id)
    assert final.failure_count == 5
    failed = second.store.open_file(job.id, "failed")
    assert failed is not None and failed.read() == b"1\n3\n5\n7\n9\n"
    failed.close()


def test_wait_reason(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("f.py", PLUGIN)
    engine = engine_factory(max_running=1)
    mod = engine.catalog.task("f", "odd").function.__globals__
    mod["WAIT_AT"][0] = "2"
    src = write_csv(tmp_path / "in.csv", [["n"], ["2"]])
    first = engine.add_job("f", "odd", input=src)
    waiting = engine.add_job("f", "odd", input=src)
    assert engine.wait_reason(first) is None  # not started
    engine.start_job(first.id)
    waiting = engine.start_job(waiting.id)
    assert "no engine is running on this store" in engine.wait_reason(waiting)
    running = threading.Event()
    engine.events.subscribe(
        lambda e: (
            running.set()
            if isinstance(e, JobChanged) and e.job.id == first.id and e.job.status is JobStatus.EXECUTING
            else None
        )
    )
    engine.start(watch=False, triggers=False)
    assert running.wait(30)
    assert engine.get_job(waiting.id).status is JobStatus.PENDING  # the only slot is taken
    assert engine.wait_reason(waiting) == "every slot is taken (1 of 1 running)"
    mod["GATE"].set()


def test_wait_reason_on_a_store_other_engines_serve(engine_factory, plugin_dir, tmp_path):
    """A command line (no engine of its own) asks about a queued job other processes' engines
    would run: it says which of them could, and whether a slot is free."""
    plugin_dir.write("f.py", PLUGIN)
    engine = engine_factory()
    job = engine.start_job(engine.add_job("f", "odd", input=write_csv(tmp_path / "in.csv", [["n"], ["1"]])).id)
    store = engine.store

    def lease(node: str, *, tasks: tuple[str, ...], slots: int = 2, running: int = 0) -> EngineLease:
        now = store.now()
        return EngineLease(node, "elsewhere", 4242, now, now + 30, name=node, slots=slots, running=running, tasks=tasks)

    store.heartbeat(lease("a", tasks=("other/task",)))
    assert engine.wait_reason(job) == (
        "no live engine has f/odd in its catalog (1 engine alive): it ends internal_error unless an"
        " engine that has the task starts first"
    )
    store.heartbeat(lease("b", tasks=("f/odd",), running=2))
    assert engine.wait_reason(job) == "every slot is taken (2 of 2 running on 1 engine)"
    store.heartbeat(lease("c", tasks=("f/odd", "other/task"), slots=4, running=1))
    assert engine.wait_reason(job) == "about to start (3 of 6 slots taken on 2 engines)"
    store.remove_engine("b")
    store.remove_engine("c")
    store.heartbeat(lease("a", tasks=("other/task",), slots=4))
    assert "no live engine has f/odd" in engine.wait_reason(job)  # only the alive count changed


def test_each_engine_answers_its_own_plugins(tmp_path, plugin_dir):
    plugin_dir.write("f.py", PLUGIN)
    a = Engine(make_settings(tmp_path / "a", plugin_dir.path))
    b = Engine(make_settings(tmp_path / "b", plugin_dir.path))
    try:
        # Each engine imports its own copy of the file (or the same one: either way the answer
        # must be the engine running the code).
        mods = [e.catalog.task("f", "where").function.__globals__ for e in (a, b)]
        for engine in (a, b, a):
            engine.run_job(engine.add_job("f", "where").id)
            engine.fire_trigger("hourly")
        seen = [entry for mod in {id(m): m for m in mods}.values() for entry in mod["SEEN"]]
        expect_a, expect_b = str(a.data_dir), str(b.data_dir)
        assert sorted(seen) == sorted(
            [
                ("job", expect_a),
                ("trigger", expect_a),
                ("job", expect_b),
                ("trigger", expect_b),
                ("job", expect_a),
                ("trigger", expect_a),
            ]
        )
    finally:
        a.close()
        b.close()


def test_engine_log_records_are_events(engine_factory):
    engine = engine_factory()
    got: list[EngineLogged] = []
    engine.events.subscribe(lambda e: got.append(e) if isinstance(e, EngineLogged) else None)
    engine.start(run_jobs=False, watch=False, triggers=False)
    import logging

    logging.getLogger("kzconsole.engine").warning("a line for the Logs view")
    assert [(e.level, e.logger, e.message) for e in got if e.message == "a line for the Logs view"] == [
        ("WARNING", "kzconsole.engine", "a line for the Logs view")
    ]


def test_check_input_reports_what_add_job_would_reject(engine_factory, tmp_path):
    engine = engine_factory()
    holes = write_csv(tmp_path / "holes.csv", [["col1", "col2"], ["a", "b"], ["c", ""]])
    report = engine.check_input("skel", "id2", holes, preview=5)
    assert report.errors == {"missing_mandatory_values": {"lines": [3], "count": 1}}
    assert report.header == ["col1", "col2"] and report.total_rows == 2
    assert report.preview == [["col1", "col2"], ["a", "b"], ["c", ""]]
    assert engine.check_input("skel", "nope", holes).errors == {"unknown_task": "skel/nope"}
    assert engine.check_input("skel", "id2", None).errors["expected_content"] == "text/csv"
    assert engine.count_jobs() == 0
