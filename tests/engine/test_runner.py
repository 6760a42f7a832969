"""The row loop against contract 2.3-2.5 and 4.2-4.4: every row of the return-value table, the
iterator, verifiers, output header rules, finish, statuses, pause and stop."""

from __future__ import annotations

import threading

import pytest

from kzconsole.engine import JobControl, JobProgressed, JobStatus
from tests.conftest import log_text, output_csv, write_csv

CASES_PLUGIN = """
import sys
from kzconsole.plugin import task, verifier, INIT, STOP, OK, Next

CASES = {
    "ok": lambda it: OK,
    "none": lambda it: None,
    "str": lambda it: "boom",
    "emptystr": lambda it: "",
    "row": lambda it: ["x", "y"],
    "tuple": lambda it: ("t",),
    "cells": lambda it: [1, 2.5],
    "objcell": lambda it: [object.__new__(Thing)],
    "dict": lambda it: {"case": "D", "a": "dv", "zzz": "ignored"},
    "dicterr": lambda it: {"case": "E", "error": "bad dict"},
    "dictemptyerr": lambda it: {"case": "F", "error": ""},
    "rows": lambda it: [["a"], ["b"]],
    "emptylist": lambda it: [],
    "emptytuple": lambda it: (),
    "next": lambda it: Next("s1"),
    "nextnone": lambda it: Next("s2", None),
    "nextres": lambda it: Next("s3", "next error"),
    "nextrow": lambda it: Next("s4", ["nr"]),
    "invalid": lambda it: 42,
    "mixed": lambda it: [["a"], "b"],
    "toolong": lambda it: ["1", "2", "3", "4"],
    "raise": lambda it: (_ for _ in ()).throw(ValueError("bad value")),
    "raise_empty": lambda it: (_ for _ in ()).throw(KeyError()),
    "exit": lambda it: sys.exit(3),
    "echo_it": lambda it: [repr(it)],
    "stop": lambda it: STOP,
    "nextstop": lambda it: Next(STOP, ["last"]),
    "nextstop_bare": lambda it: Next(STOP),
}

class Thing:
    def __repr__(self):
        return "<Thing>"

@task("t", "cases", description="Returns what the case column says", mandatory=["case"], optional=["a"])
def cases(ctx, it, row):
    return CASES[row["case"]](it)
"""


def run_cases(engine_factory, plugin_dir, tmp_path, cases, **kw):
    plugin_dir.write("cases.py", CASES_PLUGIN)
    engine = engine_factory(**kw)
    src = write_csv(tmp_path / "in.csv", [["case", "a"]] + [[c, "av"] for c in cases])
    job = engine.add_job("t", "cases", input=src)
    final = engine.run_job(job.id)
    return engine, final, output_csv(engine, final)


def test_every_csv_return_value(engine_factory, plugin_dir, tmp_path):
    cases = [
        "ok",
        "none",
        "str",
        "emptystr",
        "row",
        "tuple",
        "cells",
        "objcell",
        "dict",
        "dicterr",
        "dictemptyerr",
        "rows",
        "emptylist",
        "emptytuple",
        "invalid",
        "mixed",
        "toolong",
        "raise",
        "raise_empty",
        "exit",
    ]
    _engine, final, out = run_cases(engine_factory, plugin_dir, tmp_path, cases)
    assert out[0] == ["case", "a", "error"]
    assert out[1:] == [
        ["ok", "av", ""],
        ["none", "av", ""],
        ["str", "av", "boom"],
        ["emptystr", "av", "unspecified error"],
        ["x", "y", ""],
        ["t", "", ""],
        ["1", "2.5", ""],
        ["<Thing>", "", ""],
        ["D", "dv", ""],
        ["E", "", "bad dict"],
        ["F", "", ""],
        ["rows", "av", "a CSV task writes at most one row per input row"],
        # emptylist, emptytuple: success, nothing written
        ["invalid", "av", "invalid return value: 42"],
        ["mixed", "av", "invalid return value: [['a'], 'b']"],
        ["toolong", "av", "row has 4 cells, the output header has 3"],
        ["raise", "av", "ValueError: bad value"],
        ["raise_empty", "av", "KeyError"],
        ["exit", "av", "SystemExit: 3"],
    ]
    failures = 10  # str emptystr dicterr rows invalid mixed toolong raise raise_empty exit
    assert final.status is JobStatus.PARTIAL
    assert final.failure_count == failures
    assert final.success_count == len(cases) - failures
    assert final.total_count == len(cases)
    assert final.output_rows == len(out) - 1
    assert final.end_timestamp is not None and final.error is None


