"""The scheduler: runs started jobs, at most ``tasks.max_running`` at once, each in its own thread;
notices starts, stops and pause changes made by other processes; resumes jobs whose engine died.

How an engine knows another one is dead (contract 4.3): every engine holds a **lease** in the store
(:class:`~kzconsole.engine.models.EngineLease`) that it renews every second and that expires
``LEASE_TTL`` seconds later. A job being executed names its engine in ``owner``. A job is an
orphan when its owner is None (released by a graceful shutdown), has no lease, has an expired
lease, or has a lease on *this* host whose process id no longer exists (so a crash on the same
machine is noticed at once, without waiting for the lease to run out). Taking an orphan over is a
compare-and-set on ``owner``, so exactly one engine resumes it. An engine that could not renew its
own lease for a while (a store locked by another process) does not take an expired lease for a
dead engine until it has renewed its own for ``LEASE_TTL`` again (:meth:`Lease.trusts_expiry`).

The loop is one :meth:`Scheduler.step` plus a driver that calls it every ``POLL_S`` seconds or
when woken, so it is tested step by step with an injected clock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.events import EventBus, JobChanged
from kzconsole.engine.hosts import new_node_id, pid_alive  # noqa: F401 - re-exported
from kzconsole.engine.models import EngineLease, JobRecord, JobStatus
from kzconsole.engine.runner import JobControl, JobRun
from kzconsole.engine.store.base import Store, StoreChange, StoreError

log = logging.getLogger("kzconsole.engine.scheduler")

LEASE_TTL = 10.0  # seconds an engine is presumed alive after its last heartbeat
HEARTBEAT_S = 1.0
# A gap this long between two of our own heartbeats is a stall (the store was locked, this process
# was frozen): see Lease.trusts_expiry.
STALL_S = 3 * HEARTBEAT_S
POLL_S = 0.2  # a start from another process is noticed within this (contract: 0.5 s)
ORPHAN_SCAN_S = 1.0


class Lease:
    """This engine's lease: renewed by whoever drives it (the scheduler loop or a heartbeat thread)."""

    def __init__(self, store: Store, node: str, clock: Clock) -> None:
        self.store = store
        self.node = node
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
            self.store.heartbeat(
                EngineLease(self.node, self.host, os.getpid(), self.started, stored_now + LEASE_TTL)
            )
            done = self.clock.time()
            if done - now > HEARTBEAT_S:  # the write waited (a locked store): renew from now
                self.store.heartbeat(
                    EngineLease(self.node, self.host, os.getpid(), self.started, self.store.now() + LEASE_TTL)
                )
            if self._last_ok is not None and done - self._last_ok > STALL_S:
                self.stalled_at = done
            self._last_ok = done
            self._next = now + HEARTBEAT_S

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
    store: Store, now: float, host: str, *, trust_expiry: bool = True
) -> Callable[[str | None], bool]:
    """A predicate telling whether a job owner is dead (see the module docstring). With
    ``trust_expiry`` False an expired lease alone does not make its engine dead."""
    leases = {lease.node: lease for lease in store.engines()}

    def is_dead(owner: str | None) -> bool:
        if owner is None:
            return True
        lease = leases.get(owner)
        if lease is None:
            return True
        if lease.host == host and not pid_alive(lease.pid):
            return True
        return trust_expiry and lease.expires < now

    return is_dead


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        events: EventBus,
        data_dir: Path,
        node: str,
        max_running: int,
        progress_every: int,
        fallback_dir: str,
        clock: Clock = SYSTEM_CLOCK,
        lease: Lease | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.events = events
        self.data_dir = data_dir
        self.node = node
        self.max_running = max_running
        self.progress_every = progress_every
        self.fallback_dir = fallback_dir
        self.clock = clock
        self.lease = lease or Lease(store, node, clock)
        self._lock = threading.Lock()
        self._claim_lock = threading.Lock()
        self._running: dict[str, tuple[threading.Thread, JobControl]] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_orphan_scan = 0.0
        self._poked = True
        # Jobs other handles changed while no control of ours was registered for them (a claim
        # in flight): the claim re-reads them once registered, so no stop falls in between.
        self._unseen: dict[str, float] = {}

    # ------------------------------------------------------------ driver

    def start(self) -> None:
        self.lease.renew(force=True)
        self._thread = threading.Thread(target=self._loop, name="kz-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._poked = True
        self._wake.set()

    def notify_queued(self) -> None:
        """A job was queued. Wake the loop only if a slot is free: otherwise a job thread claims
        the job when its own job ends (a pass per queued job was most of the scheduler's work when
        jobs are added in bulk). A thread that finds the queue empty releases its slot and then
        wakes the loop, so a job queued at that moment is not left waiting for the next poll."""
        if self.running_count() < self.max_running:
            self.wake()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except StoreError:
                log.exception("scheduler step failed; retrying")
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("scheduler step failed unexpectedly; retrying")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Graceful: running jobs checkpoint and are released for the next engine. Returns the
        ids of jobs whose thread did not end in time (a row still running)."""
        with self._claim_lock:
            self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            running = list(self._running.items())
        for _, (_, control) in running:
            control.request_shutdown()
        deadline = self.clock.monotonic() + timeout
        stuck = []
        for job_id, (thread, _) in running:
            thread.join(max(0.0, deadline - self.clock.monotonic()))
            if thread.is_alive():
                stuck.append(job_id)
        self.lease.release()
        return stuck

    # -------------------------------------------------------------- step

    def step(self) -> None:
        """One pass: heartbeat, resume orphans, start queued jobs (when woken)."""
        self.lease.renew()
        now = self.clock.time()
        if now >= self._next_orphan_scan:
            self._next_orphan_scan = now + ORPHAN_SCAN_S
            self._resume_orphans(now)
        free = self.max_running - self.running_count()
        if free > 0 and self._poked:
            self._poked = False
            for job in self.store.claim_queued(self.node, free, self.clock.time()):
                self._launch(job)

    def on_store_changes(self, changes: list[StoreChange]) -> None:
        """Other handles' changes (the feed's thread): apply stops and pause changes to the jobs
        running here, and look for queued jobs."""
        job_ids = {c.job_id for c in changes if c.job_id is not None and c.kind == "job"}
        reset = any(c.kind == "reset" for c in changes)
        if reset:
            with self._lock:
                job_ids |= set(self._running)
        now = self.clock.monotonic()
        for job_id in job_ids:
            with self._lock:
                entry = self._running.get(job_id)
                if entry is None:
                    self._unseen[job_id] = now
                    if len(self._unseen) > 4096:
                        self._unseen = {k: t for k, t in self._unseen.items() if now - t < 10.0}
                    continue
            self._apply_remote(job_id, entry[1])
        if job_ids or reset:
            self.wake()

    def _apply_remote(self, job_id: str, control: JobControl) -> None:
        job = self.store.get_job(job_id)
        if job is None:
            return  # removed: the run finds out at its next checkpoint
        if job.stop_requested and not control.stop.is_set():
            control.request_stop()
        if job.wait_after_row_ms != control.wait_after_row_ms:
            control.set_wait(job.wait_after_row_ms)

    def _register(
        self, job: JobRecord, thread: threading.Thread, control: JobControl, replacing: str | None = None
    ) -> None:
        with self._lock:
            if replacing is not None:  # in the same hold of the lock: the slot is never free
                self._running.pop(replacing, None)
            self._running[job.id] = (thread, control)
            missed = self._unseen.pop(job.id, None) is not None
        if missed:
            self._apply_remote(job.id, control)

    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def control(self, job_id: str) -> JobControl | None:
        with self._lock:
            entry = self._running.get(job_id)
        return entry[1] if entry else None

    def _resume_orphans(self, now: float) -> None:
        executing = self.store.jobs_in_status(JobStatus.EXECUTING.value)
        if not executing:
            return
        is_dead = dead_owners(
            self.store, self.store.now(), self.lease.host, trust_expiry=self.lease.trusts_expiry(now)
        )
        for job in executing:
            if job.owner == self.node or not is_dead(job.owner):
                continue
            if not job.resumable:
                reason = (
                    "the engine running it died, and it cannot be resumed: its iterator state "
                    "does not survive a JSON round trip (or it is a generator task)"
                )
                updated = self.store.update_job(
                    job.id,
                    {"status": JobStatus.INTERNAL_ERROR.value, "owner": None, "error": reason,
                     "end_timestamp": self.clock.time(), "finishing": False, "claim": job.claim + 1},
                    expect={"status": JobStatus.EXECUTING.value, "owner": job.owner, "claim": job.claim},
                )
                if updated is not None:
                    log.warning("job %s: %s", job.id, reason)
                    self.events.emit(JobChanged(updated))
                continue
            if self.running_count() >= self.max_running:
                return
            claimed = self.store.update_job(
                job.id,
                {"owner": self.node, "node": self.node, "claim": job.claim + 1},
                expect={"status": JobStatus.EXECUTING.value, "owner": job.owner, "claim": job.claim},
            )
            if claimed is not None:
                log.info("resuming job %s left by %s at row %d", job.id, job.owner, job.rows_done + 1)
                self._launch(claimed)

    # ------------------------------------------------------------ launch

    def _launch(self, job: JobRecord) -> None:
        spec = self._spec_or_fail(job)
        if spec is None:
            return
        control = self._control_for(job)
        thread = threading.Thread(
            target=self._run_thread, args=(job, spec, control), name=f"job-{job.id[:8]}", daemon=True
        )
        self._register(job, thread, control)
        self.events.emit(JobChanged(job))
        thread.start()

    @staticmethod
    def _control_for(job: JobRecord) -> JobControl:
        control = JobControl(job.wait_after_row_ms)
        if job.stop_requested:
            control.request_stop()
        return control

    def _spec_or_fail(self, job: JobRecord) -> Any:
        """The task of a job just claimed; None (and the job ended ``internal_error``) if it is
        gone from the catalog."""
        spec = self.catalog.task(job.category, job.action)
        if spec is None:
            updated = self.store.update_job(
                job.id,
                {"status": JobStatus.INTERNAL_ERROR.value, "owner": None,
                 "error": f"task {job.category}/{job.action} is not in the catalog",
                 "end_timestamp": self.clock.time()},
                expect={"status": JobStatus.EXECUTING.value, "claim": job.claim},
            )
            if updated is not None:
                self.events.emit(JobChanged(updated))
        return spec

    def make_run(self, job: JobRecord, spec: Any, control: JobControl) -> JobRun:
        return JobRun(
            job,
            spec,
            self.catalog.verifiers(job.category),
            store=self.store,
            data_dir=self.data_dir,
            node=self.node,
            control=control,
            events=self.events,
            fallback_dir=self.fallback_dir,
            progress_every=self.progress_every,
            clock=self.clock,
        )

    def _run_thread(self, job: JobRecord, spec: Any, control: JobControl) -> None:
        """Run a job; then, while jobs are queued, claim the next one and run it in this same
        thread. Why: with one new thread per job, the scheduler's pass, the thread's start (which
        waits for the GIL) and the JobRun set-up were the whole cost of a tiny job. The thread keeps
        its slot from one job to the next, so max_running holds."""
        while True:
            try:
                self.make_run(job, spec, control).run()
            except Exception:  # noqa: BLE001 - JobRun handles its own errors; this is a last resort
                log.exception("job %s: runner crashed", job.id)
            try:
                following = self._claim_following(job.id)
            except Exception:  # noqa: BLE001 - a store error must not leave this slot taken
                log.exception("taking the next queued job failed")
                me = threading.current_thread()
                with self._lock:
                    for job_id in [j for j, (t, _) in self._running.items() if t is me]:
                        del self._running[job_id]
                break
            if following is None:
                break
            job, spec, control = following
        self.wake()

    def _claim_following(self, finished_id: str) -> tuple[JobRecord, Any, JobControl] | None:
        """Release ``finished_id``'s slot, or hand it to the next queued job (claimed here)."""
        thread = threading.current_thread()
        while True:
            # _claim_lock: stop() sets _stopping under it, so no job is claimed here (and missed
            # by stop) after stop() took its list of running jobs.
            with self._claim_lock:
                job = None
                if not self._stopping.is_set():
                    try:
                        claimed = self.store.claim_queued(self.node, 1, self.clock.time())
                    except Exception:  # noqa: BLE001 - the scheduler's pass retries
                        log.exception("claiming the next queued job failed")
                        claimed = []
                    job = claimed[0] if claimed else None
                if job is None:
                    with self._lock:
                        self._running.pop(finished_id, None)
                    return None
                control = self._control_for(job)
                self._register(job, thread, control, replacing=finished_id)
            spec = self._spec_or_fail(job)
            if spec is None:
                finished_id = job.id
                continue
            thread.name = f"job-{job.id[:8]}"
            self.events.emit(JobChanged(job))
            return job, spec, control

    def join_idle(self, timeout: float) -> bool:
        """Wait until no job runs here (tests)."""
        deadline = self.clock.monotonic() + timeout
        while self.running_count():
            if self.clock.monotonic() > deadline:
                return False
            with self._lock:
                threads = [t for t, _ in self._running.values()]
            for t in threads:
                t.join(0.05)
        return True
