"""Stores: where jobs, engine leases and trigger firings live. See :mod:`.base`."""

from kzconsole.engine.store.base import Store, StoreError

__all__ = ["Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    """Open the store named by ``url`` (``sqlite:///path/to/file.db``)."""
    if url.startswith("sqlite:///"):
        from kzconsole.engine.store.sqlite import SQLiteStore

        # sqlite:///var/lib/kz.db and sqlite:////var/lib/kz.db both name /var/lib/kz.db.
        return SQLiteStore("/" + url[len("sqlite:///"):].lstrip("/"))
    raise StoreError(f"unsupported store url {url!r}: expected sqlite:///PATH")
