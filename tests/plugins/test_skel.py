"""The built-in `skel` plugin, the smallest reference: id1, id2 on examples/skel_id2.csv, count, and
its minutely trigger."""

from __future__ import annotations

import logging
from pathlib import Path

from kzconsole.engine import JobStatus
from tests.conftest import output_csv, write_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(engine, action, source=None):
    job = engine.add_job("skel", action, input=source)
    final = engine.run_job(job.id)
    return final, output_csv(engine, final)


def test_id2_example(engine_factory):
    final, out = run(engine_factory(), "id2", EXAMPLES / "skel_id2.csv")
    assert out == [
        ["Col1", "Col2", "error"],
        ["alpha", "one", ""],
        ["beta", "two", ""],
        ["gamma, with a comma", 'three "quoted"', ""],
        ["delta", "four", ""],
    ]
    assert final.status is JobStatus.SUCCESS and final.success_count == 4


def test_id1_and_count(engine_factory, tmp_path):
    engine = engine_factory()
    src = write_csv(tmp_path / "in.csv", [["col1", "other"], ["x", "1"], ["", "2"]])
    _, out = run(engine, "id1", src)
    assert out[1:] == [["x", "col1 was set to x", ""], ["", "col1 was not defined", ""]]
    final, out = run(engine, "count")
    assert [r[0] for r in out[1:]] == [str(n) for n in range(1, 11)]
    assert final.status is JobStatus.SUCCESS


def test_minutely_tick_logs(engine_factory, caplog):
    with caplog.at_level(logging.INFO, logger="kzconsole.plugins.skel"):
        firing = engine_factory().fire_trigger("minutely")
    assert firing.status == "ok"
    assert "skel: a minute has passed" in caplog.text
