"""The built-in `databases` plugin: `list`, `compact` on examples/databases_compact.csv, and the
`all_dbs` trigger of a database pass, on SQLite databases named as a Kazoo cluster's (the demo's)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from kzconsole.demo import DEMO_ACCOUNTS, account_db, create_databases, demo_database_names
from kzconsole.engine import Engine, JobStatus
from kzconsole.engine.databases import classify
from tests.conftest import log_text, make_settings, output_csv, write_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BLOATED_ACCOUNT = account_db(DEMO_ACCOUNTS[0])


def pages(path: Path) -> tuple[int, int]:
    """(page_count, freelist_count) of a SQLite file."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA page_count").fetchone()[0], conn.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def make_engine(tmp_path):
    engines: list[Engine] = []

    def make(plugin_options: dict | None = None, **overrides) -> Engine:
        settings = make_settings(tmp_path).with_overrides(plugin_options=plugin_options or {}, **overrides)
        engine = Engine(settings)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def dbdir(tmp_path) -> Path:
    root = tmp_path / "data" / "databases"  # the default `directory` source of make_settings
    create_databases(root)
    return root


def db_file(root: Path, name: str) -> Path:
    return root / f"{name}.db"


def run(engine: Engine, action: str, source: Path | None = None):
    job = engine.add_job("databases", action, input=source)
    final = engine.run_job(job.id)
    return final, output_csv(engine, final)


# --- list ----------------------------------------------------------------------------------------


def test_list_every_database_with_kind_size_and_free_pages(make_engine, dbdir):
    final, out = run(make_engine(), "list")
    assert out[0] == ["database", "kind", "size", "page_size", "page_count", "free_pages", "free_ratio", "error"]
    names = demo_database_names()
    assert [r[0] for r in out[1:]] == names  # name order
    kinds = {r[1] for r in out[1:]}
    assert kinds == {"account", "account_mod", "system", "other"}
    for row in out[1:]:
        name, kind, size, page_size, page_count, free, ratio, error = row
        path = db_file(dbdir, name)
        assert kind == classify(name)
        assert int(size) == path.stat().st_size
        assert (int(page_count), int(free)) == pages(path)
        assert int(page_size) * int(page_count) == int(size)
        assert float(ratio) == pytest.approx(int(free) / int(page_count), abs=0.001)
        assert error == ""
    assert any(int(r[5]) > 0 for r in out[1:]) and any(int(r[5]) == 0 for r in out[1:])
    assert (final.success_count, final.failure_count, final.status) == (len(names), 0, JobStatus.SUCCESS)


def test_list_fails_a_file_that_is_not_sqlite(make_engine, dbdir):
    (dbdir / "broken.db").write_bytes(b"this is not a database" * 100)
    final, out = run(make_engine(), "list")
    broken = next(r for r in out[1:] if r[0] == "broken")
    assert broken[1] == "other" and broken[2] == "2200"
    assert "is not a SQLite database" in broken[-1]
    assert final.status is JobStatus.PARTIAL and final.failure_count == 1


def test_list_with_a_list_source_gives_names_only(make_engine):
    engine = make_engine(databases={"source": "list", "names": ["accounts", BLOATED_ACCOUNT]})
    final, out = run(engine, "list")
    assert out[1:] == [
        [BLOATED_ACCOUNT, "account", "", "", "", "", "", ""],
        ["accounts", "system", "", "", "", "", "", ""],
    ]
    assert final.status is JobStatus.SUCCESS


def test_list_with_no_databases_is_an_empty_success(make_engine):
    final, out = run(make_engine(), "list")
    assert len(out) == 1 and final.status is JobStatus.SUCCESS


# --- compact -------------------------------------------------------------------------------------


def test_compact_example(make_engine, dbdir):
    monthly = f"{BLOATED_ACCOUNT}-202601"
    sizes = {
        name: db_file(dbdir, name).stat().st_size for name in ("accounts", "system_config", BLOATED_ACCOUNT, monthly)
    }
    assert pages(db_file(dbdir, "accounts"))[1] == 0  # a tight database...
    assert pages(db_file(dbdir, BLOATED_ACCOUNT))[1] > 0  # ...and bloated ones
    engine = make_engine()
    final, out = run(engine, "compact", EXAMPLES / "databases_compact.csv")
    assert out[0] == ["database", "before_disk", "after_disk", "result", "error"]
    rows = {r[0]: r for r in out[1:]}
    assert rows["accounts"] == [
        "accounts",
        str(sizes["accounts"]),
        str(sizes["accounts"]),
        "skipped: free ratio 0.000 is not above 0.2 (force=true compacts anyway)",
        "",
    ]
    assert rows["system_config"][1:] == [str(sizes["system_config"]), str(sizes["system_config"]), "compacted", ""]
    for name in (BLOATED_ACCOUNT, monthly):  # no force needed: their free ratio is above 0.2
        before, after = int(rows[name][1]), int(rows[name][2])
        assert (before, rows[name][3]) == (sizes[name], "compacted")
        assert after < before and after == db_file(dbdir, name).stat().st_size
        assert pages(db_file(dbdir, name))[1] == 0
    assert rows["ratedeck"][-1] == "bad field(s): force"
    assert rows["no_such_db"][-1] == "no database named 'no_such_db' in the configured source"
    assert (final.success_count, final.failure_count, final.status) == (4, 2, JobStatus.PARTIAL)
    log = log_text(engine, final)
    assert f"compacted {BLOATED_ACCOUNT}: before_disk={sizes[BLOATED_ACCOUNT]}" in log


