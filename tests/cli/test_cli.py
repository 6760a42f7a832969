"""The command line through a subprocess: contract section 7 (exit codes, --json shapes, messages)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap


def test_help_json_shapes(cli):
    doc = cli.json("tasks", "help")
    assert doc["skel"]["id2"] == {
        "description": "The identity task",
        "doc": "Takes 2 columns and returns them.",
        "expected_content": "text/csv",
        "mandatory": ["col1", "col2"],
        "optional": [],
    }
    # Narrowed, but always {category: {action: {...}}} (contract 7).
    assert cli.json("tasks", "help", "skel")["skel"]["count"]["expected_content"] is None
    assert cli.json("tasks", "help", "skel", "id1") == {"skel": {"id1": doc["skel"]["id1"]}}
    assert doc["skel"]["id1"]["optional"] == ["col1"]
    proc = cli("tasks", "help", "nope", check=2)
    assert b"unknown category" in proc.stderr


def test_add_run_show_list_output_remove(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\nc,d\n")
    job = cli.json("tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", "0")
    assert job["status"] == "pending" and job["total_count"] == 2 and job["file_name"] == "in.csv"
    assert set(job) == {
        "id",
        "account_id",
        "auth_account_id",
        "category",
        "action",
        "file_name",
        "status",
        "created",
        "start_timestamp",
        "end_timestamp",
        "total_count",
        "success_count",
        "failure_count",
        "node",
        "output_rows",
        "wait_after_row_ms",
        "error",
    }
    final = cli.json("tasks", "run", job["id"])
    assert final["status"] == "success" and final["success_count"] == 2
    assert cli.json("tasks", "show", job["id"])["status"] == "success"
    assert [j["id"] for j in cli.json("tasks", "list")] == [job["id"]]
    assert cli("tasks", "output", job["id"]).stdout == b"Col1,Col2,error\na,b,\nc,d,\n"
    assert cli("tasks", "input", job["id"]).stdout == src.read_bytes()
    out = tmp_path / "out.csv"
    cli("tasks", "output", job["id"], "-o", str(out))
    assert out.read_bytes() == b"Col1,Col2,error\na,b,\nc,d,\n"
    # finished: start refuses, stop refuses
    assert b"already finished" in cli("tasks", "start", job["id"], check=2).stderr
    assert b"not running" in cli("tasks", "stop", job["id"], check=2).stderr
    cli("tasks", "remove", job["id"])
    assert cli.json("tasks", "list") == []
    assert b"no job" in cli("tasks", "show", job["id"], check=2).stderr


def test_exit_1_when_the_job_does_not_succeed(cli, tmp_path):
    (cli.plugins / "f.py").write_text(
        textwrap.dedent("""
        from kzconsole.plugin import task
        @task("f", "fail", description="fails every row", mandatory=["a"])
        def fail(ctx, it, row):
            print("plugin output goes to the job log")
            return "nope"
    """)
    )
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n2\n")
    proc = cli("tasks", "add", "f", "fail", "--input", str(src), "--wait-ms", "0", "--run", "--json", check=1)
    final = json.loads(proc.stdout)  # plugin prints never mix into the JSON document
    assert final["status"] == "failure" and final["failure_count"] == 2


def test_rejections_are_reported_as_data(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,other\n,x\n1,\n")
    proc = cli("tasks", "add", "skel", "id2", "--input", str(src), "--json", check=2)
    assert json.loads(proc.stdout) == {
        "errors": {"missing_mandatory_fields": ["col2"], "missing_mandatory_values": {"lines": [2], "count": 1}}
    }
    assert json.loads(cli("tasks", "add", "no", "such", "--json", check=2).stdout) == {
        "errors": {"unknown_task": "no/such"}
    }
    assert json.loads(cli("tasks", "add", "skel", "id2", "--json", check=2).stdout) == {
        "errors": {"expected_content": "text/csv", "missing_mandatory_fields": ["col1", "col2"]}
    }
    assert json.loads(cli("tasks", "add", "skel", "count", "--input", str(src), "--json", check=2).stdout) == {
        "errors": {"expected_content": "none"}
    }
    bad = tmp_path / "bad.csv"
    bad.write_text('col1,col2\n"a,b\n')
    errors = json.loads(cli("tasks", "add", "skel", "id2", "--input", str(bad), "--json", check=2).stdout)
    assert errors["errors"]["csv"]["line"] == 2
    assert cli.json("tasks", "list") == []  # nothing stored
    assert not (cli.data / "jobs").exists() or not any((cli.data / "jobs").iterdir())


def test_stdin_and_json_input(cli, tmp_path):
    proc = cli(
        "tasks", "add", "skel", "id2", "--input", "-", "--file-name", "piped.csv", "--json", input=b"col1,col2\nx,y\n"
    )
    job = json.loads(proc.stdout)
    assert job["file_name"] == "piped.csv" and job["total_count"] == 1
    src = tmp_path / "in.json"
    src.write_text(
        json.dumps(
            {
                "data": {
                    "file_name": "env.csv",
                    "records": [{"col1": "a", "col2": 1.50}, {"col1": "b", "col2": True, "extra": None}],
                }
            }
        ).replace("1.5", "1.50")
    )
    job = cli.json("tasks", "add", "skel", "id2", "--input", str(src))
    assert job["file_name"] == "env.csv" and job["total_count"] == 2
    assert cli("tasks", "input", job["id"]).stdout == b"col1,col2,extra\na,1.50,\nb,true,\n"


def test_start_stop_set_restart_pending(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    job = cli.json("tasks", "add", "skel", "id2", "--input", str(src))
    assert cli.json("tasks", "set", job["id"], "--wait-ms", "7")["wait_after_row_ms"] == 7
    queued = cli.json("tasks", "start", job["id"])
    assert queued["status"] == "pending"  # waits for an engine
    stopped = cli.json("tasks", "stop", job["id"])
    assert stopped["status"] == "stopped" and stopped["error"] == "stopped by operator"
    new_id = cli("tasks", "restart", job["id"]).stdout.decode().strip()
    assert len(new_id) == 32 and new_id != job["id"]
    assert cli.json("tasks", "show", new_id)["total_count"] == 1
    assert len(cli.json("tasks", "list", "--status", "stopped")) == 1


def test_account_scoping(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    a, b = "a" * 32, "b" * 32
    ja = cli.json("tasks", "add", "skel", "id2", "--input", str(src), "--account", a)
    cli.json("tasks", "add", "skel", "id2", "--input", str(src), "--account", b)
    assert [j["id"] for j in cli.json("tasks", "list", "--account", a)] == [ja["id"]]
    # The configured (here: built-in) auth account applies when none is given; it used to be
    # --account's, which was wrong (issue 11.5).
    assert ja["auth_account_id"] == "0" * 32
    cli("tasks", "show", ja["id"], "--account", b, check=2)
    cli("tasks", "input", ja["id"], "--account", b, check=2)


def test_plugins_json_and_load_errors(cli):
    (cli.plugins / "broken.py").write_text("def oops(:\n")
    doc = cli.json("plugins")
    broken = next(p for p in doc if p["source"].endswith("broken.py"))
    assert broken["loaded"] is False and "SyntaxError" in broken["error"]
    skel = next(p for p in doc if p["source"] == "kzconsole.plugins.skel")
    assert skel["loaded"] and "skel/id2" in skel["tasks"] and skel["error"] is None
    assert set(skel) == {"source", "loaded", "loaded_at", "tasks", "verifiers", "triggers", "error"}


def test_bad_usage_and_config(cli, tmp_path):
    assert cli("tasks", "frobnicate", check=2).returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[tasks]\nmax_running = 'x'\n")
    proc = cli("--config", str(bad), "tasks", "list", check=2)
    assert b"tasks.max_running" in proc.stderr and b"bad.toml" in proc.stderr


def test_config_init(cli, tmp_path):
    target = tmp_path / "k.toml"
    cli("config", "init", str(target))
    assert "max_running" in target.read_text()
    cli("config", "init", str(target), check=2)  # never overwrites


def test_tasks_run_draws_a_progress_bar_on_a_terminal(cli, tmp_path):
    import pty

    src = tmp_path / "in.csv"
    src.write_text("col1,col2\n" + "".join(f"a{i},b{i}\n" for i in range(6)))
    master, slave = pty.openpty()
    cmd = cli.argv("tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", "150", "--run", "--json")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=cli.env, cwd=cli.cwd)
    os.close(slave)
    out, _ = proc.communicate(timeout=60)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0
    assert json.loads(out)["status"] == "success"
    assert b"/6" in seen and b"ok " in seen  # "[####------] 3/6  ok 3  failed 0 ..."


def test_no_progress_bar_when_not_a_terminal(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    proc = cli("tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", "0", "--run")
    assert proc.stderr == b""


def test_ctrl_c_on_tasks_run_stops_the_job(cli, tmp_path):
    import signal
    import time

    src = tmp_path / "in.csv"
    src.write_text("col1,col2\n" + "".join(f"a{i},b{i}\n" for i in range(200)))
    cmd = cli.argv("tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", "50", "--run", "--json")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env, cwd=cli.cwd)
    deadline = time.monotonic() + 30
    while not any(j["status"] == "executing" and j["success_count"] for j in cli.json("tasks", "list")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err  # the job ran but did not end `success`
    final = json.loads(out)
    assert final["status"] == "stopped" and final["error"] == "stopped by operator"
    assert 0 < final["success_count"] < 200
    assert cli("tasks", "output", final["id"]).stdout.count(b"\n") == final["output_rows"] + 1
