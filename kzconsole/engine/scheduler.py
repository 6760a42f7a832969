"""The scheduler: runs started jobs, at most ``tasks.max_running`` at once, each in its own thread;
resumes jobs whose engine died (see :mod:`kzconsole.engine.leases` for how it tells).

Every state change goes through the :class:`~kzconsole.engine.lifecycle.JobLifecycle` and every run
through the :class:`~kzconsole.engine.executor.Executor`, which ``tasks run`` uses too. The loop is
one :meth:`Scheduler.step` plus a driver that calls it every ``POLL_S`` seconds or when woken (a job
queued here, or a change by another process reported by the changes feed), so it is tested step by
step with an injected clock.
"""

from __future__ import annotations

import logging
import threading

from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.control import JobControl
from kzconsole.engine.executor import Executor
from kzconsole.engine.leases import Lease, dead_owners
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.models import EngineLease, JobRecord, JobStatus, Takeover
from kzconsole.engine.store.base import Claim, Store, StoreError

__all__ = ["Scheduler", "POLL_S", "ORPHAN_SCAN_S"]

log = logging.getLogger("kzconsole.engine.scheduler")

POLL_S = 0.2  # the driver's longest sleep (leases, orphans; starts elsewhere also wake it at once)
ORPHAN_SCAN_S = 1.0  # orphans are looked for, and the queue looked at, at least this often

