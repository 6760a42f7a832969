"""Why a started job has not run yet (``Engine.wait_reason``): what an operator looking at a
queued job wants to know."""

from __future__ import annotations

from kzconsole.engine.hosts import pid_alive
from kzconsole.engine.models import JobRecord, JobStatus
from kzconsole.engine.store.base import Store

__all__ = ["wait_reason"]


def wait_reason(job: JobRecord, *, store: Store, host: str, running_here: int | None, max_running: int) -> str | None:
    """None unless ``job`` is pending and queued. ``running_here``: the jobs this engine runs
    (None when it runs none: a command line)."""
    if job.status is not JobStatus.PENDING or job.queued_at is None:
        return None
    now = store.now()
    live = [lease for lease in store.engines()
            if lease.expires >= now and (lease.host != host or pid_alive(lease.pid))]
    if not live:
        return ("no engine is running on this store: nothing will run it until `kzconsole engine`"
                " or the console runs on the same store")
    ahead = sum(1 for other in store.jobs_in_status(JobStatus.PENDING.value)
                if other.queued_at is not None and (other.queued_at, other.id) < (job.queued_at, job.id))
    queued = f"; {ahead} queued before it" if ahead else ""
    if running_here is not None and len(live) == 1:
        if running_here >= max_running:
            return f"every slot is taken ({running_here} of {max_running} running){queued}"
        return f"about to start ({running_here} of {max_running} slots taken){queued}"
    running = store.count_jobs(status=JobStatus.EXECUTING.value)
    return f"waiting for a free slot: {running} job(s) running on {len(live)} engine(s){queued}"
