"""A reader that leaves ends a listing quietly (issue 11.7); every page of `--help` says what the
command does, what `ID` and `--json` are (11.9); what a queued job is, and where the store is
(11.9, 11.10)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest


def seed_jobs(cli, count):
    """Jobs straight into the store through its public interface (`tasks add` would take
    minutes for this many)."""
    from kzconsole.config import load_settings
    from kzconsole.engine import Engine, JobRecord, JobStatus

    with Engine(load_settings(None, data_dir=str(cli.data))) as engine:
        for n in range(count):
            engine.store.create_job(
                JobRecord(
                    id=uuid.uuid4().hex,
                    account_id="0" * 32,
                    auth_account_id="0" * 32,
                    category="skel",
                    action="count",
                    file_name=None,
                    status=JobStatus.PENDING,
                    created=1_700_000_000 + n,
                )
            )


@pytest.mark.parametrize("json_output", [False, True])
def test_a_reader_that_leaves_ends_the_listing_quietly(cli, json_output):
    # Enough jobs that the listing is still being read from the store when `head` leaves.
    seed_jobs(cli, 10_000)
    cmd = [sys.executable, "-m", "kzconsole", "--data-dir", str(cli.data), "tasks", "list"]
    cmd += ["--json"] if json_output else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env, cwd=cli.cwd)
    first = proc.stdout.readline()
    proc.stdout.readline()
    proc.stdout.close()  # `| head -2`
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert first.startswith(b"[" if json_output else b"ID ")
    assert err == b"", err.decode()
    assert proc.returncode == 0


COMMANDS_WITH_ID = ["start", "stop", "restart", "remove", "run", "set", "show", "input", "output"]
COMMANDS_WITH_JSON = ["help", "add", "start", "stop", "restart", "remove", "run", "set", "show", "list"]


@pytest.mark.parametrize("command", sorted(set(COMMANDS_WITH_ID + COMMANDS_WITH_JSON)))
def test_each_tasks_page_describes_the_command_its_id_and_json(cli, command):
    page = cli("tasks", command, "--help").stdout.decode()
    usage, _, rest = page.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert len(description) > 30 and not description.startswith(("positional", "options")), page
    words = " ".join(page.split())
    if command in COMMANDS_WITH_ID:
        assert "ID" in usage and "unique prefix of it, 6 characters or more" in words, page
    if command in COMMANDS_WITH_JSON:
        assert "--json print" in words and "as one JSON document on stdout" in words, page


@pytest.mark.parametrize(
    "page",
    [
        (),
        ("tasks",),
        ("triggers",),
        ("triggers", "run"),
        ("plugins",),
        ("engine",),
        ("tui",),
        ("demo",),
        ("config",),
        ("config", "init"),
    ],
)
def test_every_other_page_has_a_description(cli, page):
    text = cli(*page, "--help").stdout.decode()
    description = text.partition("\n\n")[2].split("\n\n")[0]
    assert len(description) > 20 and not description.startswith(("positional", "options")), text


def test_restart_says_it_queues(cli):
    assert "queue" in cli("tasks", "restart", "--help").stdout.decode()


def test_tasks_says_what_the_exit_codes_are(cli):
    page = cli("tasks", "--help").stdout.decode()
    assert "Exit codes: 0" in page and "1 the job ran" in page


def test_show_says_whether_a_pending_job_is_queued(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("col1,col2\na,b\n")
    job = cli.json("tasks", "add", "skel", "id2", "--input", str(src))
    shown = cli.json("tasks", "show", job["id"])
    assert shown["status"] == "pending" and shown["queued_at"] is None and shown["waiting"] is None
    assert "pending, not queued" in cli("tasks", "show", job["id"]).stdout.decode()
    # No engine runs on this store: the command says nothing will run it.
    started = cli("tasks", "start", job["id"])
    assert started.stdout.decode().startswith(f"{job['id']} queued: no engine is running on this store")
    assert started.stderr == b""
    shown = cli.json("tasks", "show", job["id"])
    assert shown["status"] == "pending" and isinstance(shown["queued_at"], int)
    assert shown["waiting"].startswith("no engine is running on this store")
    text = cli("tasks", "show", job["id"]).stdout.decode()
    assert "pending, queued for an engine" in text and "queued_at" in text
    assert "waiting " in text and "kzconsole engine" in text
    # The other keys are the record's, as `tasks list --json` gives it.
    listed = cli.json("tasks", "list")[0]
    assert {k: v for k, v in shown.items() if k not in ("queued_at", "waiting")} == listed


def test_store_url_relative_to_the_config_file(cli, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "k.toml").write_text('[store]\nurl = "sqlite:///stores/relative.db"\n')
    (etc / "stores").mkdir()
    cli("--config", str(etc / "k.toml"), "tasks", "add", "skel", "count")
    assert (etc / "stores" / "relative.db").is_file()
    assert len(cli.json("--config", str(etc / "k.toml"), "tasks", "list")) == 1


def test_an_unsupported_store_url_names_the_key_and_the_file(cli, tmp_path):
    config = tmp_path / "k.toml"
    config.write_text('[store]\nurl = "mysql://x"\n')
    proc = cli("--config", str(config), "tasks", "list", "--json", check=2)
    message = json.loads(proc.stdout)["error"]
    assert str(config) in message and "store.url" in message and "'mysql://x'" in message