def test_next_state_is_handed_on(engine_factory, plugin_dir, tmp_path):
    cases = [
        "echo_it",
        "next",
        "echo_it",
        "str",
        "echo_it",
        "nextnone",
        "echo_it",
        "nextres",
        "echo_it",
        "nextrow",
        "echo_it",
    ]
    _, final, out = run_cases(engine_factory, plugin_dir, tmp_path, cases)
    assert [r[0] for r in out[1:]] == [
        "INIT",  # first call
        "'s1'",  # after Next("s1") (writes nothing)
        "str",  # a failure writes the input row...
        "'s1'",  # ...and keeps `it`
        "nextnone",  # Next(s, None) is OK: input row written
        "'s2'",
        "nextres",
        "'s3'",
        "nr",
        "'s4'",
    ]
    assert out[7] == ["nextres", "av", "next error"]
    assert final.failure_count == 2 and final.success_count == 9


@pytest.mark.parametrize("last, written", [("stop", []), ("nextstop", [["last", "", ""]]), ("nextstop_bare", [])])
def test_stop_ends_the_job(engine_factory, plugin_dir, tmp_path, last, written):
    _, final, out = run_cases(engine_factory, plugin_dir, tmp_path, ["ok", last, "ok", "ok"])
    assert out[1:] == [["ok", "av", ""]] + written
    assert final.status is JobStatus.SUCCESS
    # STOP is not counted; Next(STOP[, result]) counts its result.
    assert final.success_count == (1 if last == "stop" else 2)
    assert final.total_count == 4


