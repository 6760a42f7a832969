"""What ``kzconsole triggers`` lists: every trigger with its bound functions (``source:function``,
load order), when it fires next and its last firing (contract 7's ``triggers --json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kzconsole.engine.cron import PASS, next_boundary
from kzconsole.engine.firing import label_of, labels_of
from kzconsole.plugin import CRON_TRIGGERS, DATABASE_TRIGGERS

if TYPE_CHECKING:
    from kzconsole.engine.triggers import TriggerEngine

__all__ = ["trigger_schedule"]


def trigger_schedule(triggers: TriggerEngine, *, enabled: bool = True) -> list[dict[str, Any]]:
    """The ``triggers`` list of ``kzconsole triggers --json``: ``minutely``, ``hourly``,
    ``daily``, ``databases`` (the pass: every database-bound function), then each database
    kind, each with its bound functions (``source:function``, load order), ``next_fire`` (Unix
    seconds, or null when triggers are disabled or a pass is running) and its ``last`` firing
    (the last pass for the database kinds). A trigger engine that is not running (a command
    line's) tells when the engines on the store will fire."""
    labels = labels_of(triggers.catalog)
    running = triggers.running
    now = triggers.clock.time()

    def last(trigger: str) -> dict[str, Any] | None:
        found = triggers.store.list_firings(trigger=trigger, limit=1)
        return found[0].public() if found else None

    def functions(kind: str) -> list[str]:
        return [label_of(labels, spec) for spec in triggers.catalog.triggers(kind)]

    out: list[dict[str, Any]] = []
    for name in CRON_TRIGGERS:
        nxt = None if not enabled else triggers.next_fire(name) if running else next_boundary(name, now)
        out.append({"name": name, "functions": functions(name), "next_fire": nxt, "last": last(name)})
    if not enabled:
        next_pass = None
    else:
        next_pass = triggers.next_fire(PASS) if running else _stored_next_pass(triggers, triggers.store.now())
    last_pass = last(PASS)
    every = list(dict.fromkeys(label for kind in DATABASE_TRIGGERS for label in functions(kind)))
    out.append({"name": PASS, "functions": every, "next_fire": next_pass, "last": last_pass})
    for kind in DATABASE_TRIGGERS:
        out.append({"name": kind, "functions": functions(kind), "next_fire": next_pass, "last": last_pass})
    return out


def _stored_next_pass(triggers: TriggerEngine, now: float) -> float | None:
    """When the next database pass is due, as a process that does not run triggers sees it:
    one interval after the end of the last pass or the start of the oldest live engine,
    whichever is later; None when a pass runs now or no engine will run one."""
    last_end: float | None = None
    for firing in triggers.store.list_firings(trigger=PASS, limit=20):
        if firing.status == "running":
            return None
        if firing.status != "skipped" and firing.ended is not None:
            last_end = firing.ended
            break
    alive = [lease.started for lease in triggers.store.engines() if lease.expires >= now]
    if alive:
        basis = min(alive) if last_end is None else max(last_end, min(alive))
        return basis + triggers.interval
    return None if last_end is None else last_end + triggers.interval
