"""Issue 7.6: security. Running as root, plugin files and folders that another user owns or that
group or others can write are refused with a clear message (as sshd's StrictModes does) unless
``plugins.strict_permissions = false``; the data dir is created 0700 and job files 0600 whatever
the umask; ``file_name`` and job ids given by users never reach the file system as paths; and
``--account`` scopes ``tasks list|show|input|output`` to that account's jobs.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from kzconsole.engine import Engine, JobNotFound, JobStatus
from tests.conftest import make_settings, write_csv
from tests.reliability.conftest import Site

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the strict permission check applies to root only")

PLUGIN = """
from kzconsole.plugin import task

@task("sec", "ok", description="A task", mandatory=["n"])
def ok(ctx, it, row):
    return None
"""

OTHER_UID = 54321


def make_engine(tmp_path: Path, plugin_dir: Path, *, strict: bool = True) -> Engine:
    settings = make_settings(tmp_path, plugin_dir).with_overrides(plugins={"strict_permissions": strict})
    return Engine(settings)


def plugin_file(tmp_path: Path, name: str = "sec.py", folder: str = "plugins") -> Path:
    directory = tmp_path / folder
    directory.mkdir(mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    path = directory / name
    path.write_text(PLUGIN)
    os.chmod(path, 0o644)
    return path


def load_error(engine: Engine, path: Path) -> str | None:
    source = next(s for s in engine.plugins() if s.source.endswith("/" + path.name))
    return None if source.loaded else source.error


# ----------------------------------------------------------------------- strict permissions


def _file_mode(mode):
    return lambda path: os.chmod(path, mode)


def _dir_mode(mode):
    return lambda path: os.chmod(path.parent, mode)


def _file_owner(path):
    os.chown(path, OTHER_UID, OTHER_UID)


def _dir_owner(path):
    os.chown(path.parent, OTHER_UID, OTHER_UID)


UNSAFE = {
    "file writable by group": (_file_mode(0o664), "plugin file", "writable by group (mode 0664)"),
    "file writable by others": (_file_mode(0o646), "plugin file", "writable by others (mode 0646)"),
    "file writable by all": (_file_mode(0o666), "plugin file", "writable by group and others (mode 0666)"),
    "folder writable by others": (_dir_mode(0o757), "plugin folder", "writable by others (mode 0757)"),
    "world-writable sticky folder": (_dir_mode(0o1777), "plugin folder", "writable by group and others (mode 1777)"),
    "file owned by another user": (_file_owner, "plugin file", f"belongs to uid {OTHER_UID}"),
    "folder owned by another user": (_dir_owner, "plugin folder", f"belongs to uid {OTHER_UID}"),
}


@as_root
@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_plugin_files_are_refused_as_root(tmp_path, case):
    path = plugin_file(tmp_path)
    make_unsafe, what, why = UNSAFE[case]
    make_unsafe(path)
    with make_engine(tmp_path, path.parent) as engine:
        assert engine.task("sec", "ok") is None
        error = load_error(engine, path)
        assert error is not None and error.startswith("PluginPermissionError: refused: the " + what)
        assert why in error and "plugins.strict_permissions = false" in error
    with make_engine(tmp_path, path.parent, strict=False) as engine:
        assert engine.task("sec", "ok") is not None  # the operator said so


@as_root
def test_symlink_to_a_file_in_an_unsafe_folder_is_refused(tmp_path):
    real = plugin_file(tmp_path, "real.py", folder="shared")
    os.chmod(real.parent, 0o777)
    (tmp_path / "plugins").mkdir(mode=0o755)
    link = tmp_path / "plugins" / "sec.py"
    link.symlink_to(real)
    with make_engine(tmp_path, link.parent) as engine:
        assert engine.task("sec", "ok") is None
        assert f"the plugin folder {real.parent} is writable by group and others" in load_error(engine, link)


@as_root
def test_safe_plugin_files_load_as_root(tmp_path):
    path = plugin_file(tmp_path)
    with make_engine(tmp_path, path.parent) as engine:
        assert engine.task("sec", "ok") is not None and load_error(engine, path) is None


def test_not_root_is_not_checked(tmp_path, monkeypatch):
    path = plugin_file(tmp_path)
    os.chmod(path, 0o666)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with make_engine(tmp_path, path.parent) as engine:
        assert engine.task("sec", "ok") is not None


@as_root
def test_refusal_through_the_command_line_and_the_config_switch(tmp_path):
    site = Site(tmp_path)
    path = site.plugin("sec.py", PLUGIN)
    os.chmod(path, 0o666)
    (listing,) = [p for p in site.cli_json("plugins") if p["source"].endswith("sec.py")]
    assert not listing["loaded"] and "writable by group and others" in listing["error"]
    src = write_csv(tmp_path / "in.csv", [["n"], ["1"]])
    proc = site.cli("tasks", "add", "sec", "ok", "--input", str(src), check=2)
    assert b"unknown task sec/ok" in proc.stderr
    assert b"refused: the plugin file" in proc.stderr  # the load error is logged, too
    site.config.write_text(site.config.read_text().replace("[plugins]", "[plugins]\nstrict_permissions = false"))
    assert site.cli_json("tasks", "add", "sec", "ok", "--input", str(src))["status"] == "pending"


# ------------------------------------------------------------------------------- file modes


def test_data_dir_0700_and_job_files_0600_whatever_the_umask(tmp_path, plugin_dir):
    plugin_dir.write("sec.py", PLUGIN)
    old = os.umask(0)
    try:
        engine = Engine(make_settings(tmp_path, plugin_dir.path))
        try:
            # Large enough for its files to live beside the database, not in it.
            src = write_csv(tmp_path / "in.csv", [["n"]] + [[str(i) * 20] for i in range(5000)])
            csv_job = engine.run_job(engine.add_job("sec", "ok", input=src).id)
            noinput = engine.run_job(engine.add_job("skel", "count").id)
            assert csv_job.status is JobStatus.SUCCESS and noinput.status is JobStatus.SUCCESS
            data = engine.data_dir
            assert stat.S_IMODE(data.stat().st_mode) == 0o700
            folder = data / "jobs" / csv_job.id
            files = [folder / "in.csv", folder / "out.csv"]
            files += [p for p in data.iterdir() if p.name.startswith("kzconsole.db")]
            assert len(files) >= 3
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            for path in files:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            # Nothing under the data dir is open to group or others.
            for path in data.rglob("*"):
                assert path.stat().st_mode & 0o077 == 0, path
        finally:
            engine.close()
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------ path traversal


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize(
    "given, kept",
    [
        ("../../x", "x"),
        ("/etc/passwd", "passwd"),
        ("a\\..\\..\\b.csv", "b.csv"),
        ("evil\nname\x00.csv", "evilname.csv"),
        ("..", "in.csv"),
        ("../", "in.csv"),
        ("plain name.csv", "plain name.csv"),
    ],
)
def test_file_name_is_sanitised(tmp_path, plugin_dir, given, kept):
    plugin_dir.write("sec.py", PLUGIN)
    src = write_csv(tmp_path / "in.csv", [["n"], ["1"]])
    with Engine(make_settings(tmp_path, plugin_dir.path)) as engine:
        engine.data_dir  # created
        before = files_under(tmp_path)
        job = engine.add_job("sec", "ok", input=src, file_name=given)
        assert job.file_name == kept
        final = engine.run_job(job.id)
        created = files_under(tmp_path) - before
        job_dir = engine.data_dir / "jobs" / job.id  # where a SQLite store keeps a job's larger files
        incoming = engine.data_dir / "incoming"  # where an input is checked; emptied after
        assert not any(incoming.iterdir())
        for path in created:
            assert (
                path in (job_dir, job_dir.parent, incoming)
                or job_dir in path.parents
                or path.name.startswith("kzconsole.db")
            ), path
        assert final.file_name == kept


def test_envelope_file_name_is_sanitised(tmp_path, plugin_dir):
    plugin_dir.write("sec.py", PLUGIN)
    doc = {"data": {"records": [{"n": "1"}], "file_name": "../../../tmp/evil.csv"}}
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    with Engine(make_settings(tmp_path, plugin_dir.path)) as engine:
        assert engine.add_job("sec", "ok", input=src).file_name == "evil.csv"


def test_job_ids_are_validated_before_they_become_paths(tmp_path, plugin_dir):
    with Engine(make_settings(tmp_path, plugin_dir.path)) as engine:
        for bad in ("../../etc/passwd", "..", "/etc", "a" * 31 + "/", "ABCDEF" * 6, ""):
            with pytest.raises(JobNotFound, match="no job"):
                engine.find_job(bad)
            with pytest.raises(JobNotFound, match="no job"):
                engine.get_job(bad)
            # Nor does the store open a file by it (a path-like id names no job's files).
            assert engine.store.open_file(bad, "input") is None


def test_command_line_refuses_path_like_job_ids(tmp_path):
    site = Site(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    site.cli("tasks", "list")
    relative = os.path.relpath(victim, site.data / "jobs")
    for command in (("output", relative), ("remove", relative), ("restart", relative), ("show", "../../etc/passwd")):
        proc = site.cli("tasks", *command, check=2)
        # Refused as bad usage before the store is opened (it said "no job" before issue 11.10).
        assert b"is not a job id" in proc.stderr, (command, proc.stderr)
    assert (victim / "keep.txt").read_text() == "keep"


def test_command_line_file_name_stays_in_the_job_dir(tmp_path):
    site = Site(tmp_path)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"], ["a", "b"]])
    before = files_under(tmp_path)
    job = site.cli_json("tasks", "add", "skel", "id2", "--input", str(src), "--file-name", "../../x", "--run")
    assert job["file_name"] == "x" and job["status"] == "success"
    for path in files_under(tmp_path) - before:
        assert path == site.data or site.data in path.parents, path
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


# ------------------------------------------------------------------------------------ accounts

ACCOUNT_A = "a" * 32
ACCOUNT_B = "b" * 32


def test_account_scopes_list_show_input_output(tmp_path):
    site = Site(tmp_path)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"], ["a", "b"]])

    def add(account):
        return site.cli_json("tasks", "add", "skel", "id2", "--input", str(src), "--account", account, "--run")["id"]

    a1, a2, b1 = add(ACCOUNT_A), add(ACCOUNT_A), add(ACCOUNT_B)
    assert {j["id"] for j in site.cli_json("tasks", "list", "--account", ACCOUNT_A)} == {a1, a2}
    assert [j["id"] for j in site.cli_json("tasks", "list", "--account", ACCOUNT_B)] == [b1]
    assert site.cli_json("tasks", "list", "--account", "c" * 32) == []
    assert {j["id"] for j in site.cli_json("tasks", "list")} == {a1, a2, b1}

    assert site.cli_json("tasks", "show", a1, "--account", ACCOUNT_A)["account_id"] == ACCOUNT_A
    assert site.cli("tasks", "output", a1, "--account", ACCOUNT_A).stdout == b"Col1,Col2,error\na,b,\n"
    assert site.cli("tasks", "input", a1, "--account", ACCOUNT_A).stdout == src.read_bytes()
    for command in ("show", "input", "output"):
        proc = site.cli("tasks", command, b1, "--account", ACCOUNT_A, check=2)
        assert b"no job" in proc.stderr and proc.stdout == b"", (command, proc)
    # A unique prefix of another account's job is no way around it.
    proc = site.cli("tasks", "output", b1[:8], "--account", ACCOUNT_A, check=2)
    assert b"no job" in proc.stderr and proc.stdout == b""
