"""What other threads may change while a job runs here: stop, shutdown, the pause."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kzconsole.engine.clock import Clock

__all__ = ["JobControl", "pause"]


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


def pause(
    control: JobControl,
    clock: Clock,
    wait_ms: int,
    *,
    checkpoint_at: Callable[[], float],
    checkpoint: Callable[[], None],
) -> None:
    """The pause after a row (contract 4.3): ``wait_ms``, or less when the control's pause is
    shortened meanwhile, and over at once on a stop or a shutdown. ``checkpoint`` is called
    whenever ``checkpoint_at()`` (a monotonic time) comes during the pause."""
    control.wakeup.clear()
    if control.stop.is_set() or control.shutdown.is_set():
        return
    deadline = clock.monotonic() + wait_ms / 1000.0
    while True:
        now = clock.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return
        checkpoint_in = checkpoint_at() - now
        if checkpoint_in <= 0:
            checkpoint()
            if control.stop.is_set() or control.shutdown.is_set():
                return
            continue
        if clock.wait(control.wakeup, min(remaining, checkpoint_in)):
            if control.stop.is_set() or control.shutdown.is_set():
                return
            control.wakeup.clear()
            # the pause may have been changed: recompute from the new value
            deadline = min(deadline, clock.monotonic() + control.wait_after_row_ms / 1000.0)