def test_compact_ratio_option_and_force(make_engine, dbdir, tmp_path):
    src = write_csv(tmp_path / "c.csv", [["database", "force"], [BLOATED_ACCOUNT, ""], ["tasks", "YES"]])
    before = db_file(dbdir, BLOATED_ACCOUNT).stat().st_size
    final, out = run(make_engine({"databases": {"compact_ratio": 0.9}}), "compact", src)
    assert out[1][3].startswith("skipped: free ratio 0.")
    assert out[1][3].endswith("is not above 0.9 (force=true compacts anyway)")
    assert db_file(dbdir, BLOATED_ACCOUNT).stat().st_size == before
    assert out[2][3] == "compacted" and int(out[2][2]) < int(out[2][1])  # forced, and bloated
    assert final.status is JobStatus.SUCCESS


def test_compact_failures(make_engine, dbdir, tmp_path):
    (dbdir / "broken.db").write_bytes(b"not sqlite" * 200)
    src = write_csv(tmp_path / "c.csv", [["database"], ["broken"], [BLOATED_ACCOUNT]])
    final, out = run(make_engine({"databases": {"compact_ratio": "lots"}}), "compact", src)
    assert "is not a SQLite database" in out[1][-1]
    assert out[2][-1] == "plugin_options.databases.compact_ratio must be a number from 0 to 1, got 'lots'"
    assert final.status is JobStatus.FAILURE

    listed = make_engine(databases={"source": "list", "names": ["accounts"]})
    src = write_csv(tmp_path / "l.csv", [["database", "force"], ["accounts", "true"]])
    final, out = run(listed, "compact", src)
    assert out[1][-1] == "database accounts has no file (the databases source is a list of names)"


# --- the all_dbs trigger -------------------------------------------------------------------------


def test_database_pass_compacts_bloated_sqlite_databases(make_engine, dbdir, caplog):
    before = {
        name: (db_file(dbdir, name).stat().st_size, pages(db_file(dbdir, name))) for name in demo_database_names()
    }
    engine = make_engine()
    assert (
        "kzconsole.plugins.databases:auto_compact"
        in next(t for t in engine.trigger_schedule() if t["name"] == "databases")["functions"]
    )
    with caplog.at_level(logging.INFO, logger="kzconsole.plugins.databases"):
        firing = engine.fire_trigger("databases")
    assert firing.status == "ok", firing
    assert [d["name"] for d in firing.databases] == demo_database_names()
    compacted = []
    for name, (size, (count, free)) in before.items():
        path = db_file(dbdir, name)
        if free / count > 0.2:
            assert pages(path)[1] == 0 and path.stat().st_size < size, name
            compacted.append(name)
            assert f"compacted database={name} before_disk={size} after_disk={path.stat().st_size}" in caplog.text
        else:
            assert path.stat().st_size == size, name
            assert f"database={name} " not in caplog.text
    assert BLOATED_ACCOUNT in compacted and "accounts" not in compacted


def test_database_pass_threshold_and_failures(make_engine, dbdir):
    (dbdir / "broken.db").write_bytes(b"not sqlite" * 200)
    size = db_file(dbdir, BLOATED_ACCOUNT).stat().st_size
    firing = make_engine({"databases": {"compact_ratio": 1}}).fire_trigger("databases")
    assert db_file(dbdir, BLOATED_ACCOUNT).stat().st_size == size  # nothing is above 100 % free
    assert firing.status == "failed"
    bad = [d for d in firing.databases if not d["ok"]]
    assert [d["name"] for d in bad] == ["broken"]
    (fn,) = firing.functions
    assert fn["ok"] is False and fn["error"].startswith("broken: ValueError:")
    assert "is not a SQLite database" in fn["error"]

    firing = make_engine({"databases": {"compact_ratio": -1}}).fire_trigger("databases")
    assert "compact_ratio must be a number from 0 to 1, got -1" in firing.functions[0]["error"]
