"""``kzconsole demo``: a throwaway data dir that looks like a living system, then the console on it.

It holds SQLite databases named as a Kazoo cluster's are (system databases, account databases and
their monthly ``-YYYYMM`` databases, a few others), some with free pages so compaction has work,
and finished jobs of every status, made by really running the built-in plugins on the files of
``examples/`` (with no pause between rows), plus one pending job.

The demo never touches the user's own store or databases: whatever the configuration file says,
the store and the ``directory`` database source are those of the demo's data dir.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("kzconsole.demo")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Three accounts, as ids; their databases are account/xx/yy/<28 hex> (kazoo-original.md 7.4).
DEMO_ACCOUNTS = (
    "3f1c9b2e4d5a6c7b8e9f0a1b2c3d4e5f",
    "7a0e5b8c1d2f3a4b5c6d7e8f90a1b2c3",
    "c4d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8",
)
MONTHS = ("202601", "202602")
SYSTEM_DBS = ("accounts", "system_config", "system_data", "tasks", "ratedeck", "webhooks", "offnet")
OTHER_DBS = ("numbers/+1415", "numbers/+4420", "_users", "ratedeck_premium")

# Inputs used when examples/ is not next to the package (an installed wheel): the same rows.
_FALLBACK_INPUTS = {
    "skel_id2.csv": "col1,col2\nalpha,one\nbeta,two\ndelta,four\n",
    "numbers_normalize.csv": (
        "number,country,account_id\n+44 20 7946 0958,,\n07700 900123,GB,\n(415) 555-2671,US,\n"
        "06 12 34 56 78,FR,\n12ab,,\n020 7946 0958,UK,\n"
    ),
    "numbers_invalid.csv": "number,country\n12ab,\n+999 1234567,\n555-0100,\n07700 900123,GB\n",
    "numbers_dedupe.csv": "number,country\n+44 20 7946 0958,\n020 7946 0958,GB\n+1 415 555 2671,\n",
    "numbers_summarize.csv": "number,country\n+44 20 7946 0958,\n06 12 34 56 78,FR\n12ab,\n",
    "databases_compact.csv": "database,force\naccounts,\nsystem_config,true\nno_such_db,\n",
}


def account_db(account_id: str) -> str:
    return f"account/{account_id[:2]}/{account_id[2:4]}/{account_id[4:]}"


def demo_database_names() -> list[str]:
    names = list(SYSTEM_DBS) + list(OTHER_DBS)
    for account in DEMO_ACCOUNTS:
        names.append(account_db(account))
        names += [f"{account_db(account)}-{month}" for month in MONTHS]
    return sorted(names)


def make_database(path: Path, rows: int, deleted: int) -> None:
    """A small SQLite file with ``rows`` documents, ``deleted`` of them deleted again, so that
    their pages stay in the file as free pages (auto_vacuum is off by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        filler = "x" * 400
        conn.executemany(
            "INSERT OR REPLACE INTO docs VALUES (?, ?)",
            ((f"doc{i:06d}", f'{{"n": {i}, "pad": "{filler}"}}') for i in range(rows)),
        )
        conn.commit()
        if deleted:
            conn.execute("DELETE FROM docs WHERE rowid IN (SELECT rowid FROM docs LIMIT ?)", (deleted,))
            conn.commit()
    finally:
        conn.close()


def create_databases(root: Path) -> list[str]:
    """The demo's databases under ``root``; every third one (and every monthly one of the first
    account) has most of its pages free, the others are tight."""
    names = demo_database_names()
    for i, name in enumerate(names):
        bloated = i % 3 == 0 or name.startswith(account_db(DEMO_ACCOUNTS[0]))
        rows = 60 + 20 * (i % 5)
        make_database(root / f"{name}.db", rows=rows, deleted=rows * 3 // 4 if bloated else 0)
    return names


def _input(name: str, scratch: Path) -> Path:
    path = EXAMPLES / name
    if path.is_file():
        return path
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / name
    copy.write_text(_FALLBACK_INPUTS[name], encoding="utf-8")
    return copy


def _run(engine: Any, category: str, action: str, input: Path | None = None, **kw: Any) -> Any:
    job = engine.add_job(category, action, input=input, wait_ms=0, **kw)
    return engine.run_job(job.id)


def _run_and_stop(engine: Any, input: Path, after_rows: int) -> Any:
    """A job an operator stopped half-way: run it with a pause between rows, stop it once
    ``after_rows`` rows are recorded."""
    job = engine.add_job("numbers", "normalize", input=input, wait_ms=100)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.setdefault("job", engine.run_job(job.id)), daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and worker.is_alive():
        current = engine.get_job(job.id)
        if current.status.value == "executing" and current.success_count + current.failure_count >= after_rows:
            engine.stop_job(job.id)
            break
        worker.join(0.02)
    worker.join(30)
    return result.get("job") or engine.get_job(job.id)


def _run_with_lost_input(engine: Any, input: Path) -> Any:
    """A job the engine could not run (internal_error): its stored input vanished (a record
    whose input the store does not have, as a lost disk would leave it)."""
    job = engine.add_job("numbers", "dedupe", input=input, wait_ms=0)
    engine.remove_job(job.id)
    engine.store.create_job(job)  # the same record, without its input
    return engine.run_job(job.id)


def create_demo(data_dir: Path, *, config: str | None = None, plugins: list[str] | None = None) -> Any:
    """Fill ``data_dir`` with the demo's databases and jobs; return its Settings (the config file
    and plugin folders apply, but the store and the databases are always the demo's own)."""
    from kzconsole.config import load_settings
    from kzconsole.engine import Engine

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings(config, data_dir=str(data_dir), extra_plugin_paths=plugins or ()).with_overrides(
        store={"url": None}, databases={"source": "directory", "path": None}
    )
    create_databases(settings.databases_path)
    scratch = data_dir / "examples"
    # Checkpoints on every row, so the stopped job is caught after a known number of rows.
    run_settings = settings.with_overrides(tasks={"send_progress_after_processed": 1})
    with Engine(run_settings) as engine:
        _run(engine, "skel", "id2", _input("skel_id2.csv", scratch))  # success
        _run(engine, "numbers", "summarize", _input("numbers_summarize.csv", scratch))  # success
        _run(engine, "databases", "list")  # success
        _run(
            engine, "numbers", "normalize", _input("numbers_normalize.csv", scratch), account_id=DEMO_ACCOUNTS[1]
        )  # partial
        _run(engine, "numbers", "dedupe", _input("numbers_dedupe.csv", scratch))  # partial
        _run(engine, "databases", "compact", _input("databases_compact.csv", scratch))  # partial
        _run(engine, "numbers", "normalize", _input("numbers_invalid.csv", scratch))  # failure
        _run_and_stop(engine, _input("numbers_normalize.csv", scratch), after_rows=3)  # stopped
        _run_with_lost_input(engine, _input("numbers_dedupe.csv", scratch))  # internal_error
        _run(engine, "jobs", "export")  # success
        engine.add_job(
            "numbers", "summarize", input=_input("numbers_summarize.csv", scratch), account_id=DEMO_ACCOUNTS[2]
        )  # pending
        # A firing or two, so the triggers view has history (the trigger engine may be absent).
        for name in ("minutely", "daily"):
            try:
                engine.fire_trigger(name)
            except Exception as exc:  # noqa: BLE001 - the demo is still useful without it
                log.debug("demo: could not fire %s: %s", name, exc)
    return settings


def run_demo(args: Any) -> int:
    """``kzconsole demo [--no-tui] [--dir DIR] [--ascii]``; the global ``--data-dir`` works as ``--dir``.
    Without either, the demo lives in a temporary folder that is removed when the console exits."""
    target = getattr(args, "dir", None) or getattr(args, "data_dir", None)
    data_dir = Path(target).expanduser().resolve() if target else Path(tempfile.mkdtemp(prefix="kzconsole-demo-"))
    if target and data_dir.exists() and any(data_dir.iterdir()):
        sys.stderr.write(f"kzconsole: demo: {data_dir} is not empty; give an empty or new folder\n")
        return 2
    throwaway = not target and not getattr(args, "no_tui", False)
    try:
        settings = create_demo(data_dir, config=getattr(args, "config", None), plugins=getattr(args, "plugins", None))
        if getattr(args, "no_tui", False):
            print(data_dir)
            return 0
        try:
            from kzconsole.app import run_console
        except ImportError:
            print(data_dir)
            throwaway = False
            sys.stderr.write(
                "kzconsole: demo: the console is not available in this build; the demo data dir is above\n"
            )
            return 0
        sys.stderr.write(f"kzconsole demo: data dir {data_dir}\n")
        return run_console(settings, ascii=getattr(args, "ascii", None))
    finally:
        if throwaway:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
