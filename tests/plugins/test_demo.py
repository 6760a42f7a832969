"""`kzconsole demo`: a data dir with Kazoo-like databases and jobs of every status, then the console."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from argparse import Namespace

from kzconsole.demo import demo_database_names, run_demo
from kzconsole.engine.databases import classify

STATUSES = {"pending", "success", "failure", "partial", "stopped", "internal_error"}


def kz(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kzconsole", *args], capture_output=True, text=True, timeout=120, check=check
    )


def test_demo_no_tui_creates_databases_and_jobs_of_every_status(tmp_path):
    target = tmp_path / "demo"
    done = kz("demo", "--no-tui", "--dir", str(target))
    assert done.stdout.strip() == str(target)

    names = sorted(p.relative_to(target / "databases").as_posix()[:-3] for p in (target / "databases").rglob("*.db"))
    assert names == demo_database_names()
    assert {classify(n) for n in names} == {"account", "account_mod", "system", "other"}
    assert any(n.endswith("-202601") and n.startswith("account/") for n in names)

    jobs = json.loads(kz("--data-dir", str(target), "tasks", "list", "--json").stdout)
    assert {j["status"] for j in jobs} == STATUSES
    assert {f"{j['category']}/{j['action']}" for j in jobs} >= {
        "skel/id2",
        "numbers/normalize",
        "numbers/dedupe",
        "numbers/summarize",
        "databases/list",
        "databases/compact",
        "jobs/export",
    }
    stopped = next(j for j in jobs if j["status"] == "stopped")
    assert (
        stopped["error"] == "stopped by operator"
        and 0 < stopped["success_count"] + stopped["failure_count"] < stopped["total_count"]
    )
    broken = next(j for j in jobs if j["status"] == "internal_error")
    assert "cannot read the input" in broken["error"]

    # Some databases still have free pages, so a pass or `databases compact` has work to show.
    listing = kz("--data-dir", str(target), "tasks", "add", "databases", "list", "--wait-ms", "0", "--run", "--json")
    out = kz("--data-dir", str(target), "tasks", "output", json.loads(listing.stdout)["id"]).stdout.splitlines()
    assert any(int(line.split(",")[5]) > 0 for line in out[1:])


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    done = kz("demo", "--no-tui", "--dir", str(tmp_path), check=False)
    assert done.returncode == 2 and "is not empty" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_demo_opens_the_console_on_its_data_dir(tmp_path, monkeypatch):
    seen = {}

    def run_console(settings, *, clock=None, ascii=None):
        seen["settings"] = settings
        seen["ascii"] = ascii
        return 0

    monkeypatch.setitem(sys.modules, "kzconsole.app", types.SimpleNamespace(run_console=run_console))
    target = tmp_path / "d"
    code = run_demo(Namespace(no_tui=False, dir=str(target), config=None, data_dir=None, plugins=[]))
    assert code == 0
    settings = seen["settings"]
    assert settings.data_dir == target.resolve()
    assert settings.store_url == f"sqlite:///{target.resolve() / 'kzconsole.db'}"
    assert settings.databases_path == target.resolve() / "databases"


def test_demo_takes_the_global_data_dir_and_removes_its_own_temporary_folder(tmp_path, monkeypatch):
    """Issue 13.14: `kzconsole --data-dir D demo` ignored D, and a demo in a temporary folder left
    it behind after the console."""
    import tempfile

    seen = []
    monkeypatch.setitem(
        sys.modules,
        "kzconsole.app",
        types.SimpleNamespace(
            run_console=lambda settings, **kw: seen.append((settings.data_dir, kw.get("ascii"))) or 0
        ),
    )
    target = tmp_path / "mine"
    assert run_demo(Namespace(no_tui=False, dir=None, config=None, data_dir=str(target), plugins=[], ascii=True)) == 0
    assert seen[-1] == (target.resolve(), True) and (target / "kzconsole.db").exists()  # kept: the operator's
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert run_demo(Namespace(no_tui=False, dir=None, config=None, data_dir=None, plugins=[])) == 0
    used = seen[-1][0]
    assert str(used).startswith(str(tmp_path / "tmp")) and not used.exists()  # removed after the console
