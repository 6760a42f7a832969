"""Engine leases: how an engine tells that another one is dead (contract 4.3).

Every engine holds a **lease** in the store (:class:`~kzconsole.engine.models.EngineLease`) that it
renews every second and that expires ``LEASE_TTL`` seconds later, on the store's clock. A job being
executed names its engine in ``owner``. A job is an orphan when its owner is None (released by a
graceful shutdown), has no lease, has an expired lease, or has a lease on *this* host whose process
id no longer exists (so a crash on the same machine is noticed at once, without waiting for the
lease to run out). An engine that could not renew its own lease for a while (a store locked by
another process) does not take an expired lease for a dead engine until it has renewed its own for
``LEASE_TTL`` again (:meth:`Lease.trusts_expiry`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from kzconsole import __version__
from kzconsole.engine.clock import Clock
from kzconsole.engine.hosts import pid_alive
from kzconsole.engine.models import EngineLease
from kzconsole.engine.store.base import Store, StoreError

log = logging.getLogger("kzconsole.engine.leases")

LEASE_TTL = 10.0  # seconds an engine is presumed alive after its last heartbeat
HEARTBEAT_S = 1.0
# A gap this long between two of our own heartbeats is a stall (the store was locked, this process
# was frozen): see Lease.trusts_expiry.
STALL_S = 3 * HEARTBEAT_S


class Lease:
    """This engine's lease: renewed by whoever drives it (the scheduler loop or a heartbeat thread).
    ``name`` is the node name and ``info`` what else ``kzconsole nodes`` shows (slots, running,
    tasks), read at each renewal."""

    def __init__(
        self, store: Store, node: str, clock: Clock, *, name: str = "", info: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.store = store
        self.node = node
        self.name = name
        self.info = info
        self.clock = clock
        self.host = socket.gethostname()
        self.started = clock.time()
        self._next = 0.0
        self._last_ok: float | None = None
        self.stalled_at: float | None = None  # when our last stall ended

    def renew(self, force: bool = False) -> None:
        now = self.clock.time()
        if force or now >= self._next:
            # Expiry on the store's clock: every engine judges leases on that one clock.
            stored_now = self.store.now()
            self.store.heartbeat(self._lease(stored_now + LEASE_TTL))
            done = self.clock.time()
            if done - now > HEARTBEAT_S:  # the write waited (a locked store): renew from now
                self.store.heartbeat(self._lease(self.store.now() + LEASE_TTL))
            if self._last_ok is not None and done - self._last_ok > STALL_S:
                self.stalled_at = done
            self._last_ok = done
            self._next = now + HEARTBEAT_S

    def _lease(self, expires: float) -> EngineLease:
        extra = self.info() if self.info is not None else {}
        return EngineLease(
            self.node, self.host, os.getpid(), self.started, expires, name=self.name, version=__version__, **extra
        )

    def trusts_expiry(self, now: float) -> bool:
        """Whether other engines' expired leases mean they are dead. Not for LEASE_TTL after we
        could not heartbeat ourselves for a while: whatever held us up (above all a store locked
        by another process) held them up too, and taking over a live engine's jobs would run
        their rows twice."""
        return self.stalled_at is None or now - self.stalled_at >= LEASE_TTL

    def release(self) -> None:
        try:
            self.store.remove_engine(self.node)
        except StoreError:
            log.exception("could not remove this engine's lease")


def dead_owners(
    store: Store, now: float, host: str, *, trust_expiry: bool = True, leases: list[EngineLease] | None = None
) -> Callable[[str | None], bool]:
    """A predicate telling whether a job owner is dead (see the module docstring). With
    ``trust_expiry`` False an expired lease alone does not make its engine dead. ``leases``:
    ``store.engines()`` when the caller has just read them."""
    by_node = {lease.node: lease for lease in (store.engines() if leases is None else leases)}

    def is_dead(owner: str | None) -> bool:
        if owner is None:
            return True
        lease = by_node.get(owner)
        if lease is None:
            return True
        if lease.host == host and not pid_alive(lease.pid):
            return True
        return trust_expiry and lease.expires < now

    return is_dead
