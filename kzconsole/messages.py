"""Textual messages of the console.

The engine's events never reach widgets one by one: the :class:`~kzconsole.bridge.EngineBridge`
records the latest state per job, and the app drains it a few times a second into one
:class:`EngineUpdated` message carrying an immutable :class:`EngineBatch`. A flood of engine events
therefore costs the UI one message per tick, whatever the number of jobs or rows.

This module imports neither the engine nor the bridge: the payload is plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass(frozen=True)
class EngineBatch:
    """What happened in the engine since the previous tick (latest state per job)."""

    progress: dict[str, Any] = field(default_factory=dict)  # job id -> JobProgressed (latest)
    changed: dict[str, Any] = field(default_factory=dict)  # job id -> JobRecord (latest)
    deleted: frozenset[str] = frozenset()
    logged: frozenset[str] = frozenset()  # job ids with new log lines (read them from the file)
    finished: tuple[Any, ...] = ()  # JobRecords that reached a final status, in order
    fired: tuple[Any, ...] = ()  # trigger Firings
    store_changed: bool = False  # another connection changed the store: re-read what you show
    catalog_changed: bool = False

    @property
    def jobs_touched(self) -> bool:
        """Whether a job list must re-read (a job appeared, moved status, or vanished)."""
        return bool(self.changed or self.deleted or self.store_changed)

    @property
    def empty(self) -> bool:
        return not (
            self.progress or self.changed or self.deleted or self.logged or self.finished
            or self.fired or self.store_changed or self.catalog_changed
        )


class EngineUpdated(Message):
    """Sent by the app to the visible screen on each tick that had news from the engine."""

    def __init__(self, batch: EngineBatch) -> None:
        super().__init__()
        self.batch = batch


class EngineStarted(Message):
    """The embedded engine finished starting (plugins loaded, scheduler running), or failed."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error
