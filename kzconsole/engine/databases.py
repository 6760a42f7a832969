"""Databases visited by a database pass: where they come from, and what kind each one is.

A *source* lists database names (contract 2.6, ``[databases]`` of the configuration):

- ``directory`` (the default): every file ending in ``.db`` under ``databases.path`` (default
  ``<data dir>/databases``), searched recursively; a database is named by its path relative to that
  folder, with ``/`` separators and without the ``.db`` suffix, so
  ``account/ab/cd/0123456789abcdef0123456789ab-202611.db`` is the database
  ``account/ab/cd/0123456789abcdef0123456789ab-202611``;
- ``list``: the names given in ``databases.names``.

Other sources (a CouchDB server, a PostgreSQL catalog) implement :class:`DatabaseSource` and are
added with :func:`register_source`.

The *kind* of a database follows the original's ``db_to_trigger`` (kazoo-original.md 7.4; first
match wins): ``account``, ``account_mod``, ``system`` or ``other``. See :func:`classify`.
"""

from __future__ import annotations

import abc
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kzconsole.plugin import Database

__all__ = [
    "ACCOUNT",
    "ACCOUNT_MOD",
    "SYSTEM",
    "OTHER",
    "KINDS",
    "SYSTEM_DATABASES",
    "classify",
    "DatabaseSource",
    "DirectorySource",
    "ListSource",
    "register_source",
    "source_for",
    "list_databases",
]

log = logging.getLogger("kzconsole.triggers")

ACCOUNT = "account"
ACCOUNT_MOD = "account_mod"
SYSTEM = "system"
OTHER = "other"
KINDS = (ACCOUNT, ACCOUNT_MOD, SYSTEM, OTHER)

# The original's ?KZ_SYSTEM_DBS, matched exactly (kazoo-original.md 7.4, point 3).
SYSTEM_DATABASES = frozenset(
    {
        "system_data",
        "system_config",
        "system_schemas",
        "system_auth",
        "system_media",
        "sip_auth",
        "accounts",
        "ratedeck",
        "faxes",
        "services",
        "offnet",
        "anonymous_cdrs",
        "port_requests",
        "dedicated_ips",
        "acdc",
        "oauth",
        "functions",
        "webhooks",
        "token_auth",
        "alerts",
        "tasks",
        "pending_notifications",
    }
)

# An account id is 32 hexadecimal characters. The original matches on length only; requiring hex
# keeps an unrelated 32-character name (a long system or plugin database) out of the account
# kind, and every id Kazoo generates is hex, so no real account database is lost.
_HEX = "[0-9a-fA-F]"
_ID_RAW = f"{_HEX}{{32}}"
# account/xx/yy/<28>: the id split 2/2/28 with a separator that is "/" unencoded, or "%2F" /
# "%2f" URL-encoded (the same spelling throughout, as in the original's MATCH_ACCOUNT_* macros).
_ID_SPLIT = (
    f"account/{_HEX}{{2}}/{_HEX}{{2}}/{_HEX}{{28}}"
    f"|account%2F{_HEX}{{2}}%2F{_HEX}{{2}}%2F{_HEX}{{28}}"
    f"|account%2f{_HEX}{{2}}%2f{_HEX}{{2}}%2f{_HEX}{{28}}"
)
_ACCOUNT_RE = re.compile(f"(?:{_ID_RAW}|{_ID_SPLIT})")
# -YYYYMM with a real month: the original only counts characters, but "-202613" is not a month
# and the contract says 01 to 12.
_ACCOUNT_MOD_RE = re.compile(f"(?:{_ID_RAW}|{_ID_SPLIT})-[0-9]{{4}}(?:0[1-9]|1[0-2])")


def classify(name: str) -> str:
    """The kind of a database name, first match wins (kazoo-original.md 7.4):

    1. ``account``: a raw 32-hex account id, ``account/xx/yy/<28 hex>`` (42 characters), or its
       URL-encoded forms ``account%2Fxx%2Fyy%2F<28 hex>`` and ``account%2fxx%2fyy%2f<28 hex>``;
    2. ``account_mod``: any of those followed by ``-YYYYMM`` (month 01 to 12);
    3. ``system``: one of :data:`SYSTEM_DATABASES`, exactly;
    4. ``other``: everything else (numbers databases, yearly ``-YYYY`` databases, ...).
    """
    if _ACCOUNT_RE.fullmatch(name):
        return ACCOUNT
    if _ACCOUNT_MOD_RE.fullmatch(name):
        return ACCOUNT_MOD
    if name in SYSTEM_DATABASES:
        return SYSTEM
    return OTHER


# --- sources ----------------------------------------------------------------------------------


class DatabaseSource(abc.ABC):
    """Where the databases of a pass come from. ``databases()`` may be called from any thread and
    must not raise for "nothing there yet" (an empty list is the answer); other failures raise
    with a message naming what could not be read."""

    @abc.abstractmethod
    def names(self) -> Iterable[tuple[str, Any]]:
        """(name, path or None) for each database, in any order."""

    def databases(self) -> list[Database]:
        """The databases, classified, in name order, each name once."""
        seen: dict[str, Database] = {}
        for name, path in self.names():
            if name and name not in seen:
                seen[name] = Database(name, classify(name), path)
        return [seen[name] for name in sorted(seen)]


class DirectorySource(DatabaseSource):
    """Every ``*.db`` file under ``root`` (recursively; symlinked files count, symlinked
    folders are not followed so a link loop cannot hang a pass)."""

    SUFFIX = ".db"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def names(self) -> Iterable[tuple[str, Any]]:
        if not self.root.is_dir():
            if self.root.exists():
                raise NotADirectoryError(f"databases.path {self.root} is not a folder")
            # Worth a warning: a pass over no database looks like a good one (status ok).
            log.warning("databases.path %s does not exist: no database to visit", self.root)
            return []
        found: list[tuple[str, Any]] = []

        def on_error(exc: OSError) -> None:
            # One unreadable sub-folder must not hide every other database from the pass.
            log.warning("database folder %s cannot be read: %s", exc.filename, exc.strerror or exc)

        for folder, _dirs, files in os.walk(self.root, onerror=on_error):
            for file in files:
                if not file.endswith(self.SUFFIX) or len(file) == len(self.SUFFIX):
                    continue
                path = Path(folder) / file
                relative = path.relative_to(self.root).as_posix()[: -len(self.SUFFIX)]
                found.append((relative, path))
        return found


class ListSource(DatabaseSource):
    """The names written in the configuration (``databases.names``)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = tuple(names)

    def names(self) -> Iterable[tuple[str, Any]]:
        return [(name, None) for name in self._names]


_SOURCES: dict[str, Callable[[Any], DatabaseSource]] = {
    "directory": lambda settings: DirectorySource(settings.databases_path),
    "list": lambda settings: ListSource(settings.databases.names),
}


def register_source(kind: str, factory: Callable[[Any], DatabaseSource]) -> None:
    """Make ``databases.source = kind`` build its source with ``factory(settings)``."""
    _SOURCES[kind] = factory


def source_for(settings: Any) -> DatabaseSource:
    """The source the configuration asks for."""
    kind = settings.databases.source
    factory = _SOURCES.get(kind)
    if factory is None:
        known = ", ".join(sorted(_SOURCES))
        raise ValueError(f"unknown databases.source {kind!r} (known: {known})")
    return factory(settings)


def list_databases(settings: Any) -> list[Database]:
    """The databases of the configured source, classified, in name order."""
    return source_for(settings).databases()
