"""Triggers: cron firings (``minutely``, ``hourly``, ``daily``), database passes, and their history.

Contract 2.6 and the ``triggers`` commands of section 7.

**Alignment.** A cron trigger fires at second 0 of each UTC minute, hour or day. The next firing is
always recomputed from the wall clock as the next multiple of the period (POSIX time has no leap
seconds, so a UTC day is exactly 86,400 s), never by adding a period to the previous firing: a
late wake-up, a slow firing or a suspended machine cannot make it drift. Boundaries missed while
the machine slept are not replayed: the trigger fires once, for the latest one.

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

**Running.** The functions bound to a trigger (read from the catalog when the firing starts, so a
hot reload during a firing changes the next one, not this one) run one after another in load
order in one background thread per firing. An exception is recorded and logged and the next
function still runs. In a database pass each database gets the functions bound to its kind; one
failing database never stops the pass. What plugins print there goes to the log
(``kzconsole.triggers.<trigger>``), never to the terminal or the console's screen.

The scheduler is one :meth:`TriggerEngine.step` (given the time) plus a driver thread that calls it,
so tests drive it with any clock and never sleep.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.events import EventBus, TriggerFired
from kzconsole.engine.logs import bound_to_job, install_stream_router
from kzconsole.engine.models import Firing
from kzconsole.engine.scheduler import Lease, dead_owners
from kzconsole.engine.store.base import Store, StoreError
from kzconsole.plugin import CRON_TRIGGERS, DATABASE_TRIGGERS, Database, TriggerSpec

__all__ = [
    "PERIODS",
    "FIRE_NAMES",
    "PASS",
    "seconds_until",
    "next_boundary",
    "boundary_at",
    "TriggerEngine",
    "schedule",
    "fire",
]

log = logging.getLogger("kzconsole.triggers")

PERIODS: Mapping[str, int] = {"minutely": 60, "hourly": 3600, "daily": 86400}
PASS = "databases"  # the trigger name of a database pass in the history and the command line
FIRE_NAMES = CRON_TRIGGERS + (PASS,)

MAX_WAIT_S = 1.0  # the driver wakes at least this often: lease heartbeat, wall-clock jumps
PASS_RECHECK_S = 1.0  # while another engine's pass runs, look again this often
PRUNE_EVERY_S = 3600.0

# Firings being run by some TriggerEngine of this process (by id): a firing recorded ``running``
# under this process's node but absent here was left behind (its thread's store write failed).
_LOCAL_RUNNING: set[int] = set()
_LOCAL_LOCK = threading.Lock()


# --- alignment (pure) --------------------------------------------------------------------------


def _hms(now: Any) -> tuple[int, int, int]:
    """UTC (hour, minute, second) in whole seconds, sub-seconds dropped as the original does."""
    if isinstance(now, tuple):
        hour, minute, second = now
        return int(hour), int(minute), int(second)
    if isinstance(now, _dt.datetime):
        if now.tzinfo is not None:
            now = now.astimezone(_dt.timezone.utc)
        return now.hour, now.minute, now.second
    if isinstance(now, _dt.time):
        return now.hour, now.minute, now.second
    t = time.gmtime(math.floor(now))
    return t.tm_hour, t.tm_min, t.tm_sec


def seconds_until(trigger: str, now: Any) -> int:
    """Whole seconds from ``now`` to the next firing of a cron trigger (the original's timers,
    kazoo-original.md 7.2; its test vectors are 12.2). ``now`` is Unix seconds, a datetime (naive
    means UTC), a time of day, or an ``(hour, minute, second)`` tuple (second 60 is a leap second).
    At a boundary the answer is a full period: that firing is the one being made now."""
    hour, minute, second = _hms(now)
    if trigger == "minutely":
        return 60 - second
    if trigger == "hourly":
        return (60 - minute) * 60 - second
    if trigger == "daily":
        return (24 - hour) * 3600 - minute * 60 - second
    raise ValueError(f"{trigger!r} is not a cron trigger (use one of {', '.join(CRON_TRIGGERS)})")


def boundary_at(trigger: str, now: float) -> float:
    """The latest boundary of ``trigger`` at or before ``now`` (Unix seconds)."""
    period = PERIODS[trigger]
    return float(math.floor(now / period) * period)


def next_boundary(trigger: str, now: float) -> float:
    """The first boundary of ``trigger`` strictly after ``now`` (Unix seconds)."""
    return boundary_at(trigger, now) + PERIODS[trigger]


# --- helpers -----------------------------------------------------------------------------------


def _labels(catalog: Catalog) -> dict[TriggerSpec, str]:
    """``source:function`` of every bound function (contract 7: ``triggers --json``)."""
    labels: dict[TriggerSpec, str] = {}
    for src in catalog.sources():
        if not src.loaded:
            continue
        for spec in src.triggers:
            labels.setdefault(spec, f"{src.source}:{spec.function_name}")
    return labels


def _label(labels: Mapping[TriggerSpec, str], spec: TriggerSpec) -> str:
    return labels.get(spec) or f"{spec.where.filename}:{spec.function_name}"


def _utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class _PrintLog:
    """What a plugin prints in a trigger thread becomes a log line. Logged with the routing
    suspended, so a log handler that writes to ``sys.stderr`` cannot feed the line back into
    itself."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        with bound_to_job(None):  # type: ignore[arg-type]
            self._logger.log(level, msg, *args, **kwargs)


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

    @classmethod
    def for_engine(cls, engine: Any) -> "TriggerEngine":
        """The trigger engine of an :class:`~kzconsole.engine.Engine` (its catalog, store, clock,
        node, event bus and settings)."""
        from kzconsole.engine.databases import list_databases

        settings = engine.settings
        return cls(
            catalog=engine.catalog,
            store=engine.store,
            node=engine.node,
            events=engine.events,
            clock=engine.clock,
            databases=lambda: list_databases(settings),
            browse_dbs_interval_s=settings.triggers.browse_dbs_interval_s,
            history_days=settings.triggers.history_days,
            own_lease=getattr(engine, "scheduler", None) is None,
        )

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
            except Exception:  # noqa: BLE001 - the driver must survive a store hiccup
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
            from kzconsole.engine.engine import EngineError

            raise EngineError(f"unknown trigger {name!r}: use one of {', '.join(FIRE_NAMES)}")
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
        labels = _labels(self.catalog)
        if name == PASS:
            bindings = {kind: tuple(self.catalog.triggers(kind)) for kind in DATABASE_TRIGGERS}
            if not manual and not any(bindings.values()):
                return None

            def work(firing: Firing) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, str | None]:
                return self._run_pass(bindings, labels)

        else:
            specs = tuple(self.catalog.triggers(name))
            if not manual and not specs:
                return None

            def work(firing: Firing) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, str | None]:
                return self._run_cron(name, specs, labels)

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
        thread = threading.Thread(
            target=self._run, args=(firing, work), name=f"kz-trigger-{name}", daemon=True
        )
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
        return dead_owners(self.store, now, self.lease.host, trust_expiry=self.lease.trusts_expiry(now))

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
            if firing.node == self.node:
                alive = self._is_local(firing)
            else:
                alive = not is_dead(firing.node)
            if alive:
                return firing
            reason = f"the engine running it ({firing.node}) stopped before it ended"
            log.warning("%s firing %s: %s", firing.trigger, firing.key, reason)
            try:
                closed = self.store.end_firing(
                    firing.id,
                    ended=self.clock.time(),
                    status="failed",
                    reason=reason,
                    functions=firing.functions,
                    databases=firing.databases,
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
            functions, databases, status, reason = work(firing)
        except BaseException as exc:  # noqa: BLE001 - a firing thread must always record its end
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
        functions, databases = list(functions), list(databases)
        ended = self.clock.time()
        final: Firing | None = None
        try:
            final = self.store.end_firing(
                firing.id, ended=ended, status=status, reason=reason, functions=functions, databases=databases
            )
        except StoreError:
            log.exception("could not record the end of %s firing %s", firing.trigger, firing.key)
        if final is None:
            import dataclasses

            final = dataclasses.replace(
                firing, ended=ended, status=status, reason=reason,
                functions=tuple(functions), databases=tuple(databases),
            )
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
                "%s firing %s ended %s%s", firing.trigger, firing.key, status,
                f": {reason}" if reason else "",
            )
        self.events.emit(TriggerFired(final))
        self._wake.set()
        return final

    def _call(self, trigger: str, spec: TriggerSpec, args: tuple[Any, ...], label: str) -> tuple[bool, str | None, float]:
        """Run one bound function; (ok, error, seconds). Never raises."""
        logger = logging.getLogger(f"kzconsole.triggers.{trigger}")
        failure: BaseException | None = None
        started = time.perf_counter()
        with bound_to_job(_PrintLog(logger)):  # type: ignore[arg-type]
            try:
                spec.function(*args)
            # BaseException: sys.exit() in a plugin ends that function, not the firing thread.
            except BaseException as exc:  # noqa: BLE001
                failure = exc
        seconds = time.perf_counter() - started
        if failure is None:
            return True, None, seconds
        error = "".join(traceback.format_exception_only(type(failure), failure)).strip()
        where = f" on {args[0]}" if args else ""
        logger.error(
            "%s raised%s:\n%s",
            label,
            where,
            # tb_next: the traceback starts in the plugin, not in this method.
            "".join(traceback.format_exception(
                type(failure), failure, failure.__traceback__.tb_next if failure.__traceback__ else None
            )).rstrip(),
        )
        return False, error, seconds

    def _run_cron(
        self, name: str, specs: Sequence[TriggerSpec], labels: Mapping[TriggerSpec, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, str | None]:
        functions = []
        for spec in specs:
            label = _label(labels, spec)
            ok, error, seconds = self._call(name, spec, (), label)
            functions.append({"function": label, "ok": ok, "error": error, "seconds": round(seconds, 6)})
        failed = sum(1 for f in functions if not f["ok"])
        if failed:
            return functions, [], "failed", f"{failed} of {len(functions)} function(s) raised"
        return functions, [], "ok", None

    def _run_pass(
        self, bindings: Mapping[str, Sequence[TriggerSpec]], labels: Mapping[TriggerSpec, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, str | None]:
        try:
            databases = list(self._list_databases())
        except Exception as exc:  # noqa: BLE001
            log.exception("database pass: cannot list the databases")
            return [], [], "failed", f"cannot list the databases: {type(exc).__name__}: {exc}"
        # One entry per function (a pass may visit thousands of databases): its first error names
        # the database, and the count of the others follows.
        functions: dict[str, dict[str, Any]] = {}
        failures: dict[str, int] = {}
        visited: list[dict[str, Any]] = []
        reason = None
        for db in databases:
            if self._stop.is_set():
                reason = f"stopped after {len(visited)} database(s): the engine is shutting down"
                break
            specs = bindings.get(db.kind, ())
            if not specs:
                continue  # nothing bound to this kind: the database is not visited
            db_ok = True
            for spec in specs:
                label = _label(labels, spec)
                ok, error, seconds = self._call(db.kind, spec, (db,), label)
                entry = functions.setdefault(label, {"function": label, "ok": True, "error": None, "seconds": 0.0})
                entry["seconds"] += seconds
                if not ok:
                    db_ok = False
                    failures[label] = failures.get(label, 0) + 1
                    if entry["ok"]:
                        entry["ok"] = False
                        entry["error"] = f"{db.name}: {error}"
            visited.append({"name": db.name, "kind": db.kind, "ok": db_ok})
        for label, entry in functions.items():
            entry["seconds"] = round(entry["seconds"], 6)
            more = failures.get(label, 0) - 1
            if more > 0:
                entry["error"] += f" (and {more} more database(s))"
        failed_dbs = sum(1 for d in visited if not d["ok"])
        if reason is None and failed_dbs:
            reason = f"{failed_dbs} of {len(visited)} database(s) had a function raise"
        status = "failed" if reason else "ok"
        return list(functions.values()), visited, status, reason


# --- the facade's functions ----------------------------------------------------------------------


def _engine_triggers(engine: Any) -> TriggerEngine | None:
    """The running TriggerEngine of a started engine, if any."""
    for service in getattr(engine, "_extra", ()):
        if isinstance(service, TriggerEngine) and service.running:
            return service
    return None


def _shared_next_pass(engine: Any, now: float) -> float | None:
    """When the next database pass is due, seen from a process that does not run triggers: one
    interval after the end of the last pass or the start of the oldest live engine, whichever is
    later; None when a pass runs now or nothing will run one."""
    interval = float(engine.settings.triggers.browse_dbs_interval_s)
    store = engine.store
    last_end: float | None = None
    for firing in store.list_firings(trigger=PASS, limit=20):
        if firing.status == "running":
            return None
        if firing.status != "skipped" and firing.ended is not None:
            last_end = firing.ended
            break
    alive = [lease.started for lease in store.engines() if lease.expires >= now]
    if alive:
        basis = min(alive) if last_end is None else max(last_end, min(alive))
        return basis + interval
    return None if last_end is None else last_end + interval


def schedule(engine: Any) -> list[dict[str, Any]]:
    """The ``triggers`` list of ``kzconsole triggers --json``: ``minutely``, ``hourly``, ``daily``,
    ``databases`` (the pass: every database-bound function), then each database kind, each with
    its bound functions (``source:function``, load order), ``next_fire`` (Unix seconds, or null
    when triggers are disabled or a pass is running) and its ``last`` firing (the last pass for
    the database kinds)."""
    catalog: Catalog = engine.catalog
    labels = _labels(catalog)
    running = _engine_triggers(engine)
    enabled = bool(engine.settings.triggers.enabled)
    now = engine.clock.time()
    out: list[dict[str, Any]] = []

    def last(trigger: str) -> dict[str, Any] | None:
        found = engine.store.list_firings(trigger=trigger, limit=1)
        return found[0].public() if found else None

    for name in CRON_TRIGGERS:
        if not enabled:
            nxt = None
        elif running is not None:
            nxt = running.next_fire(name)
        else:
            nxt = next_boundary(name, now)
        out.append({
            "name": name,
            "functions": [_label(labels, s) for s in catalog.triggers(name)],
            "next_fire": nxt,
            "last": last(name),
        })
    if not enabled:
        next_pass = None
    elif running is not None:
        next_pass = running.next_fire(PASS)
    else:
        next_pass = _shared_next_pass(engine, now)
    last_pass = last(PASS)
    every: list[str] = []
    for kind in DATABASE_TRIGGERS:
        for spec in catalog.triggers(kind):
            label = _label(labels, spec)
            if label not in every:
                every.append(label)
    out.append({"name": PASS, "functions": every, "next_fire": next_pass, "last": last_pass})
    for kind in DATABASE_TRIGGERS:
        out.append({
            "name": kind,
            "functions": [_label(labels, s) for s in catalog.triggers(kind)],
            "next_fire": next_pass,
            "last": last_pass,
        })
    return out


def fire(engine: Any, name: str, *, wait: bool = True) -> Firing | None:
    """Fire ``name`` now for ``engine``: through its running trigger engine when it has one, else
    through a temporary one (``kzconsole triggers run``)."""
    if name not in FIRE_NAMES:
        from kzconsole.engine.engine import EngineError

        raise EngineError(f"unknown trigger {name!r}: use one of {', '.join(FIRE_NAMES)}")
    running = _engine_triggers(engine)
    if running is not None:
        return running.fire(name, wait=wait)
    te = TriggerEngine.for_engine(engine)
    if wait:
        try:
            return te.fire(name, wait=True)
        finally:
            if te.own_lease:
                te.lease.release()

    def background() -> None:
        try:
            te.fire(name, wait=True)
        except Exception:  # noqa: BLE001
            log.exception("firing %s by hand failed", name)
        finally:
            if te.own_lease:
                te.lease.release()

    threading.Thread(target=background, name=f"kz-trigger-{name}-manual", daemon=True).start()
    return None
