"""EngineBridge: the one place where engine events meet the console.

Engine threads call :meth:`EngineBridge._on_event` (an :class:`~kzconsole.engine.EventBus`
subscriber). It only records the latest state per job under a lock and returns: it never touches a
widget, never calls ``call_from_thread`` (which blocks the engine thread until the UI ran it) and
never posts one message per event (``post_message`` has no backpressure: a flood of them froze the
UI for seconds). The app calls :meth:`drain` on the UI thread at ``console.refresh_hz`` and hands
the resulting :class:`~kzconsole.messages.EngineBatch` to the visible screen.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from kzconsole.engine import (
    CatalogChanged,
    Engine,
    Event,
    JobChanged,
    JobDeleted,
    JobLogged,
    JobProgressed,
    JobRecord,
    StoreChanged,
    TriggerFired,
)
from kzconsole.messages import EngineBatch

# A burst of firings is capped: the Triggers view re-reads the history anyway.
_MAX_FIRED = 100


class EngineBridge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._reset()
        # Survives drains: the latest counts of jobs still running, so a screen shown later
        # paints live numbers at once instead of waiting for the next event.
        self._live: dict[str, JobProgressed] = {}

    def _reset(self) -> None:
        self._progress: dict[str, JobProgressed] = {}
        self._changed: dict[str, JobRecord] = {}
        self._deleted: set[str] = set()
        self._logged: set[str] = set()
        self._finished: list[JobRecord] = []
        self._fired: list[Any] = []
        self._store_changed = False
        self._catalog_changed = False

    # ----------------------------------------------------------- lifecycle

    def attach(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.engine.events.subscribe(self._on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ----------------------------------------------- engine threads (hot path)

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, JobProgressed):
                self._progress[event.job_id] = event
                self._live[event.job_id] = event
            elif isinstance(event, JobLogged):
                self._logged.add(event.job_id)
            elif isinstance(event, JobChanged):
                job = event.job
                previous = self._changed.get(job.id)
                self._changed[job.id] = job
                self._deleted.discard(job.id)
                if job.status.is_finished:
                    self._live.pop(job.id, None)
                    self._progress.pop(job.id, None)
                    if previous is None or not previous.status.is_finished:
                        self._finished.append(job)
            elif isinstance(event, JobDeleted):
                self._deleted.add(event.job_id)
                self._changed.pop(event.job_id, None)
                self._progress.pop(event.job_id, None)
                self._live.pop(event.job_id, None)
            elif isinstance(event, StoreChanged):
                self._store_changed = True
            elif isinstance(event, CatalogChanged):
                self._catalog_changed = True
            elif isinstance(event, TriggerFired):
                if len(self._fired) < _MAX_FIRED:
                    self._fired.append(event.firing)

    # --------------------------------------------------------------- UI thread

    def drain(self) -> EngineBatch | None:
        """Everything recorded since the last drain, or None when nothing happened."""
        with self._lock:
            if not (
                self._progress or self._changed or self._deleted or self._logged or self._finished
                or self._fired or self._store_changed or self._catalog_changed
            ):
                return None
            batch = EngineBatch(
                progress=self._progress,
                changed=self._changed,
                deleted=frozenset(self._deleted),
                logged=frozenset(self._logged),
                finished=tuple(self._finished),
                fired=tuple(self._fired),
                store_changed=self._store_changed,
                catalog_changed=self._catalog_changed,
            )
            self._reset()
        return batch

    def live_progress(self, job_id: str) -> JobProgressed | None:
        with self._lock:
            return self._live.get(job_id)

    def live_snapshot(self) -> dict[str, JobProgressed]:
        with self._lock:
            return dict(self._live)

    def forget(self, job_id: str) -> None:
        """Drop live counts of a job the store says is no longer running (ended elsewhere)."""
        with self._lock:
            self._live.pop(job_id, None)

    def row_seconds(self, job_id: str) -> float | None:
        """How long the current row of a job running in this process has been running (None
        between rows, or when another process runs it). Read live: while a row hangs, no
        progress event arrives to tell."""
        scheduler = self.engine.scheduler
        control = scheduler.control(job_id) if scheduler is not None else None
        if control is None:
            return None
        started = control.row_started
        if started is None:
            return None
        return max(0.0, self.engine.clock.monotonic() - started)
