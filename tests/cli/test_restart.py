"""`kzconsole tasks restart ID --failed-only`: a new job whose input is the rows that failed
(issue 13, the command-line part)."""

from __future__ import annotations

import json
import textwrap

import pytest

PICKY = """
    from kzconsole.plugin import task


    @task("p", "picky", description="fails the rows whose value is bad", mandatory=["value"])
    def picky(ctx, it, row):
        if row["value"].startswith("bad"):
            return "a bad value"
        return None
"""


@pytest.fixture
def partial(cli, tmp_path):
    (cli.plugins / "picky.py").write_text(textwrap.dedent(PICKY))
    src = tmp_path / "in.csv"
    src.write_text('value,note\nok1,a\nbad1,"two\nlines"\nok2,c\nbad2,d\n')
    job = cli.json("tasks", "add", "p", "picky", "--input", str(src), "--wait-ms", "0", "--run", check=1)
    assert job["status"] == "partial" and job["failure_count"] == 2
    return job


def test_failed_only_replays_exactly_the_failed_rows(cli, partial):
    new_id = cli("tasks", "restart", partial["id"], "--failed-only").stdout.decode().strip()
    assert len(new_id) == 32 and new_id != partial["id"]
    assert cli("tasks", "input", new_id).stdout == b'value,note\nbad1,"two\nlines"\nbad2,d\n'
    new = cli.json("tasks", "show", new_id)
    assert new["total_count"] == 2 and new["queued_at"] is not None  # queued, as restart does
    assert (new["category"], new["action"], new["account_id"]) == ("p", "picky", partial["account_id"])
    # The whole input again without the flag.
    again = cli.json("tasks", "restart", partial["id"])
    assert again["total_count"] == 4


def test_failed_only_is_refused_when_there_is_nothing_to_replay(cli, partial, tmp_path):
    src = tmp_path / "good.csv"
    src.write_text("value\nok\n")
    good = cli.json("tasks", "add", "p", "picky", "--input", str(src), "--wait-ms", "0", "--run")
    doc = json.loads(cli("tasks", "restart", good["id"], "--failed-only", "--json", check=2).stdout)
    assert "nothing to run again" in doc["error"]
    pending = cli.json("tasks", "add", "p", "picky", "--input", str(src))
    message = cli("tasks", "restart", pending["id"], "--failed-only", check=2).stderr.decode()
    assert "not finished" in message
    assert len(cli.json("tasks", "list")) == 3  # nothing was created
