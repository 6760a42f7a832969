"""The scheduler and the engine process: max_running, starts from another process, stops, resume
after a graceful shutdown, a task missing at pickup."""

from __future__ import annotations

import threading
import time

import pytest

from kzconsole.engine import Engine, InvalidJobState, JobChanged, JobStatus
from tests.conftest import make_settings, output_csv, write_csv

GATED = """
import threading
from kzconsole.plugin import task, Next

GATE = threading.Event()
RUNNING = []

@task("g", "gated", description="waits for GATE on every row", mandatory=["n"])
def gated(ctx, it, row):
    RUNNING.append(ctx.job_id)
    GATE.wait(20)
    return Next((it if isinstance(it, int) else 0) + 1)

@task("g", "quick", description="returns OK", mandatory=["n"])
def quick(ctx, it, row):
    return None
"""


class Finished:
    """Waits for jobs to reach a finished status, driven by engine events (no sleeping)."""

    def __init__(self, engine: Engine) -> None:
        self.done: dict[str, JobStatus] = {}
        self.cond = threading.Condition()
        engine.events.subscribe(self._on)

    def _on(self, ev) -> None:
        if isinstance(ev, JobChanged) and ev.job.status.is_finished:
            with self.cond:
                self.done[ev.job.id] = ev.job.status
                self.cond.notify_all()

    def wait(self, *ids: str, timeout: float = 20) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: all(i in self.done for i in ids), timeout), self.done


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.fixture
def gated(plugin_dir, tmp_path):
    plugin_dir.write("g.py", GATED)
    return write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(5)])


def test_at_most_max_running_and_start_order(engine_factory, gated):
    engine = engine_factory(max_running=2)
    mod = engine.catalog.task("g", "gated").function.__globals__
    finished = Finished(engine)
    engine.start(watch=False, triggers=False)
    jobs = [engine.add_job("g", "gated", input=gated) for _ in range(4)]
    for job in reversed(jobs):  # start order, not creation order, decides
        engine.start_job(job.id)
    wait_for(lambda: len(set(mod["RUNNING"])) == 2)
    assert engine.scheduler.running_count() == 2
    assert set(mod["RUNNING"]) == {jobs[3].id, jobs[2].id}
    assert engine.get_job(jobs[0].id).status is JobStatus.PENDING
    mod["GATE"].set()
    finished.wait(*(j.id for j in jobs))
    assert all(engine.get_job(j.id).status is JobStatus.SUCCESS for j in jobs)


def test_a_start_from_another_process_is_noticed(engine_factory, tmp_path, gated, plugin_dir):
    engine = engine_factory()
    engine.catalog.task("g", "quick")
    finished = Finished(engine)
    engine.start(watch=False, triggers=False)
    # A second Engine on the same store = another process's command line (its own connection).
    other = Engine(make_settings(tmp_path, plugin_dir.path))
    try:
        job = other.add_job("g", "quick", input=gated)
        other.start_job(job.id)  # nothing in this process tells the engine: the changes feed does
        finished.wait(job.id)
    finally:
        other.close()


def test_stop_from_another_process_and_set_wait(engine_factory, tmp_path, gated, plugin_dir):
    engine = engine_factory()
    mod = engine.catalog.task("g", "gated").function.__globals__
    finished = Finished(engine)
    engine.start(watch=False, triggers=False)
    other = Engine(make_settings(tmp_path, plugin_dir.path))
    try:
        job = other.add_job("g", "gated", input=gated)
        other.start_job(job.id)
        wait_for(lambda: mod["RUNNING"])
        other.set_wait(job.id, 5)
        wait_for(lambda: engine.scheduler.control(job.id).wait_after_row_ms == 5)
        with pytest.raises(InvalidJobState):
            other.remove_job(job.id)
        assert other.stop_job(job.id).stop_requested
        wait_for(lambda: engine.scheduler.control(job.id).stop.is_set())  # seen by the owner's poll
        mod["GATE"].set()
        finished.wait(job.id)
        final = other.get_job(job.id)
        assert final.status is JobStatus.STOPPED and final.success_count == 1
        assert output_csv(other, final) == [["n", "error"]]  # Next(state) writes nothing
    finally:
        other.close()


def test_graceful_shutdown_resumes_at_next_start(engine_factory, tmp_path, gated, plugin_dir):
    engine = engine_factory(send_progress_after_processed=1)
    mod = engine.catalog.task("g", "gated").function.__globals__
    engine.start(watch=False, triggers=False)
    job = engine.add_job("g", "gated", input=gated, start=True)
    wait_for(lambda: len(mod["RUNNING"]) >= 1)
    control = engine.scheduler.control(job.id)
    stopper = threading.Thread(target=engine.stop)
    stopper.start()
    wait_for(control.shutdown.is_set)
    mod["GATE"].set()  # the current row returns; the job checkpoints and is released
    stopper.join(20)
    left = engine.get_job(job.id)
    assert left.status is JobStatus.EXECUTING and left.owner is None and left.rows_done >= 1

    second = engine_factory(send_progress_after_processed=1)
    mod2 = second.catalog.task("g", "gated").function.__globals__
    mod2["GATE"].set()
    finished = Finished(second)
    second.start(watch=False, triggers=False)
    finished.wait(job.id)
    final = second.get_job(job.id)
    assert final.status is JobStatus.SUCCESS and final.success_count == 5
    assert final.rows_done == 5
    assert len(mod["RUNNING"]) + len(mod2["RUNNING"]) == 5  # no row ran twice


def test_task_missing_at_pickup_is_internal_error(engine_factory, gated, plugin_dir):
    engine = engine_factory()
    job = engine.add_job("g", "quick", input=gated)
    (plugin_dir.path / "g.py").unlink()
    engine.loader.unload_file(plugin_dir.path / "g.py")
    finished = Finished(engine)
    engine.start(watch=False, triggers=False)
    engine.start_job(job.id)
    finished.wait(job.id)
    final = engine.get_job(job.id)
    assert final.status is JobStatus.INTERNAL_ERROR
    assert final.error == "task g/quick is not in the catalog"


def test_noinput_job_through_the_scheduler(engine_factory):
    engine = engine_factory()
    finished = Finished(engine)
    engine.start(watch=False, triggers=False)
    job = engine.add_job("skel", "count", start=True)
    finished.wait(job.id)
    final = engine.get_job(job.id)
    assert (final.status, final.success_count, final.output_rows) == (JobStatus.SUCCESS, 10, 10)
    assert output_csv(engine, final)[1:3] == [["1", ""], ["2", ""]]


def test_reload_plugins_drops_deleted_files(engine_factory, plugin_dir):
    plugin_dir.write("g.py", GATED)
    engine = engine_factory()
    assert engine.task("g", "quick") is not None
    (plugin_dir.path / "g.py").unlink()
    plugin_dir.write("h.py", GATED.replace('"g"', '"h"'))
    engine.reload_plugins()
    assert engine.task("g", "quick") is None
    assert engine.task("h", "quick") is not None
