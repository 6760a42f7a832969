"""Contract 2.3's table as one pure function: what each return value means for a CSV row, a
noinput call and the finish hook (the row loop applies the outcome; tests/engine/test_runner.py
checks the same through whole jobs)."""

from __future__ import annotations

import pytest

from kzconsole.engine.results import CSV, FINISH, KEEP, LIST_OF_ROWS_IN_CSV, NOINPUT, Header, Outcome, Raised, interpret
from kzconsole.plugin import OK, STOP, Next

HEADER = Header(["a", "b", "error"])
ROW = {"a": "1", "b": "2", "extra": "x"}


def csv(result):
    return interpret(CSV, result, HEADER, ROW)


def noinput(result):
    return interpret(NOINPUT, result, HEADER)


def finish(result):
    return interpret(FINISH, result, HEADER)


def rows(outcome: Outcome) -> list[list]:
    return [list(r) for r in outcome.rows]


@pytest.mark.parametrize("result", [None, OK])
def test_ok_writes_the_input_row_as_the_row_loops_fast_path_does(result):
    outcome = csv(result)
    assert rows(outcome) == [["1", "2", None]] and (outcome.success, outcome.failure) == (1, 0)
    assert outcome.state is KEEP and not outcome.end


@pytest.mark.parametrize(
    "result, expected",
    [
        ("bad", [["1", "2", "bad"]]),
        ("", [["1", "2", "unspecified error"]]),
        ({"a": "x", "error": "no"}, [["x", None, "no"]]),
        ([["x"], ["y"]], [["1", "2", LIST_OF_ROWS_IN_CSV]]),
        ([["x"], 3], [["1", "2", "invalid return value: [['x'], 3]"]]),
        (["1", "2", "3", "4"], [["1", "2", "row has 4 cells, the output header has 3"]]),
        (42, [["1", "2", "invalid return value: 42"]]),
    ],
)
def test_csv_failures(result, expected):
    outcome = csv(result)
    assert rows(outcome) == expected and (outcome.success, outcome.failure) == (0, 1)


@pytest.mark.parametrize(
    "result, expected",
    [(["x"], [["x", None, None]]), ({"a": "x", "error": ""}, [["x", None, ""]]), ([], []), (Next(5), [])],
)
def test_csv_successes(result, expected):
    outcome = csv(result)
    assert rows(outcome) == expected and (outcome.success, outcome.failure) == (1, 0)


def test_csv_stop_and_next():
    assert csv(STOP) == Outcome(end=True)
    assert csv(Next(7)).state == 7
    assert csv(Next(7, None)).rows == (["1", "2", None],)  # Next(state, None) is OK, not Next(state)
    stop_after = csv(Next(STOP, "bad"))
    assert stop_after.end and stop_after.state is KEEP and stop_after.failure == 1
    assert csv(Next(3, STOP)) == Outcome(state=3, end=True)


def test_csv_raise_fails_the_row_and_goes_on():
    outcome = csv(Raised(ValueError("nope")))
    assert rows(outcome) == [["1", "2", "ValueError: nope"]] and outcome.failure == 1 and not outcome.end
    assert csv(Raised(KeyError())).rows[0][2] == "KeyError"


def test_noinput_table():
    assert noinput(None) == Outcome(success=1)
    assert noinput(Next(1)) == Outcome(state=1)  # not counted
    assert noinput([]) == Outcome()
    assert rows(noinput("bad")) == [[None, None, "bad"]]
    many = noinput([["x"], {"b": "y", "error": "e"}, ["1", "2", "3", "4"]])
    assert rows(many) == [["x", None, None], [None, "y", "e"], [None, None, "row has 4 cells, the output header has 3"]]
    assert (many.success, many.failure, many.end) == (1, 2, False)
    mixed = noinput([["x"], 3])
    assert mixed.end and mixed.failure == 1
    assert noinput(object()).end
    raised = noinput(Raised(RuntimeError("x")))
    assert raised.end and rows(raised) == [[None, None, "RuntimeError: x"]]


def test_finish_rows_are_written_not_counted():
    assert finish(None) == Outcome()
    written = finish([["x"], {"a": "y"}])
    assert rows(written) == [["x", None, None], ["y", None, None]] and (written.success, written.failure) == (0, 0)
    assert rows(finish("flush failed")) == [[None, None, "finish: flush failed"]]
    assert finish("").rows[0][2] == "finish: unspecified error"
    assert finish(Raised(OSError("disk"))).rows[0][2] == "finish: OSError: disk"
    assert finish(5).failure == 1 and finish(5).rows[0][2] == "finish: invalid return value: 5"
