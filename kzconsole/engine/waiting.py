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
    live = [lease for lease in store.engines() if lease.expires >= now and (lease.host != host or pid_alive(lease.pid))]
    if not live:
        return (
            "no engine is running on this store: nothing will run it until `kzconsole engine`"
            " or the console runs on the same store"
        )
    # A lease without tasks is an engine that did not say (an older version): it may serve it.
    serving = [lease for lease in live if not lease.tasks or job.task_name in lease.tasks]
    if not serving:
        # Contract 9: the next engine to claim it ends it internal_error, unless one with the
        # task (a plugin added or fixed) starts first.
        return (
            f"no live engine has {job.task_name} in its catalog ({_engines(len(live))} alive): it ends"
            " internal_error unless an engine that has the task starts first"
        )
    ahead = sum(
        1
        for other in store.jobs_in_status(JobStatus.PENDING.value)
        if other.queued_at is not None and (other.queued_at, other.id) < (job.queued_at, job.id)
    )
    queued = f"; {ahead} queued before it" if ahead else ""
    if running_here is not None and len(live) == 1:
        if running_here >= max_running:
            return f"every slot is taken ({running_here} of {max_running} running){queued}"
        return f"about to start ({running_here} of {max_running} slots taken){queued}"
    # Another process's engines, as their last heartbeats (each second) count them.
    slots = sum(lease.slots for lease in serving)
    running = sum(lease.running for lease in serving)
    where = _engines(len(serving))
    if slots and running >= slots:
        return f"every slot is taken ({running} of {slots} running on {where}){queued}"
    return f"about to start ({running} of {slots} slots taken on {where}){queued}"


def _engines(count: int) -> str:
    return "1 engine" if count == 1 else f"{count} engines"
