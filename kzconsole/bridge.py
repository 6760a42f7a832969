"""EngineBridge: the one place where engine events meet the console.

Engine threads call :meth:`EngineBridge._on_event` (an :class:`~kzconsole.engine.EventBus`
subscriber). It only records the latest state per job under a lock and returns: it never touches a
widget, never calls ``call_from_thread`` (which blocks the engine thread until the UI ran it) and
never posts one message per event (``post_message`` has no backpressure: a flood of them froze the
UI for seconds). The app calls :meth:`drain` on the UI thread at ``console.refresh_hz`` and hands
the resulting :class:`~kzconsole.messages.EngineBatch` to the screens on screen.

Besides each batch, the bridge keeps what a screen shown later needs at once: the live counts of
running jobs, and the engine's recent log records (the Logs view reads them with
:meth:`log_since`, so a view that was hidden catches up in one call).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from kzconsole.engine import (
    CatalogChanged,
    Engine,
    EngineLogged,
    Event,
    JobChanged,
    JobDeleted,
    JobLogged,
    JobProgressed,
    JobRecord,
    JobStatus,
    StoreChanged,
    TriggerFired,
)
from kzconsole.messages import EngineBatch

LOG_RECORDS = 10_000  # engine log records kept for the Logs view

LogRecord = tuple[float, str, str, str]  # (created, level, logger, message)


class EngineBridge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._reset()
        # Survive drains: the latest counts of jobs still running, so a screen shown later paints
        # live numbers at once instead of waiting for the next event.
        self._live: dict[str, JobProgressed] = {}
        self._log: deque[tuple[int, LogRecord]] = deque(maxlen=LOG_RECORDS)
        self._log_seq = 0
        self._executing: set[str] = set()  # jobs seen executing (to tell when one starts)

    def _reset(self) -> None:
        self._progress: dict[str, JobProgressed] = {}
        self._changed: dict[str, JobRecord] = {}
        self._deleted: set[str] = set()
        self._logged: set[str] = set()
        self._started: list[JobRecord] = []
        self._finished: list[JobRecord] = []
        self._fired = 0
        self._store_changed = False
        self._store_ids: set[str] | None = set()  # None: changes whose jobs are unknown
        self._store_kinds: set[str] = set()
        self._catalog_changed = False
        self._engine_logged = 0

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
                if job.status is JobStatus.EXECUTING and job.id not in self._executing:
                    self._executing.add(job.id)
                    self._started.append(job)
                if job.status.is_finished:
                    self._executing.discard(job.id)
                    self._live.pop(job.id, None)
                    self._progress.pop(job.id, None)
                    if previous is None or not previous.status.is_finished:
                        self._finished.append(job)
            elif isinstance(event, JobDeleted):
                self._deleted.add(event.job_id)
                self._executing.discard(event.job_id)
                self._changed.pop(event.job_id, None)
                self._progress.pop(event.job_id, None)
                self._live.pop(event.job_id, None)
            elif isinstance(event, StoreChanged):
                self._store_changed = True
                self._store_kinds.update(event.kinds)
                if "reset" in event.kinds or self._store_ids is None:
                    self._store_ids = None  # could not be told apart: re-read everything
                else:
                    self._store_ids.update(event.job_ids)
            elif isinstance(event, CatalogChanged):
                self._catalog_changed = True
            elif isinstance(event, TriggerFired):
                self._fired += 1
            elif isinstance(event, EngineLogged):
                self._log_seq += 1
                self._log.append((self._log_seq, (event.created, event.level, event.logger, event.message)))
                self._engine_logged += 1

    # --------------------------------------------------------------- UI thread

    def drain(self) -> EngineBatch | None:
        """Everything recorded since the last drain, or None when nothing happened."""
        with self._lock:
            if not (
                self._progress
                or self._changed
                or self._deleted
                or self._logged
                or self._started
                or self._finished
                or self._fired
                or self._store_changed
                or self._catalog_changed
                or self._engine_logged
            ):
                return None
            batch = EngineBatch(
                progress=self._progress,
                changed=self._changed,
                deleted=frozenset(self._deleted),
                logged=frozenset(self._logged),
                started=tuple(self._started),
                finished=tuple(self._finished),
                fired=self._fired,
                store_changed=self._store_changed,
                store_job_ids=None if self._store_ids is None else frozenset(self._store_ids),
                store_kinds=frozenset(self._store_kinds),
                catalog_changed=self._catalog_changed,
                engine_logged=self._engine_logged,
            )
            self._reset()
        return batch

    def live_progress(self, job_id: str) -> JobProgressed | None:
        with self._lock:
            return self._live.get(job_id)

    def log_since(self, seq: int) -> tuple[int, list[LogRecord]]:
        """The engine's log records after sequence number ``seq``: (last number, records)."""
        with self._lock:
            last = self._log_seq
            if seq >= last:
                return last, []
            return last, [record for n, record in self._log if n > seq]
