"""The executor: runs jobs this engine claimed, one :class:`~kzconsole.engine.runner.JobRun` per
claim in the calling thread, and knows which jobs run here (their :class:`JobControl`).

Both drivers of a job go through it: the scheduler's job threads and :meth:`Engine.run_job`
(``tasks run``). So both apply the same rules: a task missing from the catalog at pickup ends the
job ``internal_error``; a stop or a pause change asked by another process reaches the run.

**Remote stops** (issue 11.1). Another process's stop is a ``job`` change in the store's changes
feed; the engine hands those to :meth:`Executor.on_store_changes`, which re-reads each changed job
that runs here and applies ``stop_requested`` and ``wait_after_row_ms`` to its control. A job can
be claimed while its change is on the way (between the claim's commit and the registration of its
control): such a change is remembered, and :meth:`adopt` re-reads the job once its control is
registered, under the same lock, so no change falls between the two. Whatever the feed does, the
run's own checkpoints (at least once a second) read the record back and apply the same fields.

``hook(step, job_id)`` is called at each step of a claim (``claiming``, ``claimed``,
``registered``, ``running``): tests race a stop against every one of them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.clock import Clock
from kzconsole.engine.control import JobControl
from kzconsole.engine.events import EventBus
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.models import JobRecord
from kzconsole.engine.runner import JobRun, NextClaim
from kzconsole.engine.runtime import RuntimeScope
from kzconsole.engine.store.base import Store, StoreChange

__all__ = ["Executor", "ClaimHook"]

log = logging.getLogger("kzconsole.engine.executor")

ClaimHook = Callable[[str, "str | None"], None]
_UNSEEN_S = 30.0  # how long a change of a job not (yet) running here is remembered


@dataclass
class _Running:
    control: JobControl
    thread: threading.Thread | None


@dataclass(eq=False, kw_only=True)
class Executor:
    lifecycle: JobLifecycle
    store: Store
    catalog: Catalog
    events: EventBus
    clock: Clock
    progress_every: int
    fallback_dir: str
    claim_hook: ClaimHook | None = None
    # Entered while a job runs (the engine's plugin runtime).
    context: RuntimeScope = contextlib.nullcontext
    # Appended to "task C/A is not in the catalog" once this engine saw another one alive:
    # on a cluster such a job was claimed because no live engine has its task (contract 9).
    missing_task_note: str = field(default="", init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _running: dict[str, _Running] = field(default_factory=dict, init=False, repr=False)
    _unseen: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def hook(self, step: str, job_id: str | None) -> None:
        if self.claim_hook is not None:
            self.claim_hook(step, job_id)

    # ------------------------------------------------------------ the registry

    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def control(self, job_id: str) -> JobControl | None:
        with self._lock:
            entry = self._running.get(job_id)
        return entry.control if entry else None

    def threads(self) -> dict[str, tuple[threading.Thread | None, JobControl]]:
        with self._lock:
            return {job_id: (e.thread, e.control) for job_id, e in self._running.items()}

    def adopt(
        self,
        job: JobRecord,
        *,
        control: JobControl | None = None,
        thread: threading.Thread | None = None,
        replacing: str | None = None,
    ) -> JobControl:
        """Register a job claimed here (its control is made from the record unless given).
        ``replacing``: the job whose slot it takes, released in the same hold of the lock (the
        slot is never free in between)."""
        if control is None:
            control = JobControl(job.wait_after_row_ms)
        if job.stop_requested:
            control.request_stop()
        with self._lock:
            if replacing is not None:
                self._running.pop(replacing, None)
            self._running[job.id] = _Running(control, thread)
            missed = self._unseen.pop(job.id, None) is not None
        if missed:
            self._apply_remote(job.id, control)
        self.hook("registered", job.id)
        return control

    def release(self, job_id: str) -> None:
        with self._lock:
            self._running.pop(job_id, None)

    def release_thread(self, thread: threading.Thread) -> None:
        """Free every slot ``thread`` holds (its job loop failed)."""
        with self._lock:
            for job_id in [j for j, e in self._running.items() if e.thread is thread]:
                del self._running[job_id]

    # ----------------------------------------------------------------- running

    def run(self, job: JobRecord, control: JobControl, next_claim: NextClaim | None = None) -> JobRecord | None:
        """Run a registered job to its end in this thread; the final record, or None when the
        job was taken from this engine or left for the next one (shutdown). ``next_claim``: the
        run's last step may claim the thread's next job (see :class:`NextClaim`)."""
        spec = self.catalog.task(job.category, job.action)
        if spec is None:
            return self.lifecycle.fail(
                job, f"task {job.category}/{job.action} is not in the catalog{self.missing_task_note}"
            )
        self.hook("running", job.id)
        run = JobRun(
            job,
            spec,
            self.catalog.verifiers(job.category),
            lifecycle=self.lifecycle,
            store=self.store,
            control=control,
            events=self.events,
            fallback_dir=self.fallback_dir,
            progress_every=self.progress_every,
            clock=self.clock,
            next_claim=next_claim,
        )
        with self.context():
            return run.run()

    # ------------------------------------------------------ other processes

    def on_store_changes(self, changes: list[StoreChange]) -> None:
        """Other handles' changes (the feed's thread): apply stops and pause changes to the jobs
        running here; remember the others for a claim in flight."""
        job_ids = {c.job_id for c in changes if c.job_id is not None and c.kind == "job"}
        if any(c.kind == "reset" for c in changes):
            with self._lock:
                job_ids |= set(self._running)
        now = self.clock.monotonic()
        for job_id in job_ids:
            with self._lock:
                entry = self._running.get(job_id)
                if entry is None:
                    self._unseen[job_id] = now
                    if len(self._unseen) > 4096:
                        self._unseen = {k: t for k, t in self._unseen.items() if now - t < _UNSEEN_S}
                    continue
            self._apply_remote(job_id, entry.control)

    def _apply_remote(self, job_id: str, control: JobControl) -> None:
        job = self.store.get_job(job_id)
        if job is None:
            return  # removed: the run finds out at its next write
        if job.stop_requested and not control.stop.is_set():
            control.request_stop()
        if job.wait_after_row_ms != control.wait_after_row_ms:
            control.set_wait(job.wait_after_row_ms)

    def apply_local(self, job: JobRecord) -> None:
        """An operator's stop or pause change made in this process: reach the run at once."""
        control = self.control(job.id)
        if control is None:
            return
        if job.stop_requested and not control.stop.is_set():
            control.request_stop()
        if job.wait_after_row_ms != control.wait_after_row_ms:
            control.set_wait(job.wait_after_row_ms)
