"""Databases: list them, compact them by hand, and compact the bloated ones on every database pass
(the original Kazoo compactor, for SQLite files).

The databases are those of the configured source (``[databases]``, contract 2.6), read through
``runtime().databases()``: for the ``directory`` source each is a SQLite file. Compacting one is
SQLite's ``VACUUM``, which rewrites the file without its free pages.

- ``list`` is a noinput task written as a generator: each ``yield`` is one output row.
- ``compact`` is a CSV task with a verifier on its optional ``force`` column.
- ``auto_compact`` is bound to ``all_dbs``: a database pass calls it once per database.

Options (``[plugin_options.databases]``)::

    compact_ratio = 0.2   # compact when free pages / all pages is above this (0 to 1)

Try it (in a ``kzconsole demo`` data dir)::

    kzconsole --data-dir DIR tasks add databases list --wait-ms 0 --run
    kzconsole --data-dir DIR tasks add databases compact --input examples/databases_compact.csv --wait-ms 0 --run
    kzconsole --data-dir DIR triggers run databases
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kzconsole.plugin import Database, runtime, task, trigger, verifier

log = logging.getLogger("kzconsole.plugins.databases")

DEFAULT_COMPACT_RATIO = 0.2
TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class PageStats:
    """What SQLite says about a file: its pages and how many of them are free."""

    page_size: int
    page_count: int
    free_pages: int

    @property
    def free_ratio(self) -> float:
        return self.free_pages / self.page_count if self.page_count else 0.0


def compact_ratio() -> float:
    """``[plugin_options.databases] compact_ratio``, checked."""
    value = runtime().options("databases").get("compact_ratio", DEFAULT_COMPACT_RATIO)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"plugin_options.databases.compact_ratio must be a number from 0 to 1, got {value!r}")
    return float(value)


def disk_size(path: Path) -> int:
    """Bytes the database takes on disk: its file plus its write-ahead log, if any."""
    size = os.path.getsize(path)
    try:
        size += os.path.getsize(f"{path}-wal")
    except OSError:
        pass
    return size


def page_stats(path: Path) -> PageStats:
    """Read the page counts without changing the file (a read-only connection)."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path} is not a SQLite database ({exc})") from None
    finally:
        conn.close()
    return PageStats(page_size, page_count, free_pages)


def vacuum(path: Path) -> tuple[int, int]:
    """Compact one SQLite file; return its disk size (before, after)."""
    before = disk_size(path)
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("VACUUM")
        # In WAL mode the rewritten pages sit in the log until a checkpoint folds them back.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"cannot compact {path}: {exc}") from None
    finally:
        conn.close()
    return before, disk_size(path)


def sqlite_file(db: Database) -> Path:
    """The database's SQLite file, or ValueError saying why it has none."""
    raw = getattr(db, "path", None)
    if raw is None:
        raise ValueError(f"database {db.name} has no file (the databases source is a list of names)")
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"database {db.name}: {path} does not exist")
    return path


# --- list: a noinput generator task -------------------------------------------------------------


@task(
    "databases",
    "list",
    description="Lists every database with its kind, file size and free pages",
    doc=(
        "One row per database of the configured source, in name order: its kind (account, "
        "account_mod, system, other), its file size in bytes, and SQLite's page size, page count, "
        "free pages and free ratio (free pages / pages). A file that is not a SQLite database is "
        "a failed row."
    ),
    output_header=["database", "kind", "size", "page_size", "page_count", "free_pages", "free_ratio"],
)
def list_databases(ctx):
    # A generator noinput task: each value yielded is handled as a return value, its end is STOP.
    for db in runtime().databases():
        row: dict[str, Any] = {"database": db.name, "kind": db.kind}
        if db.path is None:
            yield row  # a `list` source: names only
            continue
        try:
            path = sqlite_file(db)
            row["size"] = disk_size(path)
            stats = page_stats(path)
        except (OSError, ValueError) as exc:
            yield {**row, "error": str(exc)}  # a dict with an error: a failed row
            continue
        yield {
            **row,
            "page_size": stats.page_size,
            "page_count": stats.page_count,
            "free_pages": stats.free_pages,
            "free_ratio": f"{stats.free_ratio:.3f}",
        }


# --- compact: a CSV task -----------------------------------------------------------------------


@verifier("databases", "force")
def force(value: str) -> bool:
    """``force`` is a yes/no word; anything else fails the row as ``bad field(s): force``."""
    return value.strip().lower() in TRUE_WORDS | FALSE_WORDS


@task(
    "databases",
    "compact",
    description="Compacts the SQLite file of each database named in the input",
    doc=(
        "For each `database` (a name as `databases list` shows it) rewrites its SQLite file "
        "without free pages (VACUUM) and writes its disk size before and after, in bytes. Without "
        "`force`, a database whose free ratio is not above [plugin_options.databases] "
        "compact_ratio (default 0.2) is left alone (`result` says so); `force` = true compacts it "
        "anyway. An unknown database, or a file that is not SQLite, is a failed row."
    ),
    mandatory=["database"],
    optional=["force"],
    output_header=["database", "before_disk", "after_disk", "result"],
)
def compact(ctx, it, row):
    name = row["database"].strip()
    # Listed per row (cheap next to the default pause between rows), so a database created while
    # the job runs is found too.
    known = {db.name: db for db in runtime().databases()}
    db = known.get(name)
    if db is None:
        return f"no database named {name!r} in the configured source"
    try:
        path = sqlite_file(db)
        forced = (row.get("force") or "false").strip().lower() in TRUE_WORDS
        if not forced:
            ratio, threshold = page_stats(path).free_ratio, compact_ratio()
            if ratio <= threshold:
                size = disk_size(path)
                return [
                    name,
                    size,
                    size,
                    f"skipped: free ratio {ratio:.3f} is not above {threshold:g} (force=true compacts anyway)",
                ]
        before, after = vacuum(path)
    except (OSError, ValueError) as exc:
        return str(exc)  # a str is a failed row: the input row is written with it in `error`
    ctx.log.info("compacted %s: before_disk=%d after_disk=%d", name, before, after)
    return [name, before, after, "compacted"]


# --- a database trigger ------------------------------------------------------------------------


@trigger("all_dbs")
def auto_compact(db):
    """Compact ``db`` when its free ratio is above ``compact_ratio`` (called once per database in
    every database pass). An exception marks this database as failed in the firing's record."""
    if getattr(db, "path", None) is None:
        return  # a `list` source has no files to compact
    path = sqlite_file(db)
    stats = page_stats(path)
    if stats.free_ratio <= compact_ratio():
        return
    before, after = vacuum(path)
    log.info("compacted database=%s before_disk=%d after_disk=%d", db.name, before, after)