NOT_RESUMABLE = (
    "the engine running it died, and it cannot be resumed: its iterator state "
    "does not survive a JSON round trip (or it is a generator task)"
)


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        lifecycle: JobLifecycle,
        executor: Executor,
        max_running: int,
        clock: Clock = SYSTEM_CLOCK,
        lease: Lease | None = None,
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.executor = executor
        self.node = lifecycle.node
        self.node_name = lifecycle.node_name
        self.max_running = max_running
        self.clock = clock
        self.lease = lease or Lease(store, self.node, clock, name=self.node_name, info=self._lease_info)
        # The tasks of every live engine (contract 9: a job whose task none of them has ends
        # internal_error), refreshed with the orphan scan.
        self._served: set[str] | None = None
        self._claim_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_scan = 0.0
        self._poked = True

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
            except Exception:  # the loop must survive anything
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
        # Foreground runs (no thread of ours) belong to their caller.
        running = {job_id: entry for job_id, entry in self.executor.threads().items() if entry[0] is not None}
        for _, control in running.values():
            control.request_shutdown()
        deadline = self.clock.monotonic() + timeout
        stuck = []
        for job_id, (thread, _) in running.items():
            if thread is None:
                continue
            thread.join(max(0.0, deadline - self.clock.monotonic()))
            if thread.is_alive():
                stuck.append(job_id)
        self.lease.release()
        return stuck

    # -------------------------------------------------------------- step

    def step(self) -> None:
        """One pass: heartbeat, resume orphans, start queued jobs (when woken, and at least once
        every ``ORPHAN_SCAN_S``)."""
        self.lease.renew()
        now = self.clock.time()
        scan = now >= self._next_scan
        if scan:
            self._next_scan = now + ORPHAN_SCAN_S
            self._resume_orphans(now)
        free = self.max_running - self.running_count()
        if free > 0 and (self._poked or scan):
            self._poked = False
            with self._claim_lock:
                if self._stopping.is_set():
                    return
                self.executor.hook("claiming", None)
                claimed = self._claim(free)
                for job in claimed:
                    self._launch(job)

    def running_count(self) -> int:
        return self.executor.running_count()

    def control(self, job_id: str) -> JobControl | None:
        return self.executor.control(job_id)

    # ------------------------------------------------------- cluster (owner: pg)

    def _own_tasks(self) -> set[str]:
        return {f"{spec.category}/{spec.action}" for spec in self.executor.catalog.tasks()}

    def _lease_info(self) -> dict[str, object]:
        """What ``kzconsole nodes`` shows besides the lease itself."""
        return {"slots": self.max_running, "running": self.running_count(), "tasks": tuple(sorted(self._own_tasks()))}

    def _refresh_served(self, leases: list[EngineLease], now: float) -> None:
        alive = [lease for lease in leases if lease.expires >= now]
        served = self._own_tasks()
        for lease in alive:
            served.update(lease.tasks)
        self._served = served
        if any(lease.node != self.node for lease in alive):
            # Once another engine was seen this is a cluster: contract 9's message, not 4.2's.
            self.executor.missing_task_note = " of any live engine"

    def _claim(self, limit: int) -> list[JobRecord]:
        """Queued jobs whose task this engine has (and those no live engine has, to end them)."""
        return self.lifecycle.claim_queued(limit, tasks=self._own_tasks(), served=self._served)

    def _record_takeover(self, job: JobRecord, outcome: str) -> None:
        """What ``kzconsole nodes`` shows as resumed elsewhere when an engine died."""
        try:
            self.store.record_takeover(
                Takeover(
                    job_id=job.id,
                    from_engine=job.owner,
                    to_engine=self.node,
                    to_name=self.node_name,
                    at=self.store.now(),
                    rows_done=job.rows_done,
                    outcome=outcome,
                )
            )
        except StoreError:
            log.exception("could not record the takeover of job %s", job.id)

    def _resume_orphans(self, now: float) -> None:
        leases = self.store.engines()
        store_now = self.store.now()
        self._refresh_served(leases, store_now)
        executing = self.store.jobs_in_status(JobStatus.EXECUTING.value)
        if not executing:
            return
        is_dead = dead_owners(
            self.store, store_now, self.lease.host, trust_expiry=self.lease.trusts_expiry(now), leases=leases
        )
        own = self._own_tasks()
        for job in executing:
            if job.owner == self.node or not is_dead(job.owner):
                continue
            if job.task_name not in own and self._served is not None and job.task_name in self._served:
                continue  # a live engine that has its task takes it over
            if not job.resumable:
                if self.lifecycle.fail_orphan(job, NOT_RESUMABLE) is not None:
                    log.warning("job %s: %s", job.id, NOT_RESUMABLE)
                    self._record_takeover(job, "internal_error")
                continue
            if self.running_count() >= self.max_running:
                return
            with self._claim_lock:
                if self._stopping.is_set():
                    return
                self.executor.hook("claiming", job.id)
                claimed = self.lifecycle.take_over(job)
                if claimed is not None:
                    if job.task_name in own:
                        log.info("resuming job %s left by %s at row %d", job.id, job.owner, job.rows_done + 1)
                        self._record_takeover(job, "resumed")
                    else:
                        # Taken only to be ended: no live engine has its task (the run ends it
                        # internal_error), so `kzconsole nodes` must not say it was resumed.
                        log.warning(
                            "job %s left by %s: task %s is not in the catalog of any live engine; ending it",
                            job.id,
                            job.owner,
                            job.task_name,
                        )
                        self._record_takeover(job, "internal_error")
                    self._launch(claimed)

    # ------------------------------------------------------------ launch

    def _launch(self, job: JobRecord) -> None:
        """Start a thread for a job claimed here (under _claim_lock: stop() cannot miss it)."""
        self.executor.hook("claimed", job.id)
        control = JobControl(job.wait_after_row_ms)
        thread = threading.Thread(target=self._run_thread, args=(job, control), name=f"job-{job.id[:8]}", daemon=True)
        self.executor.adopt(job, control=control, thread=thread)
        thread.start()

    def _run_thread(self, job: JobRecord, control: JobControl) -> None:
        """Run a job; then, while jobs are queued, claim the next one and run it in this same
        thread. Why: with one new thread per job, the scheduler's pass, the thread's start (which
        waits for the GIL) and the run's set-up were the whole cost of a tiny job. The thread keeps
        its slot from one job to the next, so max_running holds. The next job is claimed in the
        same store write as the end of the previous one (:class:`_Handoff`) when it can be."""
        me = threading.current_thread()
        while True:
            handoff = _Handoff(self, job.id, me)
            try:
                self.executor.run(job, control, next_claim=handoff)
            except Exception:  # a run handles its own errors; this is a last resort
                log.exception("job %s: runner crashed", job.id)
            if handoff.next is not None:
                job, control = handoff.next
                continue
            if handoff.tried:  # the queue was empty when the job ended: free the slot
                self.executor.release(job.id)
                break
            try:
                following = self._claim_following(job.id)
            except Exception:  # a store error must not leave this slot taken
                log.exception("taking the next queued job failed")
                self.executor.release_thread(me)
                break
            if following is None:
                break
            job, control = following
        self.wake()

    def _claim_following(self, finished_id: str) -> tuple[JobRecord, JobControl] | None:
        """Release ``finished_id``'s slot, or hand it to the next queued job (claimed here)."""
        thread = threading.current_thread()
        # _claim_lock: stop() sets _stopping under it, so no job is claimed here (and missed by
        # stop) after stop() took its list of running jobs.
        with self._claim_lock:
            job = None
            if not self._stopping.is_set():
                self.executor.hook("claiming", None)
                try:
                    claimed = self._claim(1)
                except Exception:  # the scheduler's pass retries
                    log.exception("claiming the next queued job failed")
                    claimed = []
                job = claimed[0] if claimed else None
            if job is None:
                self.executor.release(finished_id)
                return None
            self.executor.hook("claimed", job.id)
            control = self.executor.adopt(job, thread=thread, replacing=finished_id)
        thread.name = f"job-{job.id[:8]}"
        return job, control

    def _handoff_claim(self, handoff: _Handoff) -> Claim | None:
        """Entered (with _claim_lock held) around a job thread's last store step."""
        if self._stopping.is_set():
            return None
        self.executor.hook("claiming", None)
        return Claim(self.node, 1, name=self.node_name, tasks=self._own_tasks(), served=self._served)

    def _handed_over(self, handoff: _Handoff, jobs: list[JobRecord]) -> None:
        handoff.tried = True
        if not jobs:
            return
        job = jobs[0]
        self.executor.hook("claimed", job.id)
        control = self.executor.adopt(job, thread=handoff.thread, replacing=handoff.finished_id)
        handoff.thread.name = f"job-{job.id[:8]}"
        handoff.next = (job, control)

    def join_idle(self, timeout: float) -> bool:
        """Wait until no job runs here (tests)."""
        deadline = self.clock.monotonic() + timeout
        while self.running_count():
            if self.clock.monotonic() > deadline:
                return False
            for thread, _ in self.executor.threads().values():
                if thread is not None:
                    thread.join(0.05)
        return True


class _Handoff:
    """A job thread's claim of its next job, made in the last store step of the job it ends (see
    :class:`kzconsole.engine.runner.NextClaim`): one write instead of two per job. Entered, it
    holds the scheduler's claim lock, so that stop() cannot miss what it claims."""

    def __init__(self, scheduler: Scheduler, finished_id: str, thread: threading.Thread) -> None:
        self.scheduler = scheduler
        self.finished_id = finished_id
        self.thread = thread
        self.tried = False
        self.next: tuple[JobRecord, JobControl] | None = None

    def __enter__(self) -> Claim | None:
        self.scheduler._claim_lock.acquire()
        try:
            return self.scheduler._handoff_claim(self)
        except BaseException:
            self.scheduler._claim_lock.release()
            raise

    def claimed(self, jobs: list[JobRecord]) -> None:
        self.scheduler._handed_over(self, jobs)

    def __exit__(self, *exc: object) -> None:
        self.scheduler._claim_lock.release()
