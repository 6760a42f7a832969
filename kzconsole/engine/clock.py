"""An injectable clock, so time-based code (cron alignment, throttles, leases) is tested without sleeping."""

from __future__ import annotations

import threading
import time


class Clock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event``; True if it was set."""
        return event.wait(seconds)


class FakeClock(Clock):
    """A clock that only moves when told to. ``wait`` advances time instead of sleeping."""

    def __init__(self, start: float = 1_764_320_400.0) -> None:
        self._now = start
        self._mono = 1000.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def set(self, now: float) -> None:
        with self._lock:
            self._mono += max(0.0, now - self._now)
            self._now = now

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.advance(seconds)
        return event.is_set()


SYSTEM_CLOCK = Clock()
