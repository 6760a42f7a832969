"""``kzconsole store copy FROM_URL TO_URL`` (contract 9, "moving up"): every job (its record and
its files), the trigger history and the API keys of one store copied into another, through the
Store interface only, so it works between any two backends (a node's SQLite store into the
cluster's PostgreSQL, and back).

Files are streamed a chunk at a time: constant memory whatever their size. A job that exists in
the target is never overwritten: it is left as it is and reported. A job whose output went to the
local fallback file (contract 4.3) has that file copied as its stored output, since the other
nodes of a cluster cannot read this one's disk. Copying twice copies what the first run did not.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

from kzconsole.engine.models import JobRecord
from kzconsole.engine.store.base import FILE_KINDS, Store, StoreError, redact_url

__all__ = ["copy_store", "copy_stores", "CopyReport"]

CHUNK = 1 << 20
PAGE = 500


class CopyReport(dict[str, Any]):
    """Counts of what was copied: ``jobs``, ``skipped`` (already in the target), ``bytes``,
    ``firings``, ``api_keys``; and ``skipped_ids`` (the first few skipped). ``target`` (an
    attribute, not a key) is the target's URL without its password, for messages."""

    target: str = ""


def _copy_stream(target: Store, job_id: str, kind: str, stream: BinaryIO) -> int:
    total = 0
    while True:
        data = stream.read(CHUNK)
        if not data:
            return total
        target.append_file(job_id, kind, data, offset=total)
        total += len(data)


def _copy_job(source: Store, target: Store, job: JobRecord) -> int:
    """Copy one job; returns the bytes copied. Raises StoreError("... already exists") when the
    target has it."""
    record = job
    fallback = job.output_path
    if fallback:
        record = job.replace(output_path=None)  # the output becomes the stored one
    stream = source.open_file(job.id, "input")
    try:
        target.create_job(record, input=stream)
    finally:
        if stream is not None:
            stream.close()
    copied = target.file_size(job.id, "input") or 0
    try:
        for kind in FILE_KINDS:
            if kind == "input":
                continue
            if kind == "output" and fallback and os.path.exists(fallback):
                with open(fallback, "rb") as local:
                    copied += _copy_stream(target, job.id, kind, local)
                continue
            stored = source.open_file(job.id, kind)
            if stored is None:
                continue
            with stored:
                copied += _copy_stream(target, job.id, kind, stored)
    except BaseException:
        # Both or neither: a job is copied whole or not at all (the next copy retries it).
        target.delete_job(job.id)
        raise
    return copied


def _is_duplicate(exc: StoreError) -> bool:
    return "already exists" in str(exc)


def copy_store(source: Store, target: Store, *, progress: Callable[[str, int], None] | None = None) -> CopyReport:
    report = CopyReport(jobs=0, skipped=0, bytes=0, firings=0, api_keys=0, skipped_ids=[])
    offset = 0
    while True:
        page = source.list_jobs(limit=PAGE, offset=offset)
        if not page:
            break
        offset += len(page)
        for job in page:
            try:
                report["bytes"] += _copy_job(source, target, job)
            except StoreError as exc:
                if not _is_duplicate(exc):
                    raise
                report["skipped"] += 1
                if len(report["skipped_ids"]) < 20:
                    report["skipped_ids"].append(job.id)
                continue
            report["jobs"] += 1
            if progress is not None:
                progress("jobs", report["jobs"])
    # Oldest first, so the target's ids (and newest-first order on ties) follow the source's.
    # A firing the target has (same trigger and key: copied before) is not recorded again, nor
    # counted: running the copy again reports what it added.
    known = {(f.trigger, f.key) for f in target.list_firings(limit=10**9)}
    for firing in reversed(source.list_firings(limit=10**9)):
        if (firing.trigger, firing.key) in known:
            continue
        target.record_firing(firing)
        report["firings"] += 1
    # API keys (by hash only: the keys themselves were never stored). Tokens are not copied: they
    # expire within the hour, and a client logs in again.
    for key in source.api_keys():
        if target.api_key(key.id) is None and target.api_key_by_hash(key.key_hash) is None:
            target.add_api_key(key)
            report["api_keys"] += 1
    if progress is not None:
        progress("done", report["jobs"])
    return report


def copy_stores(from_url: str, to_url: str, *, progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """:func:`copy_store` between the stores named by two URLs."""
    from kzconsole.engine.store import open_store

    if from_url == to_url:
        raise StoreError("FROM_URL and TO_URL name the same store")
    if from_url.startswith("sqlite:///"):
        # Opening a SQLite store creates it: a mistyped FROM_URL would copy nothing and succeed,
        # leaving an empty database (and its folder) behind.
        path = "/" + from_url[len("sqlite:///") :].lstrip("/")
        if not os.path.isfile(path):
            raise StoreError(f"FROM_URL: there is no SQLite store at {path}")
    with open_store(from_url) as source, open_store(to_url) as target:
        report = copy_store(source, target, progress=progress)
    report.target = redact_url(to_url)
    return report
