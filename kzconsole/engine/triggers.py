"""Triggers: cron firings (``minutely``, ``hourly``, ``daily``), database passes, and their history.

Contract 2.6 and the ``triggers`` commands of section 7.

**Alignment** is :mod:`kzconsole.engine.cron`. Boundaries missed while the machine slept are not
replayed: the trigger fires once, for the latest one.

**Once per firing across engines.** Every firing has a key: the boundary it belongs to for a cron
trigger (``minutely:1764320460``), the moment the pass became due for a database pass
(``databases:1764406800``), a random one when started by hand (``minutely:manual:<hex>``). An
engine runs a firing only after :meth:`Store.begin_firing` accepted its key, which it does once per
store; engines sharing a store (SQLite here, PostgreSQL later) therefore run it once. A pass
becomes due ``browse_dbs_interval_s`` after the end of the last pass recorded in the store (or after
this engine started, whichever is later), so engines sharing a store agree on when and under which
key.

**Skip rule.** After claiming, a firing looks for an earlier firing of the same trigger still
``running`` in any engine (earlier = smaller id, so of two firings racing only the later one
defers). One whose engine is gone (its lease expired or removed, or its process dead) is closed as
``failed`` instead of blocking forever; if a live one remains, the new firing is recorded
``skipped`` with the reason, and nothing runs.

**Running.** The functions bound to a trigger are read from the catalog when the firing starts (a
hot reload during a firing changes the next one, not this one) and run in one background thread per
firing, as :mod:`kzconsole.engine.firing` says.

The scheduler is one :meth:`TriggerEngine.step` (given the time) plus a driver thread that calls it,
so tests drive it with any clock and never sleep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.cron import FIRE_NAMES, PASS, PERIODS, boundary_at, next_boundary, seconds_until
from kzconsole.engine.events import EventBus, TriggerFired
from kzconsole.engine.firing import Result, labels_of, run_cron, run_pass
from kzconsole.engine.leases import Lease, dead_owners
from kzconsole.engine.logs import install_stream_router
from kzconsole.engine.models import Firing
from kzconsole.engine.runtime import RuntimeScope
from kzconsole.engine.store.base import Store, StoreError
from kzconsole.plugin import CRON_TRIGGERS, DATABASE_TRIGGERS, Database

__all__ = ["PERIODS", "FIRE_NAMES", "PASS", "seconds_until", "next_boundary", "boundary_at", "TriggerEngine"]

log = logging.getLogger("kzconsole.triggers")

MAX_WAIT_S = 1.0  # the driver wakes at least this often: lease heartbeat, wall-clock jumps
PASS_RECHECK_S = 1.0  # while another engine's pass runs, look again this often
PRUNE_EVERY_S = 3600.0

# Firings being run by some TriggerEngine of this process (by id): a firing recorded ``running``
# under this process's node but absent here was left behind (its thread's store write failed).
_LOCAL_RUNNING: set[int] = set()
_LOCAL_LOCK = threading.Lock()


# --- helpers -----------------------------------------------------------------------------------


def _utc(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- the engine --------------------------------------------------------------------------------


class TriggerEngine:
    """Fires cron triggers and database passes for one engine (one node) on a store.

    ``start()``/``stop()`` run the driver thread; :meth:`step` is one scheduling pass at a given
    time (tests call it directly); :meth:`fire` starts a firing by hand. Firings run in their own
    threads; :meth:`wait_idle` waits for them.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        store: Store,
        node: str,
        events: EventBus | None = None,
        clock: Clock = SYSTEM_CLOCK,
        databases: Callable[[], Sequence[Database]] = list,
        browse_dbs_interval_s: float = 86400,
        history_days: float = 30,
        own_lease: bool = True,
        context: RuntimeScope = contextlib.nullcontext,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.node = node
        self.events = events or EventBus()
        self.clock = clock
        self._list_databases = databases
        self.interval = float(browse_dbs_interval_s)
        self.history_days = float(history_days)
        # Liveness of this node is what lets other engines tell a running firing from an abandoned
        # one. When the job scheduler runs on the same node it already heartbeats (and must be the
        # one to release the lease, after its jobs stopped); otherwise this engine does it.
        self.own_lease = own_lease
        self.lease = Lease(store, node, clock)
        self._context = context  # entered while bound functions run (the engine's plugin runtime)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._firings: dict[int, threading.Thread] = {}
        self._results: dict[int, Firing] = {}
        self.started_at: float | None = None
        self._next_cron: dict[str, float] = {}
        self._pass_due: float | None = None
        self._pass_running = False
        self._next_prune = 0.0

    # --- driver ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        install_stream_router()
        self._stop.clear()
        if self.own_lease:
            self.lease.renew(force=True)
        self.arm(self.clock.time())
        self._thread = threading.Thread(target=self._loop, name="kz-triggers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling; a pass stops before its next database; wait up to ``timeout`` for the
        firings in flight (a function cannot be interrupted: one still running is left to end in
        its daemon thread, and its firing stays ``running`` until another engine sees this one is
        gone)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.wait_idle(timeout)
        if self.own_lease:
            self.lease.release()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for every firing in flight to end; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._firings.values() if t is not threading.current_thread()]
            if not threads:
                return True
            for t in threads:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                t.join(left)
                if t.is_alive():
                    return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception:  # the driver must survive a store hiccup
                log.exception("trigger scheduling failed; retrying")
                delay = MAX_WAIT_S
            self._wake.wait(delay)
            self._wake.clear()

    # --- scheduling ------------------------------------------------------------------------------

    def arm(self, now: float) -> None:
        """Set the timers as at an engine start at ``now``: each cron trigger at its next boundary,
        the first database pass one interval later (contract 2.6)."""
        with self._lock:
            self.started_at = now
            self._next_cron = {name: next_boundary(name, now) for name in CRON_TRIGGERS}
            self._pass_due = now + self.interval
            self._next_prune = now

    def step(self, now: float | None = None) -> float:
        """Start whatever is due at ``now``; return the seconds until the next thing to do."""
        if now is None:
            now = self.clock.time()
        if self.started_at is None:
            self.arm(now)
        if self.own_lease:
            self.lease.renew()
        for name in CRON_TRIGGERS:
            if now >= self._next_cron[name]:
                boundary = boundary_at(name, now)
                self._next_cron[name] = boundary + PERIODS[name]
                self._begin(name, f"{name}:{int(boundary)}", now, manual=False)
        self._step_pass(now)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self.prune(now)
        deadlines = list(self._next_cron.values()) + [self._next_prune]
        with self._lock:
            if self._pass_due is not None and not self._pass_running:
                deadlines.append(self._pass_due)
        return min(MAX_WAIT_S, max(0.0, min(deadlines) - now))

    def _step_pass(self, now: float) -> None:
        with self._lock:
            due = self._pass_due
            if self._pass_running or due is None or now < due:
                return
        shared, busy = self._shared_pass_due(now)
        if busy:
            with self._lock:
                self._pass_due = now + PASS_RECHECK_S
            return
        if now < shared:
            with self._lock:
                self._pass_due = shared
            return
        with self._lock:
            self._pass_due = None  # re-armed when the pass ends
        started = self._begin(PASS, f"{PASS}:{int(shared)}", now, manual=False)
        if not isinstance(started, tuple):
            nothing_bound = started is None and not self._has_pass_bindings()
            with self._lock:
                if not self._pass_running:
                    # Nothing bound: no pass to run, look again one interval later. Claimed by
                    # another engine, or skipped behind one: look again soon to learn its end.
                    self._pass_due = now + (self.interval if nothing_bound else PASS_RECHECK_S)

    def _shared_pass_due(self, now: float) -> tuple[float, bool]:
        """(when the next pass is due, whether a pass is running in a live engine), from the
        store, so that every engine on it agrees on the time and on the key."""
        last_end: float | None = None
        busy = False
        is_dead: Callable[[str | None], bool] | None = None
        for firing in self.store.list_firings(trigger=PASS, limit=20):
            if firing.status == "running":
                if is_dead is None:
                    is_dead = self._is_dead(now)
                if not is_dead(firing.node) or self._is_local(firing):
                    busy = True
                continue
            if firing.status == "skipped" or firing.ended is None:
                continue
            last_end = firing.ended if last_end is None else max(last_end, firing.ended)
            break
        started = self.started_at if self.started_at is not None else now
        basis = started if last_end is None else max(last_end, started)
        return basis + self.interval, busy

    def next_fire(self, name: str) -> float | None:
        """When ``name`` (a cron trigger or ``databases``) fires next in this engine (Unix
        seconds); None while a pass runs (its successor is timed from its end)."""
        with self._lock:
            if name in PERIODS:
                return self._next_cron.get(name)
            if name == PASS or name in DATABASE_TRIGGERS:
                return None if self._pass_running else self._pass_due
        raise ValueError(f"unknown trigger {name!r}")

    def prune(self, now: float | None = None) -> int:
        """Forget finished firings older than ``history_days``."""
        now = self.clock.time() if now is None else now
        try:
            removed = self.store.prune_firings(now - self.history_days * 86400)
        except StoreError:
            log.exception("could not prune the trigger history")
            return 0
        if removed:
            log.info("trigger history: %d firing(s) older than %g day(s) removed", removed, self.history_days)
        return removed

    # --- firing ----------------------------------------------------------------------------------

    def fire(self, name: str, *, wait: bool = True) -> Firing | None:
        """Fire ``minutely``, ``hourly``, ``daily`` or ``databases`` now, whatever the schedule.
        With ``wait`` the firing runs to its end (this engine's lease is renewed meanwhile) and its
        record is returned (``skipped`` when the previous one still runs); otherwise it runs in the
        background and this returns None."""
        if name not in FIRE_NAMES:
            raise ValueError(f"unknown trigger {name!r}: use one of {', '.join(FIRE_NAMES)}")
        install_stream_router()
        if self.own_lease:
            self.lease.renew(force=True)
        now = self.clock.time()
        started = self._begin(name, f"{name}:manual:{uuid.uuid4().hex[:12]}", now, manual=True)
        if isinstance(started, Firing):  # skipped: nothing runs
            return started if wait else None
        assert started is not None  # a manual key is unique, so the claim cannot be lost
        firing, thread = started
        if not wait:
            return None
        try:
            while thread.is_alive():
                thread.join(0.25)
                if self.own_lease:
                    self.lease.renew()
        except KeyboardInterrupt:
            # The function cannot be interrupted; record what the operator did and leave.
            self._finish(firing, [], [], "failed", "interrupted by the operator (Ctrl-C)")
            raise
        with self._lock:
            return self._results.pop(firing.id, None) or self.store.list_firings(trigger=name, limit=1)[0]

    def _has_pass_bindings(self) -> bool:
        return any(self.catalog.triggers(kind) for kind in DATABASE_TRIGGERS)

    def _begin(
        self, name: str, key: str, now: float, *, manual: bool
    ) -> tuple[Firing, threading.Thread] | Firing | None:
        """Claim the firing ``key`` and start it in a thread. Returns (firing, thread); the
        finished record when it was skipped; None when there was nothing to run (a scheduled
        firing with nothing bound is not recorded) or another engine claimed it."""
        labels = labels_of(self.catalog)
        if name == PASS:
            bindings = {kind: tuple(self.catalog.triggers(kind)) for kind in DATABASE_TRIGGERS}
            if not manual and not any(bindings.values()):
                return None

            def work(firing: Firing) -> Result:
                return run_pass(self._list_databases, bindings, labels, self._stop)

        else:
            specs = tuple(self.catalog.triggers(name))
            if not manual and not specs:
                return None

            def work(firing: Firing) -> Result:
                return run_cron(name, specs, labels)

        firing = self.store.begin_firing(name, key, self.node, now)
        if firing is None:
            log.debug("firing %s is run by another engine", key)
            return None
        previous = self._previous_running(firing)
        if previous is not None:
            reason = (
                f"the previous {name} firing (started {_utc(previous.started)} UTC on "
                f"{previous.node}) was still running"
            )
            log.warning("%s firing %s skipped: %s", name, key, reason)
            return self._finish(firing, [], [], "skipped", reason)
        thread = threading.Thread(target=self._run, args=(firing, work), name=f"kz-trigger-{name}", daemon=True)
        with self._lock:
            self._firings[firing.id] = thread
            if name == PASS:
                self._pass_running = True
        with _LOCAL_LOCK:
            _LOCAL_RUNNING.add(firing.id)
        log.info("%s firing %s started", name, key)
        thread.start()
        return firing, thread

    def _is_dead(self, now: float) -> Callable[[str | None], bool]:
        # Leases are judged on the store's clock (contract 9); the stall rule on this engine's own.
        return dead_owners(self.store, self.store.now(), self.lease.host, trust_expiry=self.lease.trusts_expiry(now))

    def _is_local(self, firing: Firing) -> bool:
        with _LOCAL_LOCK:
            return firing.id in _LOCAL_RUNNING

    def _previous_running(self, mine: Firing) -> Firing | None:
        """The earliest firing of the same trigger, claimed before ``mine``, still running in a live
        engine. Firings left ``running`` by a gone engine are closed as failed on the way."""
        earlier = [f for f in self.store.running_firings(mine.trigger) if f.id < mine.id]
        if not earlier:
            return None
        is_dead = self._is_dead(self.clock.time())
        for firing in earlier:
            alive = self._is_local(firing) if firing.node == self.node else not is_dead(firing.node)
            if alive:
                return firing
            reason = f"the engine running it ({firing.node}) stopped before it ended"
            log.warning("%s firing %s: %s", firing.trigger, firing.key, reason)
            try:
                closed = self.store.end_firing(
                    dataclasses.replace(firing, ended=self.clock.time(), status="failed", reason=reason)
                )
            except StoreError:
                log.exception("could not close the abandoned firing %s", firing.key)
                continue
            if closed is not None:
                self.events.emit(TriggerFired(closed))
        return None

    def _run(self, firing: Firing, work: Callable[[Firing], Any]) -> None:
        functions: list[dict[str, Any]] = []
        databases: list[dict[str, Any]] = []
        status, reason = "failed", None
        try:
            with self._context():
                functions, databases, status, reason = work(firing)
        except BaseException as exc:  # a firing thread must always record its end
            reason = f"the firing failed: {type(exc).__name__}: {exc}"
            log.exception("%s firing %s failed", firing.trigger, firing.key)
        finally:
            self._finish(firing, functions, databases, status, reason)

    def _finish(
        self,
        firing: Firing,
        functions: Iterable[Mapping[str, Any]],
        databases: Iterable[Mapping[str, Any]],
        status: str,
        reason: str | None,
    ) -> Firing:
        ended = self.clock.time()
        final = dataclasses.replace(
            firing,
            ended=ended,
            status=status,
            reason=reason,
            functions=tuple(dict(f) for f in functions),
            databases=tuple(dict(d) for d in databases),
        )
        try:
            # As stored (None: the store has no such firing, and this one is the answer).
            final = self.store.end_firing(final) or final
        except StoreError:
            log.exception("could not record the end of %s firing %s", firing.trigger, firing.key)
        with _LOCAL_LOCK:
            _LOCAL_RUNNING.discard(firing.id)
        with self._lock:
            was_running = self._firings.pop(firing.id, None) is not None
            if was_running:
                self._results[firing.id] = final
                # Keep the results of firings nobody waited for from piling up.
                while len(self._results) > 64:
                    self._results.pop(next(iter(self._results)))
            if firing.trigger == PASS and was_running:
                self._pass_running = False
                self._pass_due = ended + self.interval  # counted from the END of the pass
        if status != "skipped":
            log.log(
                logging.INFO if status == "ok" else logging.WARNING,
                "%s firing %s ended %s%s",
                firing.trigger,
                firing.key,
                status,
                f": {reason}" if reason else "",
            )
        self.events.emit(TriggerFired(final))
        self._wake.set()
        return final
