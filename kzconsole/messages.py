"""Textual messages of the console.

The engine's events never reach widgets one by one: the :class:`~kzconsole.bridge.EngineBridge`
records the latest state per job, and the app drains it a few times a second into one
:class:`EngineUpdated` message carrying an immutable :class:`EngineBatch`. A flood of engine events
therefore costs the UI one message per tick, whatever the number of jobs or rows.

The payload is plain data: the engine's records and events, which are immutable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from kzconsole.engine import JobProgressed, JobRecord


@dataclass(frozen=True)
class EngineBatch:
    """What happened in the engine since the previous tick (latest state per job)."""

    progress: dict[str, JobProgressed] = field(default_factory=dict)  # job id -> the latest
    changed: dict[str, JobRecord] = field(default_factory=dict)  # job id -> the latest record
    deleted: frozenset[str] = frozenset()
    logged: frozenset[str] = frozenset()  # job ids with new log lines (read them from the file)
    started: tuple[JobRecord, ...] = ()  # jobs that began executing, in order
    finished: tuple[JobRecord, ...] = ()  # jobs that reached a final status, in order
    fired: int = 0  # trigger firings recorded (the Triggers view re-reads the schedule)
    store_changed: bool = False  # another process changed the store: re-read what you show
    store_job_ids: frozenset[str] | None = frozenset()  # the jobs it changed (None: unknown, any)
    store_kinds: frozenset[str] = frozenset()  # what it changed: job, deleted, log, firing, engine, plugin
    catalog_changed: bool = False
    engine_logged: int = 0  # engine log records recorded (read them with bridge.log_since)

    @property
    def jobs_touched(self) -> bool:
        """Whether a job list must re-read (a job appeared, moved status, or vanished)."""
        return bool(self.changed or self.deleted or self.store_changed)

    @property
    def empty(self) -> bool:
        return not (
            self.progress
            or self.changed
            or self.deleted
            or self.logged
            or self.started
            or self.finished
            or self.fired
            or self.store_changed
            or self.catalog_changed
            or self.engine_logged
        )

    def store_touched(self, job_id: str) -> bool:
        """Whether another process changed this job (or changed jobs it did not name)."""
        if not self.store_changed:
            return False
        return self.store_job_ids is None or job_id in self.store_job_ids


@dataclass
class EngineUpdated(Message):
    """Sent by the app to the visible screen on each tick that had news from the engine."""

    batch: EngineBatch


@dataclass
class EngineStarted(Message):
    """The embedded engine finished starting (plugins loaded, scheduler running), or failed."""

    error: str | None = None


@dataclass
class ConsoleNotified(Message):
    """A message for the message line (posted by ``KzConsoleApp.notify``, from any thread)."""

    message: Any  # a kzconsole.widgets.message_line.ConsoleMessage
    timeout: float | None = None
