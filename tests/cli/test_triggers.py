"""`kzconsole triggers` through a subprocess: a firing in progress is listed as `running`
(issue 11.8, the decision written in docs/operations.md), and the pass warns about a missing
databases folder (issue 11.10)."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time

GATED = """
    import os
    import time
    from pathlib import Path

    from kzconsole.plugin import trigger

    GATE = Path(os.environ["KZ_TEST_GATE"])


    @trigger("account")
    def visit(db):
        # Holds the pass open until the test has looked at it.
        (GATE / "started").write_text(db.name)
        while not (GATE / "release").exists():
            time.sleep(0.01)
"""

ACCOUNT_DB = "0123456789abcdef0123456789abcdef"


def wait_for(condition, proc, what):
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing assumption
    while not condition():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_firing_in_progress_is_listed_as_running(cli, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    cli.env["KZ_TEST_GATE"] = str(gate)
    (cli.plugins / "gated.py").write_text(textwrap.dedent(GATED))
    databases = cli.data / "databases"
    databases.mkdir(parents=True)
    (databases / f"{ACCOUNT_DB}.db").write_bytes(b"")

    cmd = cli.argv("triggers", "run", "databases", "--json")
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env, cwd=cli.cwd)
    try:
        wait_for((gate / "started").exists, run, "the pass to start")
        doc = cli.json("triggers")
        running = doc["history"][0]
        assert (running["trigger"], running["status"], running["ended"]) == ("databases", "running", None)
        assert set(running) == {"trigger", "started", "ended", "status", "reason", "functions", "databases"}
        passes = {t["name"]: t for t in doc["triggers"]}
        assert passes["databases"]["last"]["status"] == "running"
        assert passes["databases"]["next_fire"] is None  # not due while one runs
        table = cli("triggers").stdout.decode()
        assert "databases running since" in table
    finally:
        (gate / "release").write_text("")
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert json.loads(out)["status"] == "ok"
    ended = cli.json("triggers")["history"][0]
    assert ended["status"] == "ok" and ended["ended"] is not None
    assert ended["databases"] == [{"name": ACCOUNT_DB, "kind": "account", "ok": True}]


def test_a_pass_over_a_missing_databases_folder_warns(cli, tmp_path):
    (cli.plugins / "visit.py").write_text(
        textwrap.dedent("""
        from kzconsole.plugin import trigger

        @trigger("account")
        def visit(db):
            pass
    """)
    )
    config = tmp_path / "k.toml"
    config.write_text('[databases]\npath = "nowhere"\n')
    proc = cli("--config", str(config), "triggers", "run", "databases", "--json")
    assert json.loads(proc.stdout)["databases"] == []
    assert f"databases.path {tmp_path / 'nowhere'} does not exist" in proc.stderr.decode()


def test_the_listing_as_text(cli):
    table = cli("triggers").stdout.decode()
    assert table.startswith("TRIGGER ") and "minutely" in table and "(no firing yet)" in table
    cli("triggers", "run", "minutely")
    table = cli("triggers").stdout.decode()
    assert "History (newest first):" in table and "minutely ok at " in table


def test_run_prints_the_record_and_logs_to_stderr(cli):
    (cli.plugins / "tick.py").write_text(
        textwrap.dedent("""
        from kzconsole.plugin import trigger

        @trigger("hourly")
        def tick():
            print("tick printed")
    """)
    )
    proc = cli("triggers", "--json", "run", "hourly")  # --json before the action counts too
    record = json.loads(proc.stdout)
    assert record["trigger"] == "hourly" and record["status"] == "ok"
    assert "tick printed" in proc.stderr.decode()
    text = cli("triggers", "run", "hourly").stdout.decode()
    assert text.startswith("hourly ok at ") and "tick.py:tick" in text
