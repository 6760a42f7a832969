"""Engine events and the bus that carries them to subscribers (the console's bridge, tests).

Events are immutable facts, named in the past tense. Subscribers run in the emitting thread, so
they must be quick (record the event and return); a failing subscriber is logged and never hurts
the emitter. High-rate events (progress, log lines) are throttled where they are produced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kzconsole.engine.models import Firing, JobRecord

log = logging.getLogger("kzconsole.engine")


@dataclass(frozen=True)
class Event:
    """What the engine tells its subscribers (the console's bridge, the API's followers)."""


@dataclass(frozen=True)
class JobChanged(Event):
    """A job's record changed in a way worth a repaint (created, queued, started, finished, ...)."""

    job: JobRecord


@dataclass(frozen=True)
class JobDeleted(Event):
    """A job and its files were removed through this engine."""

    job_id: str


@dataclass(frozen=True)
class JobProgressed(Event):
    """Live counts of a running job; at most a few per second per job."""

    job_id: str
    success: int
    failure: int
    rows_done: int
    total: int | None
    output_rows: int
    rows_per_second: float
    wait_after_row_ms: int
    stopping: bool = False
    row_seconds: float = 0.0  # how long the current row has been running


@dataclass(frozen=True)
class JobLogged(Event):
    """A line of a job's log (written by the plugin through ctx.log, its prints, or the engine)."""

    job_id: str
    line: str


@dataclass(frozen=True)
class StoreChanged(Event):
    """Another store handle (another process, another node) changed the store: views re-read
    what they show. ``job_ids``: the jobs whose records changed or were removed (re-read those
    rows only); ``kinds``: the kinds of change seen (``store.base.CHANGE_KINDS``); ``reset``
    among them means the changes could not all be told apart: re-read everything. Never emitted
    for this engine's own writes."""

    job_ids: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CatalogChanged(Event):
    """Plugins were (re)loaded or unloaded: ``version`` is the catalog's new version."""

    version: int


@dataclass(frozen=True)
class TriggerFired(Event):
    """This engine recorded the end of a firing (its own, or an abandoned one it closed)."""

    firing: Firing


@dataclass(frozen=True)
class EngineLogged(Event):
    """A line of the engine's own log (the console's Logs view)."""

    created: float
    level: str
    logger: str
    message: str


Subscriber = Callable[[Event], Any]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = self._subscribers + (callback,)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for callback in self._subscribers:  # a snapshot: subscribing never blocks emitters
            try:
                callback(event)
            except Exception:  # a subscriber must never break the engine
                log.exception("event subscriber %r failed on %s", callback, type(event).__name__)
