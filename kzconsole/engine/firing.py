"""Running the functions bound to a trigger (contract 2.6): one after another, in load order;
an exception is recorded and logged and the next function still runs. What plugins print goes to
the log (``kzconsole.triggers.<trigger>``), never to the terminal or the console's screen.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.logs import bound_to_job
from kzconsole.plugin import Database, TriggerSpec

__all__ = ["Result", "labels_of", "label_of", "call_function", "run_cron", "run_pass"]

log = logging.getLogger("kzconsole.triggers")

# (functions, databases, status, reason) of a firing that ran.
Result = tuple[list[dict[str, Any]], list[dict[str, Any]], str, "str | None"]


def labels_of(catalog: Catalog) -> dict[TriggerSpec, str]:
    """``source:function`` of every bound function (contract 7: ``triggers --json``)."""
    labels: dict[TriggerSpec, str] = {}
    for src in catalog.sources():
        if not src.loaded:
            continue
        for spec in src.triggers:
            labels.setdefault(spec, f"{src.source}:{spec.function_name}")
    return labels


def label_of(labels: Mapping[TriggerSpec, str], spec: TriggerSpec) -> str:
    return labels.get(spec) or f"{spec.where.filename}:{spec.function_name}"


class _PrintLog:
    """What a plugin prints in a trigger thread becomes a log line. Logged with the routing
    suspended, so a log handler that writes to ``sys.stderr`` cannot feed the line back into
    itself."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        with bound_to_job(None):  # type: ignore[arg-type]
            self._logger.log(level, msg, *args, **kwargs)


def call_function(trigger: str, spec: TriggerSpec, args: tuple[Any, ...], label: str) -> tuple[bool, str | None, float]:
    """Run one bound function; (ok, error, seconds). Never raises."""
    logger = logging.getLogger(f"kzconsole.triggers.{trigger}")
    failure: BaseException | None = None
    started = time.perf_counter()
    with bound_to_job(_PrintLog(logger)):  # type: ignore[arg-type]
        try:
            spec.function(*args)
        # BaseException: sys.exit() in a plugin ends that function, not the firing thread.
        except BaseException as exc:  # noqa: BLE001
            failure = exc
    seconds = time.perf_counter() - started
    if failure is None:
        return True, None, seconds
    error = "".join(traceback.format_exception_only(type(failure), failure)).strip()
    where = f" on {args[0]}" if args else ""
    logger.error(
        "%s raised%s:\n%s",
        label,
        where,
        # tb_next: the traceback starts in the plugin, not in this method.
        "".join(
            traceback.format_exception(
                type(failure), failure, failure.__traceback__.tb_next if failure.__traceback__ else None
            )
        ).rstrip(),
    )
    return False, error, seconds


def run_cron(name: str, specs: Sequence[TriggerSpec], labels: Mapping[TriggerSpec, str]) -> Result:
    """Every function bound to a cron trigger, one after another."""
    functions = []
    for spec in specs:
        label = label_of(labels, spec)
        ok, error, seconds = call_function(name, spec, (), label)
        functions.append({"function": label, "ok": ok, "error": error, "seconds": round(seconds, 6)})
    failed = sum(1 for f in functions if not f["ok"])
    if failed:
        return functions, [], "failed", f"{failed} of {len(functions)} function(s) raised"
    return functions, [], "ok", None


def run_pass(
    databases_of: Callable[[], Sequence[Database]],
    bindings: Mapping[str, Sequence[TriggerSpec]],
    labels: Mapping[TriggerSpec, str],
    stopping: threading.Event,
) -> Result:
    """A database pass: each database (in name order) gets the functions bound to its kind; one
    failing database never stops the pass; ``stopping`` ends it before the next database."""
    try:
        databases = list(databases_of())
    except Exception as exc:
        log.exception("database pass: cannot list the databases")
        return [], [], "failed", f"cannot list the databases: {type(exc).__name__}: {exc}"
    # One entry per function (a pass may visit thousands of databases): its first error names
    # the database, and the count of the others follows.
    functions: dict[str, dict[str, Any]] = {}
    failures: dict[str, int] = {}
    visited: list[dict[str, Any]] = []
    reason = None
    for db in databases:
        if stopping.is_set():
            reason = f"stopped after {len(visited)} database(s): the engine is shutting down"
            break
        specs = bindings.get(db.kind, ())
        if not specs:
            continue  # nothing bound to this kind: the database is not visited
        db_ok = True
        for spec in specs:
            label = label_of(labels, spec)
            ok, error, seconds = call_function(db.kind, spec, (db,), label)
            entry = functions.setdefault(label, {"function": label, "ok": True, "error": None, "seconds": 0.0})
            entry["seconds"] += seconds
            if not ok:
                db_ok = False
                failures[label] = failures.get(label, 0) + 1
                if entry["ok"]:
                    entry["ok"] = False
                    entry["error"] = f"{db.name}: {error}"
        visited.append({"name": db.name, "kind": db.kind, "ok": db_ok})
    for label, entry in functions.items():
        entry["seconds"] = round(entry["seconds"], 6)
        more = failures.get(label, 0) - 1
        if more > 0:
            entry["error"] += f" (and {more} more database(s))"
    failed_dbs = sum(1 for d in visited if not d["ok"])
    if reason is None and failed_dbs:
        reason = f"{failed_dbs} of {len(visited)} database(s) had a function raise"
    status = "failed" if reason else "ok"
    return list(functions.values()), visited, status, reason