def test_verifiers_fail_closed_and_keep_it(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write(
        "v.py",
        """
from kzconsole.plugin import task, verifier, Next

@verifier("v", "e164")
def e164(value):
    return value.startswith("+") and value[1:].isdigit()

@verifier("v", "extra")
def extra(value):
    if value == "raise":
        raise RuntimeError("verifier bug")
    if value == "forgot":
        return None

@verifier("v", "account_id")
def account_id(value):
    return len(value) == 32

@task("v", "go", description="d", mandatory=["e164"], optional=["account_id"])
def go(ctx, it, row):
    n = 0 if not isinstance(it, int) else it
    return Next(n + 1, {"e164": row["e164"], "account_id": str(n)})
""",
    )
    engine = engine_factory()
    src = write_csv(
        tmp_path / "in.csv",
        [
            ["account_id", "e164", "extra"],
            ["", "+1415", ""],
            ["short", "123", ""],
            ["", "+1", "raise"],
            ["", "+2", "forgot"],
            ["", "+3", ""],
        ],
    )
    job = engine.add_job("v", "go", input=src)
    final = engine.run_job(job.id)
    out = output_csv(engine, final)
    assert out[0] == ["e164", "account_id", "error"]
    assert out[1:] == [
        ["+1415", "0", ""],
        ["123", "short", "bad field(s): account_id, e164"],  # input-header order
        ["+1", "", "bad field(s): extra"],  # a raising verifier rejects
        ["+2", "", "bad field(s): extra"],  # so does one that returns None
        ["+3", "1", ""],  # `it` unchanged by bad rows
    ]
    assert (final.success_count, final.failure_count, final.status) == (2, 3, JobStatus.PARTIAL)


def test_output_header_rules(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write(
        "h.py",
        """
from kzconsole.plugin import task, Next, STOP

def boom():
    raise RuntimeError("no header today")

@task("h", "declared", description="d", mandatory=["a"], output_header=["X", "error", "Y"])
def declared(ctx, it, row): return "e"

@task("h", "callable", description="d", mandatory=["a"], output_header=lambda: ["C"])
def callable_(ctx, it, row): return ["c"]

@task("h", "raising", description="d", mandatory=["a"], optional=["b"], output_header=boom)
def raising(ctx, it, row): return None

@task("h", "badvalue", description="d", mandatory=["a"], output_header=lambda: "not a list")
def badvalue(ctx, it, row): return None

@task("h", "nofields", description="d", expected_content="text/csv")
def nofields(ctx, it, row): return None

@task("h", "noinput", description="d")
def noinput(ctx, it): return Next(STOP, "only error")
""",
    )
    engine = engine_factory()
    src = write_csv(tmp_path / "in.csv", [["a", "zz"], ["1", "2"]])

    def header(action, with_input=True):
        job = engine.add_job("h", action, input=src if with_input else None)
        final = engine.run_job(job.id)
        return output_csv(engine, final)

    assert header("declared") == [["X", "error", "Y"], ["", "e", ""]]
    assert header("callable") == [["C", "error"], ["c", ""]]
    assert header("raising")[0] == ["a", "b", "error"]
    assert header("badvalue")[0] == ["a", "error"]
    assert header("nofields") == [["a", "zz", "error"], ["1", "2", ""]]
    assert header("noinput", with_input=False) == [["error"], ["only error"]]
    raising = next(j for j in engine.list_jobs() if j.action == "raising")
    log = log_text(engine, raising)
    assert "no header today" in log


NOINPUT = """
from kzconsole.plugin import task, STOP, OK, Next

SCRIPT = {}

@task("n", "script", description="plays SCRIPT[name]", output_header=["v"])
def script(ctx, it):
    step = 0 if it is None or not isinstance(it, int) else it
    seq = SCRIPT[ctx.account_id]
    if step >= len(seq):
        return STOP
    value = seq[step]
    if isinstance(value, Next):
        return Next(step + 1, value.result) if value.has_result else Next(step + 1)
    return Next(step + 1, value) if not isinstance(value, BaseException) else _raise(value)

def _raise(exc):
    raise exc

@task("n", "gen", description="a generator", output_header=["v"])
def gen(ctx):
    yield ["one"]
    yield [["two"], {"v": "three"}]
    yield "gen failed row"
"""


def run_noinput(engine_factory, plugin_dir, steps, action="script"):
    plugin_dir.write("n.py", NOINPUT)
    engine = engine_factory()
    mod = engine.catalog.task("n", "script").function.__globals__
    account = "a" * 32
    mod["SCRIPT"][account] = steps
    job = engine.add_job("n", action, account_id=account)
    final = engine.run_job(job.id)
    return final, output_csv(engine, final)


def test_noinput_return_values(engine_factory, plugin_dir):
    from kzconsole.plugin import Next

    final, out = run_noinput(
        engine_factory,
        plugin_dir,
        [
            None,  # success, nothing written
            "failed",  # failure, one row with error
            ["r1"],  # a row
            {"v": "d", "error": None},  # dict success
            {"v": "e", "error": "x"},  # dict failure
            [["m1"], ["m2"], {"v": "m3"}],  # each row written and counted
            [],  # not counted
            Next(None),  # not counted
            "",  # unspecified error
        ],
    )
    assert out == [
        ["v", "error"],
        ["", "failed"],
        ["r1", ""],
        ["d", ""],
        ["e", "x"],
        ["m1", ""],
        ["m2", ""],
        ["m3", ""],
        ["", "unspecified error"],
    ]
    assert (final.success_count, final.failure_count) == (6, 3)
    assert final.total_count is None
    assert final.status is JobStatus.PARTIAL


@pytest.mark.parametrize("bad, error", [(42, "invalid return value: 42"), (ValueError("nope"), "ValueError: nope")])
def test_noinput_invalid_or_raise_ends_the_job(engine_factory, plugin_dir, bad, error):
    final, out = run_noinput(engine_factory, plugin_dir, [["a"], bad, ["never"]])
    assert out == [["v", "error"], ["a", ""], ["", error]]
    assert final.status is JobStatus.PARTIAL


def test_noinput_nothing_to_do_is_success(engine_factory, plugin_dir):
    final, out = run_noinput(engine_factory, plugin_dir, [])
    assert out == [["v", "error"]]
    assert final.status is JobStatus.SUCCESS and final.success_count == 0


def test_generator_task(engine_factory, plugin_dir):
    final, out = run_noinput(engine_factory, plugin_dir, [], action="gen")
    assert out == [["v", "error"], ["one", ""], ["two", ""], ["three", ""], ["", "gen failed row"]]
    assert (final.success_count, final.failure_count, final.status) == (3, 1, JobStatus.PARTIAL)


FINISH = """
from kzconsole.plugin import task, Next, STOP

SEEN = []

def fin_rows(ctx, it):
    SEEN.append(it)
    return [["total", str(it)]]

def fin_raise(ctx, it):
    raise RuntimeError("flush failed")

def fin_str(ctx, it):
    return "could not flush"

@task("f", "sum", description="d", mandatory=["n"], output_header=["k", "v"], finish=fin_rows)
def sum_(ctx, it, row):
    total = (0 if not isinstance(it, int) else it) + int(row["n"])
    if row["n"] == "99":
        return STOP
    return Next(total)

@task("f", "raise", description="d", mandatory=["n"], finish=fin_raise)
def r(ctx, it, row):
    return None

@task("f", "str", description="d", mandatory=["n"], finish=fin_str)
def s(ctx, it, row):
    return None

@task("f", "noinput", description="d", finish=fin_rows, output_header=["k", "v"])
def ni(ctx, it):
    raise ValueError("first call fails")
"""


def test_finish_hook(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("f.py", FINISH)
    engine = engine_factory()
    src = write_csv(tmp_path / "in.csv", [["n"], ["1"], ["2"], ["99"], ["4"]])

    def run(action, with_input=True):
        job = engine.add_job("f", action, input=src if with_input else None)
        final = engine.run_job(job.id)
        return final, output_csv(engine, final)

    final, out = run("sum")
    assert out == [["k", "v", "error"], ["total", "3", ""]]  # state from before the STOP row
    assert (final.success_count, final.failure_count, final.status) == (2, 0, JobStatus.SUCCESS)

    final, out = run("raise")
    assert out[-1] == ["", "finish: RuntimeError: flush failed"]
    assert (final.success_count, final.failure_count, final.status) == (4, 1, JobStatus.PARTIAL)

    final, out = run("str")
    assert out[-1] == ["", "finish: could not flush"]
    assert final.status is JobStatus.PARTIAL

    final, out = run("noinput", with_input=False)  # finish runs after a noinput task raised
    assert out == [["k", "v", "error"], ["", "", "ValueError: first call fails"], ["total", "INIT", ""]]


def test_all_rows_failing_is_failure(engine_factory, plugin_dir, tmp_path):
    _, final, _ = run_cases(engine_factory, plugin_dir, tmp_path, ["str", "raise"])
    assert final.status is JobStatus.FAILURE


SLOW = """
import threading
from kzconsole.plugin import task

GATE = threading.Event()
CALLS = []

@task("s", "slow", description="d", mandatory=["n"])
def slow(ctx, it, row):
    CALLS.append(row["n"])
    if row["n"] == "2":
        GATE.wait(10)
    return None
"""


def test_operator_stop_keeps_output_and_counts(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("s.py", SLOW)
    engine = engine_factory()
    mod = engine.catalog.task("s", "slow").function.__globals__
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(1, 10)])
    job = engine.add_job("s", "slow", input=src)
    control = JobControl(0)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("final", engine.run_job(job.id, control=control)))
    t.start()
    while len(mod["CALLS"]) < 2:
        t.join(0.01)
    engine.stop_job(job.id)  # while row 2 runs: the job stops before row 3
    mod["GATE"].set()
    t.join(10)
    final = result["final"]
    assert final.status is JobStatus.STOPPED
    assert final.error == "stopped by operator"
    assert (final.success_count, final.failure_count) == (2, 0)
    assert output_csv(engine, final) == [["n", "error"], ["1", ""], ["2", ""]]


def test_pause_is_interrupted_by_stop_and_changeable(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("s.py", SLOW)
    engine = engine_factory()
    mod = engine.catalog.task("s", "slow").function.__globals__
    mod["GATE"].set()
    src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i)] for i in range(1, 10)])
    job = engine.add_job("s", "slow", input=src, wait_ms=60_000)
    control = JobControl(60_000)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("final", engine.run_job(job.id, control=control)))
    t.start()
    while len(mod["CALLS"]) < 1:
        t.join(0.01)
    engine.set_wait(job.id, 0)  # the minute-long pause ends now, the rest run without pause
    t.join(10)
    assert result["final"].status is JobStatus.SUCCESS
    assert engine.get_job(job.id).wait_after_row_ms == 0


