"""The engine facade: the one object the command line, the console and the API talk to.

Its parts (the store, the job lifecycle that owns every job's state, the catalog, the executor that
runs jobs for the scheduler and for ``tasks run`` alike, the background services) are
:class:`~kzconsole.engine.parts.EngineParts`; this class is what may be asked of them. Every
public method is safe to call from any thread.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kzconsole.engine.arguments import check_job_arguments
from kzconsole.engine.errors import EngineError, InvalidJobState, JobNotFound, JobRejected, describe_errors
from kzconsole.engine.intake import InputReport
from kzconsole.engine.models import PUBLIC_JOB_KEYS, Firing, JobRecord
from kzconsole.engine.parts import EngineParts
from kzconsole.engine.store.job_query import JobQuery
from kzconsole.engine.store.query import JobRows, document_options
from kzconsole.plugin import TaskSpec

# What only running jobs or loading plugins needs is imported where it is first used: `kzconsole
# tasks list` or `show` never needs it, and the command line must start fast.
if TYPE_CHECKING:
    from kzconsole.engine.catalog import PluginSource
    from kzconsole.engine.control import JobControl

__all__ = ["Engine", "EngineError", "InvalidJobState", "JobNotFound", "JobRejected", "describe_errors"]

log = logging.getLogger("kzconsole.engine")

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_JOB_ID_OR_PREFIX = re.compile(r"[0-9a-f]{6,32}")


class Engine(EngineParts):
    """Jobs, plugins and triggers over one store.

    ``Engine(settings)`` is cheap: plugins load on first use of :attr:`catalog`, and nothing runs
    in the background until :meth:`start`. ``claim_hook(step, job_id)`` is called at each step of
    a claim (see :mod:`kzconsole.engine.executor`), for tests that race against them.
    """

    # -------------------------------------------------------------- catalog

    def help(self, category: str | None = None, action: str | None = None) -> dict[str, Any]:
        if category is not None and not self.catalog.has_category(category):
            raise EngineError(f"unknown category {category!r}")
        if action is not None and self.catalog.task(category or "", action) is None:
            raise EngineError(f"unknown task {category}/{action}")
        return self.catalog.help(category, action)

    def task(self, category: str, action: str) -> TaskSpec | None:
        return self.catalog.task(category, action)

    def plugins(self) -> list[PluginSource]:
        return self.catalog.sources()

    def reload_plugins(self) -> None:
        """Reload every plugin file from the configured directories (the console's reload key)."""
        loader = self.loader
        for source in self.catalog.sources():
            # A file deleted while no watcher ran leaves the catalog with its tasks and triggers.
            if source.kind == "file" and not os.path.exists(source.source):
                loader.unload_file(source.source)
        for directory in self.settings.plugins.paths:
            loader.load_directory(directory)

    # ------------------------------------------------------------- triggers

    # ------------------------------------------------ nodes (contract 9; owner: pg)

    @property
    def store_display(self) -> str:
        """The store's URL without a password (for logs and messages)."""
        from kzconsole.engine.store.base import redact_url

        return redact_url(self.settings.store_url)

    def nodes(self) -> list[Any]:
        """Every engine on the store, alive or dead (:class:`~kzconsole.engine.nodes.NodeInfo`),
        with what was resumed elsewhere when one died."""
        from kzconsole.engine.nodes import list_nodes

        return list_nodes(self.store)

    def trigger_schedule(self) -> list[dict[str, Any]]:
        """Each trigger with its bound functions, next firing and last firing (the
        ``triggers --json`` "triggers" list)."""
        from kzconsole.engine.schedule import trigger_schedule

        triggers = self._running_triggers() or self._make_triggers(own_lease=False)
        return trigger_schedule(triggers, enabled=bool(self.settings.triggers.enabled))

    def firings(self, *, trigger: str | None = None, limit: int = 100) -> list[Firing]:
        """Trigger firings, newest first."""
        return self.store.list_firings(trigger=trigger, limit=limit)

    def fire_trigger(self, name: str, *, wait: bool = True) -> Firing | None:
        """Fire ``minutely``, ``hourly``, ``daily`` or ``databases`` now, through the running
        trigger engine or a temporary one (``kzconsole triggers run``). With wait=False it runs in
        a background thread and this returns None at once (the console's key)."""
        from kzconsole.engine.cron import FIRE_NAMES

        if name not in FIRE_NAMES:
            raise EngineError(f"unknown trigger {name!r}: use one of {', '.join(FIRE_NAMES)}")
        running = self._running_triggers()
        if running is not None:
            return running.fire(name, wait=wait)
        temporary = self._make_triggers(own_lease=True)

        def fire() -> Firing | None:
            try:
                return temporary.fire(name, wait=True)
            finally:
                temporary.lease.release()

        if wait:
            return fire()

        def background() -> None:
            try:
                fire()
            except Exception:
                log.exception("firing %s by hand failed", name)

        threading.Thread(target=background, name=f"kz-trigger-{name}-manual", daemon=True).start()
        return None

    # ----------------------------------------------------------------- jobs

    def check_input(
        self,
        category: str,
        action: str,
        input: str | os.PathLike[str] | BinaryIO | None,
        *,
        fmt: str | None = None,
        preview: int = 0,
    ) -> InputReport:
        """The checks of contract 3.3 that :meth:`add_job` would make, creating nothing (the
        console's form). ``preview``: the header and up to that many rows of the input as it would
        be stored (JSON converted)."""
        import tempfile

        from kzconsole.engine.intake import check_job_input

        spec = self.catalog.task(category, action)
        if spec is None:
            return InputReport(errors={"unknown_task": f"{category}/{action}"})
        with tempfile.TemporaryDirectory(prefix="kzconsole-check-") as folder:
            return check_job_input(spec, input, Path(folder) / "in.csv", fmt=fmt, preview=preview)

    def add_job(
        self,
        category: str,
        action: str,
        *,
        input: str | os.PathLike[str] | BinaryIO | None = None,
        fmt: str | None = None,
        file_name: str | None = None,
        account_id: str | None = None,
        auth_account_id: str | None = None,
        wait_ms: int | None = None,
        start: bool = False,
    ) -> JobRecord:
        """Check the input (contract 3.3) and create a pending job; raise JobRejected (storing
        nothing) when a check fails."""
        from kzconsole.engine.intake import take_in

        spec = self.catalog.task(category, action)
        if spec is None:
            raise JobRejected({"unknown_task": f"{category}/{action}"})
        check_job_arguments(account_id=account_id, auth_account_id=auth_account_id, wait_ms=wait_ms)
        job = take_in(
            spec,
            self.lifecycle,
            input=input,
            fmt=fmt,
            file_name=file_name,
            # Each configured default applies to what is not given: `--account X` alone keeps the
            # configured auth account, which is who created the job.
            account_id=account_id or self.settings.accounts.account_id,
            auth_account_id=auth_account_id or self.settings.accounts.auth_account_id,
            wait_ms=self.settings.tasks.wait_after_row_ms if wait_ms is None else wait_ms,
            queued=start,
            incoming=self._incoming,
        )
        self._queued(start)
        return job

    def _queued(self, queued: bool) -> None:
        if queued and self.scheduler is not None:
            self.scheduler.notify_queued()

    def get_job(self, job_id: str) -> JobRecord:
        if not _JOB_ID.fullmatch(job_id):
            raise JobNotFound(f"no job {job_id}")
        job = self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        return job

    # ------------------------------------------------------------------ job queries
    # Every listing is one JobQuery (kzconsole.engine.JobQuery; store/job_query.py says what each
    # field means). Each method takes a query, or its fields as keywords, or a query and fields
    # that change it: list_jobs(status="pending", limit=10), list_jobs(query, offset=64).

    def find_job(self, prefix: str) -> JobRecord:
        """A job by id; the console and the command line also accept a unique id prefix (>= 6),
        found by a range of the id index (two rows at most: one, or "ambiguous")."""
        if not _JOB_ID_OR_PREFIX.fullmatch(prefix):  # what users type never reaches a path
            raise JobNotFound(f"no job {prefix}")
        job = self.store.get_job(prefix)
        if job is not None:
            return job
        matches = self.store.list_jobs(JobQuery(id_prefix=prefix, limit=2))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            count = self.store.count_jobs(JobQuery(id_prefix=prefix))
            raise JobNotFound(f"job id prefix {prefix} is ambiguous ({count} jobs)")
        raise JobNotFound(f"no job {prefix}")

    def list_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> list[JobRecord]:
        """The jobs the query selects, in its order and page (default: every job, newest first).
        Raises InvalidQuery (a ValueError) for a bad field: an unknown status, sort or position."""
        return self.store.list_jobs(self._job_query(query, fields))

    def count_jobs(self, query: JobQuery | None = None, /, **fields: Any) -> int:
        """How many jobs the query's filters match (its order and page do not count)."""
        return self.store.count_jobs(self._job_query(query, fields))

    def iter_jobs(
        self, query: JobQuery | None = None, columns: Sequence[str] = PUBLIC_JOB_KEYS, /, **fields: Any
    ) -> JobRows:
        """The jobs ``list_jobs`` returns as tuples of ``columns`` (JobRecord field names, default
        the public record's keys; ``status`` as its string), streamed in constant memory: for
        listings of every job (``tasks list``, the API unpaged). Use ``with``, or read to the end."""
        return self.store.iter_jobs(self._job_query(query, fields), columns)

    def iter_job_documents(self, query: JobQuery | None = None, /, **fields: Any) -> JobRows:
        """The jobs ``iter_jobs`` streams, each as a row: the JSON text of its public record
        (``tasks list --json``). (api) ``epoch=``, ``nulls=False`` and ``columns=`` shape it as
        ``Store.iter_job_documents`` says; the other keywords build the query."""
        epoch, nulls, columns = document_options(fields)
        return self.store.iter_job_documents(self._job_query(query, fields), epoch=epoch, nulls=nulls, columns=columns)

    def job_documents(self, ids: Collection[str], /, **options: Any) -> dict[str, tuple[Any, ...]]:
        """(api) The jobs of ``ids`` that exist, by id, each as :meth:`iter_job_documents` gives it
        with the same ``epoch=``, ``nulls=`` and ``columns=``: a few jobs read by id."""
        return self.store.job_documents(ids, **options)

    def _job_query(self, query: JobQuery | None, fields: dict[str, Any]) -> JobQuery:
        query = JobQuery.of(query, **fields)
        if query.now is None and query.is_live:
            # Durations are measured on the clock the engine stamps jobs with.
            query = query.replace(now=self.clock.time())
        return query

    def start_job(self, job_id: str, *, once: bool = False) -> JobRecord:
        """Queue a pending job; a running engine on the same store picks it up. ``once``: a job
        started already (waiting for a slot) is refused with InvalidJobState, not started again."""
        job = self.lifecycle.queue(self.find_job(job_id), once=once)
        self._queued(True)
        return job

    def stop_job(self, job_id: str) -> JobRecord:
        """Pending: stopped at once. Executing: the owning engine stops it before its next row."""
        job = self.lifecycle.stop(self.find_job(job_id))
        if self._executor is not None:
            self._executor.apply_local(job)
        return job

    def set_wait(self, job_id: str, wait_ms: int) -> JobRecord:
        check_job_arguments(wait_ms=wait_ms)
        job = self.lifecycle.set_wait(self.find_job(job_id), wait_ms)
        if self._executor is not None:
            self._executor.apply_local(job)
        return job

    def restart_job(self, job_id: str, *, start: bool = True, failed_only: bool = False) -> JobRecord:
        """A new job with the same task, input and accounts (queued to run unless start=False).
        ``failed_only``: its input is the rows of the old input that failed (the old job must be
        finished, with failed rows)."""
        from kzconsole.engine.restart import restarted

        job = restarted(
            self.find_job(job_id), lifecycle=self.lifecycle, clock=self.clock, start=start, failed_only=failed_only
        )
        self._queued(start)
        return job

    def remove_job(self, job_id: str) -> JobRecord:
        return self.lifecycle.remove(self.find_job(job_id))

    # ------------------------------------------------------------ job files
    #
    # How the console, the command line and the API read a job's files: as binary streams, never
    # as paths (a cluster store keeps them in its database). Each stream is seekable, and
    # ``seek(0, io.SEEK_END)`` gives the size stored so far (a running job's output grows).

    def open_input(self, job: JobRecord) -> BinaryIO | None:
        """The stored input CSV, or None for a noinput job."""
        return self.store.open_file(job.id, "input")

    def open_output(self, job: JobRecord) -> BinaryIO | None:
        """The output written so far (the whole of it once the job ended), or None when the job
        has written none yet. When the output went to the local fallback (contract 4.3), that
        file."""
        if job.output_path:
            try:
                return open(job.output_path, "rb")
            except FileNotFoundError:
                return None
        return self.store.open_file(job.id, "output")

    def read_log(self, job: JobRecord, start: int = 0) -> tuple[bytes, int]:
        """The job's log from byte ``start`` on, and the offset to pass next time (``tail -f``)."""
        stream = self.store.open_file(job.id, "log")
        if stream is None:
            return b"", start
        with stream:
            stream.seek(start)
            data = stream.read()
        return data, start + len(data)

    # ------------------------------------------------------------ running

    def running_count(self) -> int:
        """Jobs this engine runs now (0 when it runs none, or was not started to run jobs)."""
        scheduler = self.scheduler
        return scheduler.running_count() if scheduler is not None else 0

    def row_seconds(self, job_id: str) -> float | None:
        """How long the current row of a job running in this process has been running (None
        between rows, or when another process runs it): read live, since a hanging row sends no
        progress event."""
        control = self._executor.control(job_id) if self._executor is not None else None
        started = control.row_started if control is not None else None
        return None if started is None else max(0.0, self.clock.monotonic() - started)

    def wait_reason(self, job: JobRecord) -> str | None:
        """Why a started (queued) pending job has not run yet, or None when it is not waiting."""
        import socket

        from kzconsole.engine.waiting import wait_reason

        scheduler = self.scheduler
        return wait_reason(
            job,
            store=self.store,
            host=socket.gethostname(),
            running_here=scheduler.running_count() if scheduler is not None else None,
            max_running=self.settings.tasks.max_running,
        )

    def run_job(
        self, job_id: str, *, control: JobControl | None = None, on_started: Callable[[JobRecord], None] | None = None
    ) -> JobRecord:
        """Run a pending job in this process until it ends (``tasks run``), through the same
        executor as the scheduler. The caller may stop it through ``control`` (Ctrl-C is such a
        stop). Returns the final record."""
        from kzconsole.engine.foreground import run_in_foreground
        from kzconsole.engine.leases import Lease

        job = self.find_job(job_id)
        executor = self.executor
        started_feed = self._start_feed()  # stops and pauses asked elsewhere reach the run
        try:
            return run_in_foreground(
                job,
                lifecycle=self.lifecycle,
                executor=executor,
                lease=Lease(self.store, self.node, self.clock, name=self.node_name),
                control=control,
                on_started=on_started,
            )
        finally:
            if started_feed is not None:
                self._stop_feed()
