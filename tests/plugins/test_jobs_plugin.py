"""The built-in `jobs` plugin: `export` (every job record as CSV) and the `daily` trigger that
removes finished jobs, with their files, after the retention period."""

from __future__ import annotations

from pathlib import Path

import pytest

from kzconsole.engine import Engine, JobStatus
from kzconsole.engine.clock import FakeClock
from kzconsole.engine.models import PUBLIC_JOB_KEYS
from tests.conftest import make_settings, output_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAY = 86400


@pytest.fixture
def make_engine(tmp_path):
    engines: list[Engine] = []

    def make(plugin_options: dict | None = None, clock: FakeClock | None = None) -> Engine:
        settings = make_settings(tmp_path).with_overrides(plugin_options=plugin_options or {})
        engine = Engine(settings, clock=clock or FakeClock())
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def finished_job(engine: Engine, example: str = "skel_id2.csv", category: str = "skel", action: str = "id2"):
    job = engine.add_job(category, action, input=EXAMPLES / example)
    return engine.run_job(job.id)


def as_cells(record: dict) -> list[str]:
    return ["" if v is None else str(v) for v in record.values()]


# --- export --------------------------------------------------------------------------------------


def test_export_writes_every_record(make_engine):
    engine = make_engine()
    ok = finished_job(engine)
    failed = finished_job(engine, "numbers_invalid.csv", "numbers", "normalize")
    pending = engine.add_job("numbers", "dedupe", input=EXAMPLES / "numbers_dedupe.csv")
    stopped = engine.stop_job(engine.add_job("numbers", "summarize", input=EXAMPLES / "numbers_summarize.csv").id)
    job = engine.add_job("jobs", "export")
    final = engine.run_job(job.id)
    out = output_csv(engine, final)

    assert out[0] == list(PUBLIC_JOB_KEYS)  # the record's keys; `error` is one of them
    exported = {row[0]: row for row in out[1:]}
    assert set(exported) == {ok.id, failed.id, pending.id, stopped.id, job.id}
    for record in (ok, failed, pending, stopped):
        assert exported[record.id] == as_cells(engine.get_job(record.id).public())
    assert exported[stopped.id][-1] == "stopped by operator"
    assert exported[job.id][6] == "executing"  # the export sees itself running
    # A record's error is data, not a failed row.
    assert (final.success_count, final.failure_count, final.status) == (5, 0, JobStatus.SUCCESS)
    assert final.output_rows == 5


# --- the daily trigger ---------------------------------------------------------------------------


def test_daily_removes_finished_jobs_older_than_the_retention(make_engine):
    clock = FakeClock()
    engine = make_engine(clock=clock)
    old = finished_job(engine)
    old_failed = finished_job(engine, "numbers_invalid.csv", "numbers", "normalize")
    old_pending = engine.add_job("numbers", "dedupe", input=EXAMPLES / "numbers_dedupe.csv")
    clock.advance(29 * DAY)
    recent = finished_job(engine)
    clock.advance(1 * DAY + 1)  # `old` ended 30 days and 1 s ago

    for job in (old, old_failed, recent):
        assert engine.open_output(job) is not None
    firing = engine.fire_trigger("daily")
    assert firing.status == "ok", firing
    assert "kzconsole.plugins.jobs:remove_old_jobs" in [f["function"] for f in firing.functions]

    left = {j.id for j in engine.list_jobs()}
    assert left == {old_pending.id, recent.id}  # a pending job is never removed, however old
    # Removed with their files.
    assert engine.store.open_file(old.id, "output") is None and engine.store.open_file(old_failed.id, "log") is None
    assert engine.open_output(recent) is not None


def test_retention_option(make_engine):
    clock = FakeClock()
    engine = make_engine({"jobs": {"retention_days": 2}}, clock=clock)
    job = finished_job(engine)
    clock.advance(2 * DAY - 10)
    engine.fire_trigger("daily")
    assert engine.list_jobs() != []
    clock.advance(20)
    engine.fire_trigger("daily")
    assert engine.list_jobs() == [] and engine.store.open_file(job.id, "output") is None


def test_retention_zero_keeps_everything(make_engine):
    clock = FakeClock()
    engine = make_engine({"jobs": {"retention_days": 0}}, clock=clock)
    finished_job(engine)
    clock.advance(3650 * DAY)
    assert engine.fire_trigger("daily").status == "ok"
    assert len(engine.list_jobs()) == 1


@pytest.mark.parametrize("bad", ["30", -1, True])
def test_a_bad_retention_fails_the_function(make_engine, bad):
    clock = FakeClock()
    engine = make_engine({"jobs": {"retention_days": bad}}, clock=clock)
    finished_job(engine)
    clock.advance(3650 * DAY)
    firing = engine.fire_trigger("daily")
    fn = next(f for f in firing.functions if f["function"].endswith("remove_old_jobs"))
    assert fn["ok"] is False
    assert f"plugin_options.jobs.retention_days must be a number >= 0, got {bad!r}" in fn["error"]
    assert len(engine.list_jobs()) == 1


def test_one_job_that_cannot_be_removed_does_not_keep_the_others(make_engine, monkeypatch):
    clock = FakeClock()
    engine = make_engine(clock=clock)
    stuck = finished_job(engine)
    finished_job(engine)  # removed, though the first one cannot be
    clock.advance(31 * DAY)
    real_remove = engine.remove_job

    def remove(job_id):
        if job_id == stuck.id:
            raise OSError("disk on fire")
        return real_remove(job_id)

    monkeypatch.setattr(engine, "remove_job", remove)
    firing = engine.fire_trigger("daily")
    fn = next(f for f in firing.functions if f["function"].endswith("remove_old_jobs"))
    assert fn["ok"] is False and f"could not remove 1 job(s); first: {stuck.id}: disk on fire" in fn["error"]
    assert [j.id for j in engine.list_jobs()] == [stuck.id]
