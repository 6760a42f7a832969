"""What other threads may change while a job runs here: stop, shutdown, the pause."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["JobControl"]


@dataclass
class JobControl:
    """Shared by a run and whoever drives it (the executor, ``tasks run``'s Ctrl-C)."""

    wait_after_row_ms: int
    stop: threading.Event = field(default_factory=threading.Event)  # operator stop
    shutdown: threading.Event = field(default_factory=threading.Event)  # engine stopping: leave it resumable
    wakeup: threading.Event = field(default_factory=threading.Event)  # interrupts the pause
    row_started: float | None = None  # monotonic time the current row (call) started; None between rows

    def request_stop(self) -> None:
        self.stop.set()
        self.wakeup.set()

    def request_shutdown(self) -> None:
        self.shutdown.set()
        self.wakeup.set()

    def set_wait(self, ms: int) -> None:
        self.wait_after_row_ms = ms
        self.wakeup.set()  # a shortened pause takes effect now
