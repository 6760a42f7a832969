"""``tasks run``: one job run in this process, in the foreground, through the same executor as the
scheduler's job threads (so the same rules: the task missing from the catalog, stops and pause
changes from other processes, the fencing token).

The job runs in a worker thread; the calling thread renews this engine's lease and turns Ctrl-C
(``KeyboardInterrupt``, which Python delivers to the main thread only) into an operator's stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kzconsole.engine.control import JobControl
from kzconsole.engine.errors import JobNotFound
from kzconsole.engine.executor import Executor
from kzconsole.engine.leases import HEARTBEAT_S, Lease
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.logs import install_stream_router
from kzconsole.engine.models import JobRecord

__all__ = ["run_in_foreground"]


def run_in_foreground(
    job: JobRecord,
    *,
    lifecycle: JobLifecycle,
    executor: Executor,
    lease: Lease,
    control: JobControl | None = None,
    on_started: Callable[[JobRecord], None] | None = None,
) -> JobRecord:
    """Claim ``job`` (pending, queued or not) and run it to its end; the final record.
    ``InvalidJobState`` when it is running or finished already."""
    install_stream_router()
    lease.renew(force=True)
    result: list[JobRecord | None] = [None]
    try:
        executor.hook("claiming", job.id)
        claimed = lifecycle.claim(job)
        executor.hook("claimed", claimed.id)
        # No thread: a scheduler's shutdown leaves a foreground run alone (its caller owns it).
        control = executor.adopt(claimed, control=control or JobControl(claimed.wait_after_row_ms))
        try:
            if on_started is not None:
                on_started(claimed)
            done = threading.Event()

            def work() -> None:
                try:
                    result[0] = executor.run(claimed, control)
                finally:
                    done.set()

            worker = threading.Thread(target=work, name=f"job-{claimed.id[:8]}", daemon=True)
            worker.start()
            while True:
                try:
                    if done.wait(HEARTBEAT_S):
                        break
                    lease.renew()
                except KeyboardInterrupt:
                    # Ctrl-C is an operator stop: the job ends `stopped` with its output so far.
                    control.request_stop()
            worker.join()
        finally:
            executor.release(claimed.id)
    finally:
        lease.release()
    final = result[0] or lifecycle.store.get_job(claimed.id)
    if final is None:
        raise JobNotFound(f"job {claimed.id} was removed while it ran")
    return final
