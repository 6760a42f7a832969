"""StoreChanged means another store handle wrote (issue 10.4): an engine's own writes (its job
threads' checkpoints included) never look like someone else's, and other handles' writes arrive
naming the jobs they changed."""

from __future__ import annotations

import queue

from kzconsole.engine import Engine, JobChanged, JobStatus, StoreChanged
from tests.conftest import make_settings, write_csv

PLUGIN = """
from kzconsole.plugin import task

@task("f", "rows", description="OK per row", mandatory=["n"])
def rows(ctx, it, row):
    ctx.log.info("row %s", row["n"])
    return None
"""


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.events: queue.Queue = queue.Queue()
        engine.events.subscribe(self.events.put)

    def wait(self, predicate, timeout: float = 30.0):
        """The first event matching ``predicate`` (every event seen before it is kept)."""
        seen = []
        while True:
            event = self.events.get(timeout=timeout)
            seen.append(event)
            if predicate(event):
                return event, seen


def test_one_engine_one_job_no_other_process_no_store_changed(tmp_path, plugin_dir):
    plugin_dir.write("f.py", PLUGIN)
    # A checkpoint per row: many commits from the job thread's own connection.
    settings = make_settings(tmp_path, plugin_dir.path, send_progress_after_processed=1)
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(50)])
    with Engine(settings) as engine:
        recorder = Recorder(engine)
        engine.start(watch=False, triggers=False)
        job = engine.add_job("f", "rows", input=src, start=True)
        _, before = recorder.wait(
            lambda e: isinstance(e, JobChanged) and e.job.id == job.id and e.job.status.is_finished
        )
        # A marker written by another handle: the feed reports changes in commit order, so once
        # the marker arrives every change of the job's run has been looked at.
        with Engine(settings) as other:
            marker = other.add_job("f", "rows", input=src)
        event, after = recorder.wait(lambda e: isinstance(e, StoreChanged))
        assert event.job_ids == (marker.id,)
        assert not [e for e in before + after[:-1] if isinstance(e, StoreChanged)]
        assert engine.get_job(job.id).status is JobStatus.SUCCESS


def test_another_handles_writes_name_their_jobs(tmp_path, plugin_dir):
    plugin_dir.write("f.py", PLUGIN)
    settings = make_settings(tmp_path, plugin_dir.path)
    src = write_csv(tmp_path / "in.csv", [["n"], ["1"]])
    with Engine(settings) as engine:
        recorder = Recorder(engine)
        engine.start(run_jobs=False, watch=False, triggers=False)
        with Engine(settings) as other:
            job = other.add_job("f", "rows", input=src)
            event, _ = recorder.wait(lambda e: isinstance(e, StoreChanged))
            assert event.job_ids == (job.id,) and "job" in event.kinds
            other.remove_job(job.id)
            event, _ = recorder.wait(lambda e: isinstance(e, StoreChanged))
            assert event.job_ids == (job.id,) and event.kinds == frozenset({"deleted"})
