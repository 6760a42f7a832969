"""Bad input is refused up front (exit 2, a message naming what and where, never a traceback),
and with --json every error is still one JSON document on stdout (issue 11, items 2, 3, 5, 10)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kzconsole.engine import JobStatus


@pytest.fixture
def job(cli, tmp_path):
    """A finished job with an output."""
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    job = cli.json("tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", "0", "--run")
    assert job["status"] == "success"
    return job


def refused(cli, *args, says=(), input=None):
    """Run a bad command twice (text, then --json): exit 2 both times, the message on stderr
    naming each of ``says``, nothing on stdout as text, {"error": ...} as JSON."""
    proc = cli(*args, check=2, input=input)
    assert proc.stdout == b""
    message = proc.stderr.decode()
    for word in says:
        assert word in message, message
    doc = json.loads(cli(*args, "--json", check=2, input=input).stdout)
    assert set(doc) == {"error"} and all(word in doc["error"] for word in says), doc
    return message


def test_an_unknown_status_is_bad_usage_naming_the_valid_ones(cli, job):
    message = refused(cli, "tasks", "list", "--status", "bogus", says=["--status", "'bogus'"])
    for status in JobStatus:
        assert status.value in message
    assert [j["id"] for j in cli.json("tasks", "list", "--status", "success")] == [job["id"]]


def test_the_listed_statuses_are_the_engines(cli):
    from kzconsole.cli.tasks import STATUSES

    assert tuple(s.value for s in JobStatus) == STATUSES
    assert all(s in cli("tasks", "list", "--help").stdout.decode() for s in STATUSES)


@pytest.mark.parametrize("limit", ["-1", "0", "x", "1.5"])
def test_a_bad_limit(cli, limit):
    refused(cli, "tasks", "list", "--limit", limit, says=["--limit", repr(limit)])


def test_a_huge_limit_means_every_job(cli, job):
    assert [j["id"] for j in cli.json("tasks", "list", "--limit", "99999999999999999999")] == [job["id"]]
    assert job["id"] in cli("tasks", "list", "--limit", "99999999999999999999").stdout.decode()


@pytest.mark.parametrize("value", ["99999999999999999999", "9223372036854775807", "86400001", "-1", "abc", ""])
def test_a_bad_pause_is_refused_and_nothing_is_stored(cli, tmp_path, value):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    refused(cli, "tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", value, says=["--wait-ms"])
    assert cli.json("tasks", "list") == []
    pending = cli.json("tasks", "add", "skel", "id2", "--input", str(src))
    refused(cli, "tasks", "set", pending["id"], "--wait-ms", value, says=["--wait-ms"])
    assert cli.json("tasks", "show", pending["id"])["wait_after_row_ms"] == 500


def test_the_largest_pause_is_a_day(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    job = cli.json("tasks", "add", "skel", "id2", "--input", str(src), "--wait-ms", "86400000")
    assert job["wait_after_row_ms"] == 86_400_000
    assert cli.json("tasks", "set", job["id"], "--wait-ms", "0")["wait_after_row_ms"] == 0


@pytest.mark.parametrize("kind", ["output", "input"])
def test_writing_a_file_into_a_folder_keeps_the_consoles_name(cli, job, tmp_path, kind):
    folder = tmp_path / "saved"
    folder.mkdir()
    cli("tasks", kind, job["id"], "-o", f"{folder}/")
    name = f"task_{'out' if kind == 'output' else 'in'}.{job['id']}.csv"
    assert (folder / name).read_bytes() == cli("tasks", kind, job["id"]).stdout
    assert [p.name for p in folder.iterdir()] == [name]


@pytest.mark.parametrize("kind", ["output", "input"])
def test_writing_a_file_where_it_cannot_go(cli, job, tmp_path, kind):
    for bad in ("/nonexistent/x.csv", f"{tmp_path}/missing/"):
        message = cli("tasks", kind, job["id"], "-o", bad, check=2).stderr.decode()
        assert f"-o {bad}" in message and "no such folder" in message


def test_writing_a_file_where_it_is_not_allowed(cli, job, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # /sys refuses new files even to root, who may write in `locked`.
    dest = Path("/sys/kz-x.csv") if os.geteuid() == 0 else locked / "x.csv"
    message = cli("tasks", "output", job["id"], "-o", str(dest), check=2).stderr.decode()
    assert f"-o {dest}" in message and "cannot write" in message
    assert list(dest.parent.glob("*kz-x*")) + list(locked.iterdir()) == []  # no half file left


def test_a_file_that_exists_is_replaced_whole(cli, job, tmp_path):
    dest = tmp_path / "out.csv"
    dest.write_text("old content that is longer than the output, to see it is not kept\n" * 10)
    cli("tasks", "output", job["id"], "-o", str(dest))
    assert dest.read_bytes() == b"Col1,Col2,error\na,b,\n"


def test_a_device_or_a_link_is_written_to_not_replaced(cli, job, tmp_path):
    import stat

    cli("tasks", "output", job["id"], "-o", "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    cli("tasks", "output", job["id"], "-o", str(link))
    assert link.is_symlink() and real.read_bytes() == b"Col1,Col2,error\na,b,\n"
    message = cli("tasks", "output", job["id"], "-o", "/dev/full", check=2).stderr.decode()
    assert "-o /dev/full: cannot write" in message and stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("option", ["--account", "--auth-account"])
@pytest.mark.parametrize("value", ["nothex", "123", "A" * 32, "a" * 31, "a" * 33, ""])
def test_account_ids_are_32_lowercase_hex(cli, tmp_path, option, value):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    message = refused(cli, "tasks", "add", "skel", "id2", "--input", str(src), option, value, says=[option])
    assert "32 lowercase hex" in message
    if value == "A" * 32:
        assert "lower case" in message
    assert cli.json("tasks", "list") == []


@pytest.mark.parametrize("command", [("list",), ("show", "0" * 32), ("input", "0" * 32), ("output", "0" * 32)])
def test_account_filters_are_checked_too(cli, command):
    # A typo in an account id used to read as "no jobs".
    message = cli("tasks", *command, "--account", "nothex", check=2).stderr.decode()
    assert "--account" in message and "32 lowercase hex" in message


def test_each_configured_account_applies_to_what_is_not_given(cli, tmp_path):
    account, auth, mine = "1" * 32, "2" * 32, "3" * 32
    config = tmp_path / "k.toml"
    config.write_text(f'[accounts]\naccount_id = "{account}"\nauth_account_id = "{auth}"\n')
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    add = ("--config", str(config), "tasks", "add", "skel", "id2", "--input", str(src))
    job = cli.json(*add, "--account", mine)
    assert (job["account_id"], job["auth_account_id"]) == (mine, auth)
    job = cli.json(*add, "--auth-account", mine)
    assert (job["account_id"], job["auth_account_id"]) == (account, mine)
    job = cli.json(*add)
    assert (job["account_id"], job["auth_account_id"]) == (account, auth)


@pytest.mark.parametrize(
    "given, says",
    [
        ("18923", "at least 6 characters"),
        ("ab", "at least 6 characters"),
        ("zzzzzzzz", "not a job id"),
        ("0" * 33, "not a job id"),
        ("../../etc", "not a job id"),
    ],
)
def test_a_bad_job_id_says_what_is_wrong(cli, given, says):
    for command in ("show", "start", "stop", "restart", "remove", "run"):
        message = refused(cli, "tasks", command, given, says=["ID", says])
        assert "no job" not in message


def test_a_job_id_in_upper_case_is_found(cli, job):
    assert cli.json("tasks", "show", job["id"].upper())["id"] == job["id"]
    assert cli.json("tasks", "show", job["id"][:6].upper())["id"] == job["id"]


def test_input_that_is_not_a_file(cli, tmp_path):
    message = refused(cli, "tasks", "add", "skel", "id2", "--input", str(tmp_path), says=["--input", "folder"])
    assert str(tmp_path) in message
    refused(
        cli,
        "tasks",
        "add",
        "skel",
        "id2",
        "--input",
        str(tmp_path / "nope.csv"),
        says=["--input", "nope.csv", "No such file"],
    )


@pytest.mark.parametrize(
    "content",
    [
        b'[{"col1": "a", "col2": "b"}]\n',
        b'[\n  {"col1": "a", "col2": "b"},\n  {"col1": "c", "col2": "d"}\n]\n',
        b'  \n{"data": {"records": [{"col1": "a", "col2": "b"}]}}',
    ],
)
def test_json_read_as_csv_names_format_json(cli, tmp_path, content):
    proc = cli("tasks", "add", "skel", "id2", "--input", "-", input=content, check=2)
    assert b"looks like JSON" in proc.stderr and b"--format json" in proc.stderr
    src = tmp_path / "records.txt"
    src.write_bytes(content)
    proc = cli("tasks", "add", "skel", "id2", "--input", str(src), "--json", check=2)
    assert b"--format json" in proc.stderr
    assert set(json.loads(proc.stdout)) == {"errors"}  # the contract's document, unchanged
    job = cli.json("tasks", "add", "skel", "id2", "--input", "-", "--format", "json", input=content)
    assert job["total_count"] >= 1


def test_csv_rejected_for_another_reason_gets_no_json_hint(cli):
    proc = cli("tasks", "add", "skel", "id2", "--input", "-", input=b"col1,other\nx,y\n", check=2)
    assert b"missing mandatory column" in proc.stderr and b"JSON" not in proc.stderr


def test_remove_says_removed(cli, job):
    assert cli("tasks", "remove", job["id"]).stdout.decode() == f"{job['id']} removed\n"


@pytest.mark.parametrize(
    "args, says",
    [
        (("tasks", "show", "0" * 32), "no job"),
        (("tasks", "help", "nope"), "unknown category"),
        (("tasks", "help", "skel", "nope"), "unknown task"),
        (("tasks", "frobnicate"), "invalid choice"),
        (("tasks", "add", "skel"), "required"),
        (("triggers", "run", "weekly"), "invalid choice"),
        (("plugins", "--bogus"), "unrecognized arguments"),
    ],
)
def test_every_error_is_a_json_document_with_json(cli, args, says):
    proc = cli(*args, "--json", check=2)
    doc = json.loads(proc.stdout)
    assert set(doc) == {"error"} and says in doc["error"], doc
    assert says in proc.stderr.decode()


def test_a_state_error_is_a_json_document_with_json(cli, job):
    doc = json.loads(cli("tasks", "start", job["id"], "--json", check=2).stdout)
    assert "already finished" in doc["error"]


def test_a_bad_config_is_a_json_document_with_json(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[tasks]\nmax_running = 'x'\n")
    doc = json.loads(cli("--config", str(bad), "tasks", "list", "--json", check=2).stdout)
    assert "tasks.max_running" in doc["error"] and "bad.toml" in doc["error"]


def test_a_data_dir_that_cannot_be_made(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = cli("--data-dir", str(blocker / "data"), "tasks", "list", "--json", check=2)
    assert str(blocker) in json.loads(proc.stdout)["error"]
