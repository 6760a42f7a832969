"""The changes feed follower: one thread per engine that waits on the store's changes feed and
hands on what *other* store handles wrote (another process, another node; never this engine's own
job threads, which share its handle and so its origin).

The engine turns what it hands on into a :class:`~kzconsole.engine.events.StoreChanged` event
naming the jobs (the console re-reads those rows only) and into a wake-up of the executor, which
applies a stop or a pause change asked elsewhere to the job it runs, and of the scheduler when a job
was queued.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kzconsole.engine.store.base import Store, StoreChange, StoreError

log = logging.getLogger("kzconsole.engine.feed")

WAIT_S = 0.5  # one wait on the store at most this long: how soon stop() is noticed
RETRY_S = 1.0  # after a store error


class ChangeFeed:
    """Follows ``store``'s changes from the moment :meth:`start` is called and calls
    ``on_changes`` (in the feed's thread) with each batch of other handles' changes."""

    def __init__(self, store: Store, on_changes: Callable[[list[StoreChange]], None]) -> None:
        self.store = store
        self.on_changes = on_changes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.position: int | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        # The position is taken here, not in the thread: what is written after start() returns
        # is never missed.
        self.position = self.store.changes(None)[0]
        self._thread = threading.Thread(target=self._loop, name="kz-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(WAIT_S * 4)

    def _loop(self) -> None:
        own = self.store.origin
        position = self.position
        assert position is not None
        while not self._stop.is_set():
            try:
                position, found = self.store.wait_changes(position, WAIT_S)
            except StoreError:
                log.exception("reading the store's changes failed; retrying")
                self._stop.wait(RETRY_S)
                continue
            self.position = position
            others = [change for change in found if change.origin != own]
            if others and not self._stop.is_set():
                try:
                    self.on_changes(others)
                except Exception:  # the follower must survive its subscribers
                    log.exception("handling the store's changes failed")
