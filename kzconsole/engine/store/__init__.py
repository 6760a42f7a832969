"""Stores: where jobs, their files, engine leases and trigger firings live. See :mod:`.base`."""

from __future__ import annotations

from collections.abc import Callable

from kzconsole.engine.store.base import ApiKey, Fenced, Store, StoreChange, StoreError

__all__ = ["Store", "StoreError", "Fenced", "StoreChange", "ApiKey", "open_store"]


def open_store(url: str, *, clock: Callable[[], float] | None = None) -> Store:
    """Open the store named by ``url`` (``sqlite:///path/to/file.db``, or a PostgreSQL URL
    ``postgresql://user@host:port/database`` for a cluster). ``clock`` is the clock a SQLite
    store tells the time by (tests inject a fake one); a server store uses the server's."""
    if url.startswith("sqlite:///"):
        from kzconsole.engine.store.sqlite import SQLiteStore

        # sqlite:///var/lib/kz.db and sqlite:////var/lib/kz.db both name /var/lib/kz.db.
        path = "/" + url[len("sqlite:///") :].lstrip("/")
        return SQLiteStore(path) if clock is None else SQLiteStore(path, clock=clock)
    if url.startswith(("postgresql://", "postgres://")):
        from kzconsole.engine.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError("unsupported store url: expected sqlite:///PATH or postgresql://...")