def test_progress_events_and_checkpoints(engine_factory, plugin_dir, tmp_path):
    plugin_dir.write("cases.py", CASES_PLUGIN)
    engine = engine_factory(send_progress_after_processed=3)
    updates = []
    engine.events.subscribe(lambda ev: updates.append(ev) if isinstance(ev, JobProgressed) else None)
    src = write_csv(tmp_path / "in.csv", [["case"]] + [["ok"]] * 10)
    job = engine.add_job("t", "cases", input=src)
    final = engine.run_job(job.id)
    assert final.success_count == 10 and final.rows_done == 10
    assert updates and updates[-1].success == 10


def test_prints_go_to_the_job_log_even_without_a_final_newline(engine_factory, plugin_dir, tmp_path, capsys):
    plugin_dir.write(
        "p.py",
        """
import sys
from kzconsole.plugin import task

@task("p", "talk", description="prints", mandatory=["a"])
def talk(ctx, it, row):
    print("hello from", row["a"])
    sys.stdout.write("no newline at the end")
    return None
""",
    )
    engine = engine_factory()
    src = write_csv(tmp_path / "in.csv", [["a"], ["x"]])
    job = engine.add_job("p", "talk", input=src)
    final = engine.run_job(job.id)
    log = log_text(engine, final)
    assert "hello from x" in log and "no newline at the end" in log
    assert "hello from" not in capsys.readouterr().out
