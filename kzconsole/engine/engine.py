"""The engine facade: the one object the command line, the console and the API talk to.

It wires the catalog (plugins), the store, the job lifecycle (the one owner of a job's state), the
executor (which runs jobs, for the scheduler and for ``tasks run`` alike), the scheduler (job
threads), the changes feed follower and, when asked to run, the plugin watcher and the trigger
engine. Every public method is safe to call from any thread.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Sequence

from kzconsole.engine.arguments import check_account_id, check_wait_ms
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.errors import EngineError, InvalidJobState, JobNotFound, JobRejected, describe_errors
from kzconsole.engine.events import CatalogChanged, EngineLogged, EventBus, StoreChanged
from kzconsole.engine.hosts import new_node_id, node_name
from kzconsole.engine.intake import InputReport, private_dir
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.models import PUBLIC_JOB_KEYS, Firing, JobRecord, JobStatus
from kzconsole.engine.runtime import EngineRuntime
from kzconsole.engine.store import Store, StoreChange, open_store
from kzconsole.engine.store.query import JobQuery, JobRows
from kzconsole.plugin import TaskSpec

# The catalog, loader, input checks, runner and scheduler are imported where they are first used:
# `kzconsole tasks list` or `show` never needs them, and the command line must start fast.
if TYPE_CHECKING:
    from kzconsole.engine.catalog import Catalog, PluginSource
    from kzconsole.engine.control import JobControl
    from kzconsole.engine.executor import ClaimHook, Executor
    from kzconsole.engine.loader import Loader
    from kzconsole.engine.scheduler import Scheduler
    from kzconsole.engine.triggers import TriggerEngine

__all__ = ["Engine", "EngineError", "InvalidJobState", "JobNotFound", "JobRejected", "describe_errors"]

log = logging.getLogger("kzconsole.engine")

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_JOB_ID_OR_PREFIX = re.compile(r"[0-9a-f]{6,32}")


def _check_job_arguments(**values: Any) -> None:
    """Refuse a bad account id or pause before anything is stored (EngineError naming it)."""
    for name, value in values.items():
        if value is None:
            continue
        check = check_wait_ms if name == "wait_ms" else check_account_id
        try:
            check(value)
        except ValueError as exc:
            raise EngineError(f"{name}: {exc}") from None


class Engine:
    """Jobs, plugins and triggers over one store.

    ``Engine(settings)`` is cheap: plugins load on first use of :attr:`catalog`, and nothing runs
    in the background until :meth:`start`. ``claim_hook(step, job_id)`` is called at each step of
    a claim (see :mod:`kzconsole.engine.executor`), for tests that race against them.
    """

    def __init__(
        self,
        settings: Any,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: Store | None = None,
        node: str | None = None,
        claim_hook: ClaimHook | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.data_dir = Path(settings.data_dir)
        private_dir(self.data_dir)
        self.events = EventBus()
        # The node name (contract 9: --node, engine.node, else the host name) is what jobs record
        # as their `node`; the engine id, unique to this process, owns the jobs it runs.
        self.node_name = node_name(getattr(getattr(settings, "engine", None), "node", None))
        self.node = node or new_node_id(self.node_name)
        self.runtime = EngineRuntime(self)
        self._store = store
        self._lifecycle: JobLifecycle | None = None
        self._catalog: Catalog | None = None
        self._loader: Loader | None = None
        self._executor: Executor | None = None
        self._claim_hook = claim_hook
        self._parts_lock = threading.RLock()
        self.scheduler: Scheduler | None = None
        self._started = False
        self._extra: list[Any] = []  # background services (watcher, triggers) started with the engine
        self._feed: Any = None  # the ChangeFeed follower while started (or while run_job runs)
        self.log_buffer: Any = None  # a LogBuffer of the engine's log once started (the Logs view)

    # ---------------------------------------------------------------- parts

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._parts_lock:
                if self._store is None:
                    self._store = open_store(self.settings.store_url, clock=self.clock.time)
        return self._store

    @property
    def lifecycle(self) -> JobLifecycle:
        """The one owner of a job's state (every status and counter change goes through it)."""
        lifecycle = self._lifecycle
        if lifecycle is None or lifecycle.store is not self.store:
            lifecycle = self._lifecycle = JobLifecycle(self.store, self.events, self.clock, self.node,
                                                             self.node_name)
        return lifecycle

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            with self._parts_lock:
                if self._catalog is None:
                    from kzconsole.engine.catalog import Catalog
                    from kzconsole.engine.loader import Loader

                    catalog = Catalog()
                    loader = Loader(
                        catalog,
                        clock=self.clock.time,
                        strict_permissions=self.settings.plugins.strict_permissions,
                        context=self.runtime.bound,
                    )
                    loader.load_all(self.settings.plugins.paths)
                    catalog.subscribe(lambda: self.events.emit(CatalogChanged(catalog.version)))
                    self._loader = loader
                    self._catalog = catalog
        return self._catalog

    @property
    def loader(self) -> Loader:
        self.catalog
        assert self._loader is not None
        return self._loader

    @property
    def executor(self) -> Executor:
        if self._executor is None or self._executor.store is not self.store:
            with self._parts_lock:
                from kzconsole.engine.executor import Executor

                tasks = self.settings.tasks
                self._executor = Executor(
                    lifecycle=self.lifecycle,
                    store=self.store,
                    catalog=self.catalog,
                    events=self.events,
                    clock=self.clock,
                    progress_every=tasks.send_progress_after_processed,
                    fallback_dir=tasks.output_fallback_dir,
                    hook=self._claim_hook,
                    context=self.runtime.bound,
                )
        return self._executor

    # ------------------------------------------------------------ lifecycle

    def start(self, *, run_jobs: bool = True, watch: bool | None = None, triggers: bool | None = None) -> None:
        """Run in the background: job scheduler, changes feed, plugin watcher, triggers."""
        if self._started:
            return
        self._started = True
        from kzconsole.engine.logs import LogBuffer, install_stream_router

        install_stream_router()
        self.log_buffer = LogBuffer(on_record=self._on_log_record)
        root = logging.getLogger("kzconsole")
        root.addHandler(self.log_buffer)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        self.catalog  # load plugins before the first job is claimed
        if run_jobs:
            from kzconsole.engine.scheduler import Scheduler

            self.scheduler = Scheduler(
                store=self.store,
                lifecycle=self.lifecycle,
                executor=self.executor,
                max_running=self.settings.tasks.max_running,
                clock=self.clock,
            )
            self.scheduler.start()
        self._start_feed()
        for service in self._background_services(watch, triggers):
            service.start()
            self._extra.append(service)

    def _on_log_record(self, created: float, level: str, logger: str, message: str) -> None:
        self.events.emit(EngineLogged(created, level, logger, message))

    def _start_feed(self) -> Any:
        if self._feed is None:
            from kzconsole.engine.feed import ChangeFeed

            self._feed = ChangeFeed(self.store, self._on_store_changes)
            self._feed.start()
            return self._feed
        return None

    def _stop_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()

    def _on_store_changes(self, changes: list[StoreChange]) -> None:
        """Other handles' writes (the feed's thread): the runs here, the scheduler, the subscribers."""
        if self._executor is not None:
            self._executor.on_store_changes(changes)
        scheduler = self.scheduler
        if scheduler is not None and any(c.kind in ("job", "reset") for c in changes):
            scheduler.notify_queued()
        job_ids = tuple(dict.fromkeys(c.job_id for c in changes if c.job_id is not None))
        self.events.emit(StoreChanged(job_ids=job_ids, kinds=frozenset(c.kind for c in changes)))

    def _make_triggers(self, *, own_lease: bool) -> TriggerEngine:
        from kzconsole.engine.databases import list_databases
        from kzconsole.engine.triggers import TriggerEngine

        settings = self.settings
        return TriggerEngine(
            catalog=self.catalog,
            store=self.store,
            node=self.node,
            events=self.events,
            clock=self.clock,
            databases=lambda: list_databases(settings),
            browse_dbs_interval_s=settings.triggers.browse_dbs_interval_s,
            history_days=settings.triggers.history_days,
            own_lease=own_lease,
            context=self.runtime.bound,
        )

    def _background_services(self, watch: bool | None, triggers: bool | None) -> list[Any]:
        services: list[Any] = []
        if watch is None:
            watch = self.settings.plugins.reload
        if watch and self.settings.plugins.paths:
            from kzconsole.engine.watcher import PluginWatcher

            # step_ms=50: ~0.1% idle CPU (10 ms cost ~0.5%) for ~50 ms more latency, far under 0.5 s.
            services.append(PluginWatcher(self.loader, self.settings.plugins.paths, step_ms=50))
        if triggers is None:
            triggers = self.settings.triggers.enabled
        if triggers:
            # When the scheduler runs it heartbeats this node (and releases the lease last).
            services.append(self._make_triggers(own_lease=self.scheduler is None))
        return services

    def _running_triggers(self) -> TriggerEngine | None:
        from kzconsole.engine.triggers import TriggerEngine

        for service in self._extra:
            if isinstance(service, TriggerEngine) and service.running:
                return service
        return None

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Graceful shutdown: running jobs checkpoint and will resume at the next start."""
        stuck: list[str] = []
        for service in reversed(self._extra):
            try:
                service.stop()
            except Exception:  # noqa: BLE001
                log.exception("stopping %r failed", service)
        self._extra.clear()
        self._stop_feed()
        if self.scheduler is not None:
            stuck = self.scheduler.stop(timeout)
            self.scheduler = None
        if self.log_buffer is not None:
            logging.getLogger("kzconsole").removeHandler(self.log_buffer)
        self._started = False
        return stuck

    def close(self) -> None:
        self.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        triggers = self._running_triggers() or self._make_triggers(own_lease=False)
        return triggers.schedule(enabled=bool(self.settings.triggers.enabled))

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
            except Exception:  # noqa: BLE001
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
        from kzconsole.engine.intake import check_job_input, new_job, new_job_id, safe_file_name

        spec = self.catalog.task(category, action)
        if spec is None:
            raise JobRejected({"unknown_task": f"{category}/{action}"})
        _check_job_arguments(account_id=account_id, auth_account_id=auth_account_id, wait_ms=wait_ms)
        job_id = new_job_id()
        input_name = os.path.basename(os.fspath(input)) if isinstance(input, (str, os.PathLike)) else None
        # The input is checked (and converted, for JSON) into a private file of this process, then
        # handed to the store with the record: a rejected input never reaches the store.
        checked = private_dir(self.data_dir / "incoming") / f"{job_id}.csv" if input is not None else None
        try:
            try:
                report = check_job_input(spec, input, checked or Path(os.devnull), fmt=fmt)
            except OSError as exc:
                raise EngineError(f"cannot read the input {input_name or '-'}: {exc.strerror or exc}") from exc
            if report.errors:
                raise JobRejected(report.errors)
            has_input = report.header is not None
            accounts = self.settings.accounts
            job = new_job(
                job_id, category, action,
                # Each configured default applies to what is not given: `--account X` alone
                # keeps the configured auth account, which is who created the job.
                account_id=account_id or accounts.account_id,
                auth_account_id=auth_account_id or accounts.auth_account_id,
                file_name=(safe_file_name(file_name) or safe_file_name(report.file_name)
                           or (input_name if has_input else None)) or None,
                total=report.total_rows,
                has_input=has_input,
                wait_ms=self.settings.tasks.wait_after_row_ms if wait_ms is None else wait_ms,
                created=self.clock.time(),
                queued=start,
            )
            if has_input:
                assert checked is not None
                with open(checked, "rb") as f:
                    self.lifecycle.create(job, f)
            else:
                self.lifecycle.create(job)
        finally:
            if checked is not None:
                try:
                    checked.unlink()
                except FileNotFoundError:
                    pass
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
    # Every listing is one JobQuery (kzconsole.engine.JobQuery; store/query.py says what each
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

    def iter_jobs(self, query: JobQuery | None = None, columns: Sequence[str] = PUBLIC_JOB_KEYS, /,
                  **fields: Any) -> JobRows:
        """The jobs ``list_jobs`` returns as tuples of ``columns`` (JobRecord field names, default
        the public record's keys; ``status`` as its string), streamed in constant memory: for
        listings of every job (``tasks list``, the API unpaged). Use ``with``, or read to the end."""
        return self.store.iter_jobs(self._job_query(query, fields), columns)

    def _job_query(self, query: JobQuery | None, fields: dict[str, Any]) -> JobQuery:
        query = JobQuery.of(query, **fields)
        if query.now is None and query.is_live:
            # Durations are measured on the clock the engine stamps jobs with.
            query = query.replace(now=self.clock.time())
        return query

    def start_job(self, job_id: str) -> JobRecord:
        """Queue a pending job; a running engine on the same store picks it up."""
        job = self.lifecycle.queue(self.find_job(job_id))
        self._queued(True)
        return job

    def stop_job(self, job_id: str) -> JobRecord:
        """Pending: stopped at once. Executing: the owning engine stops it before its next row."""
        job = self.lifecycle.stop(self.find_job(job_id))
        if self._executor is not None:
            self._executor.apply_local(job)
        return job

    def set_wait(self, job_id: str, wait_ms: int) -> JobRecord:
        _check_job_arguments(wait_ms=wait_ms)
        job = self.lifecycle.set_wait(self.find_job(job_id), wait_ms)
        if self._executor is not None:
            self._executor.apply_local(job)
        return job

    def restart_job(self, job_id: str, *, start: bool = True, failed_only: bool = False) -> JobRecord:
        """A new job with the same task, input and accounts (queued to run unless start=False).
        ``failed_only``: its input is the rows of the old input that failed (the old job must be
        finished, with failed rows)."""
        from kzconsole.engine.restart import restarted

        job = restarted(self.find_job(job_id), lifecycle=self.lifecycle, clock=self.clock, start=start,
                        failed_only=failed_only)
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

    # Deprecated: paths of the SQLite store's files, for a console that still reads them by path.
    # They move the file out of the database (see SQLiteStore.file_path); gone once nothing calls
    # them. Everything else reads the streams above.

    def job_dir(self, job_id: str) -> Path:
        """Deprecated: the SQLite store's folder of a job."""
        if not _JOB_ID.fullmatch(job_id):  # never a path: a job id is 32 hex characters
            raise ValueError(f"not a job id: {job_id!r}")
        return self.data_dir / "jobs" / job_id

    def _local_path(self, job: JobRecord, kind: str) -> Path | None:
        self.job_dir(job.id)
        file_path = getattr(self.store, "file_path", None)  # SQLite only: see above
        if file_path is None:
            return None
        path: Path = file_path(job.id, kind)
        return path if path.exists() else None

    def input_path(self, job: JobRecord) -> Path | None:
        """Deprecated: use :meth:`open_input`."""
        return self._local_path(job, "input") if job.input_path else None

    def output_path(self, job: JobRecord) -> Path | None:
        """Deprecated: use :meth:`open_output`."""
        if job.output_path:
            return Path(job.output_path)
        return self._local_path(job, "output")

    def log_path(self, job: JobRecord) -> Path:
        """Deprecated: use :meth:`read_log`."""
        return self._local_path(job, "log") or self.job_dir(job.id) / "job.log"

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
        return wait_reason(job, store=self.store, host=socket.gethostname(),
                           running_here=scheduler.running_count() if scheduler is not None else None,
                           max_running=self.settings.tasks.max_running)

    def run_job(
        self,
        job_id: str,
        *,
        control: JobControl | None = None,
        on_started: Callable[[JobRecord], None] | None = None,
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
