"""The engine facade: the one object the command line and the console talk to.

It wires the catalog (plugins), the store, the scheduler (job threads) and, when asked to run,
the plugin watcher and the trigger engine. Every public method is safe to call from any thread.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from typing import TYPE_CHECKING

from kzconsole import plugin as _plugin_api
from kzconsole.engine.arguments import check_account_id, check_wait_ms
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.events import CatalogChanged, EventBus, JobChanged, JobDeleted, StoreChanged
from kzconsole.engine.hosts import new_node_id
from kzconsole.engine.models import STOPPED_BY_OPERATOR, JobRecord, JobStatus
from kzconsole.engine.store import Store, open_store
from kzconsole.plugin import Database, TaskSpec

# The catalog, loader, input checks, runner and scheduler are imported where they are first used:
# `kzconsole tasks list` or `show` never needs them, and the command line must start fast.
if TYPE_CHECKING:
    from kzconsole.engine.catalog import Catalog, PluginSource
    from kzconsole.engine.loader import Loader
    from kzconsole.engine.runner import JobControl
    from kzconsole.engine.scheduler import Scheduler

log = logging.getLogger("kzconsole.engine")


class EngineError(Exception):
    """An operation that cannot be done; ``str()`` is the message for the operator."""


class JobNotFound(EngineError):
    pass


class InvalidJobState(EngineError):
    """The job's status does not allow the operation (``already finished``, ``not running``)."""


class JobRejected(EngineError):
    """Contract 3.3: the job was not created; ``errors`` holds every problem found."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__(describe_errors(errors))


def describe_errors(errors: dict[str, Any]) -> str:
    parts = []
    if "unknown_task" in errors:
        parts.append(f"unknown task {errors['unknown_task']}")
    if "expected_content" in errors:
        if errors["expected_content"] == "none":
            parts.append("this task takes no input, but input was given")
        else:
            parts.append("this task needs CSV input (--input FILE)")
    if "csv" in errors:
        err = errors["csv"]
        where = f"line {err['line']}: " if err.get("line") is not None else ""
        parts.append(f"invalid input: {where}{err['message']}")
    if "missing_mandatory_fields" in errors:
        parts.append("missing mandatory column(s): " + ", ".join(errors["missing_mandatory_fields"]))
    if "missing_mandatory_values" in errors:
        mv = errors["missing_mandatory_values"]
        lines = ", ".join(str(n) for n in mv["lines"][:20])
        more = "" if mv["count"] <= 20 else f" (and {mv['count'] - 20} more)"
        parts.append(f"empty mandatory value(s) on line(s) {lines}{more}")
    return "; ".join(parts) or "rejected"


class EngineRuntime(_plugin_api.Runtime):
    """The engine services offered to plugins through ``kzconsole.plugin.runtime()``."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine

    def options(self, name: str) -> dict[str, Any]:
        return dict(self._engine.settings.plugin_options.get(name, {}))

    def databases(self) -> list[Database]:
        from kzconsole.engine.databases import list_databases

        return list_databases(self._engine.settings)

    def jobs(self, *, status: Any = None) -> list[dict[str, Any]]:
        return [j.public() for j in self._engine.list_jobs(status=status)]

    def remove_job(self, job_id: str) -> None:
        self._engine.remove_job(job_id)

    def now(self) -> float:
        return self._engine.clock.time()

    @property
    def data_dir(self) -> Path:
        return self._engine.data_dir


def _private_dir(path: Path) -> Path:
    # Every folder made here, missing parents included, is 0700 (mkdir(parents=True) would give
    # the parents the umask's mode): job files are nobody else's business.
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


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


def _safe_file_name(name: str | None) -> str | None:
    """A user-given file name (``--file-name``, a JSON envelope's) as shown and used to name
    downloads: its last path component only, without control characters."""
    if name is None:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return None if name in ("", ".", "..") else name[:255]


class Engine:
    """Jobs, plugins and triggers over one store.

    ``Engine(settings)`` is cheap: plugins load on first use of :attr:`catalog`, and nothing runs
    in the background until :meth:`start`.
    """

    def __init__(
        self,
        settings: Any,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: Store | None = None,
        node: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.data_dir = Path(settings.data_dir)
        _private_dir(self.data_dir)
        self.events = EventBus()
        self.node = node or new_node_id()
        self._store = store
        self._catalog: Catalog | None = None
        self._loader: Loader | None = None
        self._catalog_lock = threading.Lock()
        self.scheduler: Scheduler | None = None
        self._started = False
        self._extra: list[Any] = []  # background services (watcher, triggers) started with the engine
        self._foreground: dict[str, JobControl] = {}  # jobs run by run_job in this process
        self.log_buffer: Any = None  # a LogBuffer of the engine's log once started (the Logs view)
        self._feed: Any = None  # the ChangeFeed follower while started

    # ---------------------------------------------------------------- parts

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.store_url, clock=self.clock.time)
        return self._store

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            with self._catalog_lock:
                if self._catalog is None:
                    from kzconsole.engine.catalog import Catalog
                    from kzconsole.engine.loader import Loader

                    _plugin_api._set_runtime(EngineRuntime(self))
                    catalog = Catalog()
                    loader = Loader(
                        catalog,
                        clock=self.clock.time,
                        strict_permissions=self.settings.plugins.strict_permissions,
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

    # ------------------------------------------------------------ lifecycle

    def start(self, *, run_jobs: bool = True, watch: bool | None = None, triggers: bool | None = None) -> None:
        """Run in the background: job scheduler, plugin watcher, triggers."""
        if self._started:
            return
        self._started = True
        from kzconsole.engine.logs import LogBuffer, install_stream_router

        install_stream_router()
        self.log_buffer = LogBuffer()
        root = logging.getLogger("kzconsole")
        root.addHandler(self.log_buffer)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        self.catalog  # load plugins before the first job is claimed
        if run_jobs:
            from kzconsole.engine.scheduler import Scheduler

            self.scheduler = Scheduler(
                store=self.store,
                catalog=self.catalog,
                events=self.events,
                data_dir=self.data_dir,
                node=self.node,
                max_running=self.settings.tasks.max_running,
                progress_every=self.settings.tasks.send_progress_after_processed,
                fallback_dir=self.settings.tasks.output_fallback_dir,
                clock=self.clock,
            )
            self.scheduler.start()
        from kzconsole.engine.feed import ChangeFeed

        self._feed = ChangeFeed(self.store, self._on_store_changes)
        self._feed.start()
        for service in self._background_services(watch, triggers):
            service.start()
            self._extra.append(service)

    def _background_services(self, watch: bool | None, triggers: bool | None) -> list[Any]:
        services: list[Any] = []
        if watch is None:
            watch = self.settings.plugins.reload
        if watch and self.settings.plugins.paths:
            try:
                from kzconsole.engine.watcher import PluginWatcher
            except ImportError:
                PluginWatcher = None  # type: ignore[assignment]
            if PluginWatcher is not None:
                # step_ms=50: ~0.1% idle CPU (10 ms cost ~0.5%) for ~50 ms more latency, far under 0.5 s.
                services.append(PluginWatcher(self.loader, self.settings.plugins.paths, step_ms=50))
        if triggers is None:
            triggers = self.settings.triggers.enabled
        if triggers:
            try:
                from kzconsole.engine.triggers import TriggerEngine
            except ImportError:
                TriggerEngine = None  # type: ignore[assignment]
            if TriggerEngine is not None:
                services.append(TriggerEngine.for_engine(self))
        return services

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Graceful shutdown: running jobs checkpoint and will resume at the next start."""
        stuck: list[str] = []
        for service in reversed(self._extra):
            try:
                service.stop()
            except Exception:  # noqa: BLE001
                log.exception("stopping %r failed", service)
        self._extra.clear()
        if self._feed is not None:
            self._feed.stop()
            self._feed = None
        if self.scheduler is not None:
            stuck = self.scheduler.stop(timeout)
            self.scheduler = None
        if self.log_buffer is not None:
            logging.getLogger("kzconsole").removeHandler(self.log_buffer)
        self._started = False
        return stuck

    def _on_store_changes(self, changes: list[Any]) -> None:
        """Other handles' writes (the feed's thread): tell the scheduler, then the subscribers."""
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.on_store_changes(changes)
        job_ids = tuple(dict.fromkeys(c.job_id for c in changes if c.job_id is not None))
        self.events.emit(StoreChanged(job_ids=job_ids, kinds=frozenset(c.kind for c in changes)))

    def close(self) -> None:
        self.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Engine":
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

    def trigger_schedule(self) -> list[dict[str, Any]]:
        """Each trigger with its bound functions, next firing and last firing (the
        ``triggers --json`` "triggers" list)."""
        from kzconsole.engine import triggers

        return triggers.schedule(self)

    def firings(self, *, trigger: str | None = None, limit: int = 100) -> list[Any]:
        """Trigger firings, newest first."""
        return self.store.list_firings(trigger=trigger, limit=limit)

    def fire_trigger(self, name: str, *, wait: bool = True) -> Any:
        """Fire ``minutely``, ``hourly``, ``daily`` or ``databases`` now. With wait=False it runs
        in a background thread and this returns None at once (the console's key)."""
        from kzconsole.engine import triggers

        return triggers.fire(self, name, wait=wait)

    # ----------------------------------------------------------------- jobs

    def job_dir(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):  # never a path: a job id is 32 hex characters
            raise ValueError(f"not a job id: {job_id!r}")
        return self.data_dir / "jobs" / job_id

    def add_job(
        self,
        category: str,
        action: str,
        *,
        input: str | os.PathLike | BinaryIO | None = None,
        fmt: str | None = None,
        file_name: str | None = None,
        account_id: str | None = None,
        auth_account_id: str | None = None,
        wait_ms: int | None = None,
        start: bool = False,
    ) -> JobRecord:
        """Check the input (contract 3.3) and create a pending job; raise JobRejected (storing
        nothing) when a check fails."""
        spec = self.catalog.task(category, action)
        if spec is None:
            raise JobRejected({"unknown_task": f"{category}/{action}"})
        _check_job_arguments(account_id=account_id, auth_account_id=auth_account_id, wait_ms=wait_ms)
        job_id = uuid.uuid4().hex
        input_name = None
        if input is not None and isinstance(input, (str, os.PathLike)):
            input_name = os.path.basename(os.fspath(input))
        from kzconsole.engine.csvio import check_input, sniff_format

        fmt = sniff_format(input_name, fmt)
        errors: dict[str, Any] = {}
        total: int | None = None
        stored_input: str | None = None
        envelope_name: str | None = None
        # The input is checked (and converted, for JSON) into a private file of this process, then
        # handed to the store with the record: a rejected input never reaches the store.
        checked = _private_dir(self.data_dir / "incoming") / f"{job_id}.csv" if input is not None else None
        try:
            if input is not None:
                assert checked is not None
                try:
                    check = check_input(input, checked, fmt=fmt, mandatory=spec.mandatory)
                except OSError as exc:
                    raise EngineError(f"cannot read the input {input_name or '-'}: {exc.strerror or exc}") from exc
                envelope_name = check.file_name
                has_input = bool(check.errors) or check.header is not None
                if spec.is_noinput:
                    if has_input:
                        errors["expected_content"] = "none"
                elif not has_input:
                    errors["expected_content"] = "text/csv"
                    if spec.mandatory:
                        errors["missing_mandatory_fields"] = list(spec.mandatory)
                else:
                    errors.update(check.errors)
                    total = check.total_rows
                    stored_input = f"jobs/{job_id}/in.csv"
            elif not spec.is_noinput:
                errors["expected_content"] = "text/csv"
                if spec.mandatory:
                    errors["missing_mandatory_fields"] = list(spec.mandatory)
            if errors:
                raise JobRejected(errors)
            accounts = self.settings.accounts
            now = self.clock.time()
            job = JobRecord(
                id=job_id,
                # Each configured default applies to what is not given: `--account X` alone
                # keeps the configured auth account, which is who created the job.
                account_id=account_id or accounts.account_id,
                auth_account_id=auth_account_id or accounts.auth_account_id,
                category=category,
                action=action,
                file_name=(_safe_file_name(file_name) or _safe_file_name(envelope_name)
                           or (input_name if stored_input else None)) or None,
                status=JobStatus.PENDING,
                created=now,
                total_count=total,
                wait_after_row_ms=self.settings.tasks.wait_after_row_ms if wait_ms is None else wait_ms,
                input_path=stored_input,
                queued_at=now if start else None,
            )
            if stored_input is not None:
                assert checked is not None
                with open(checked, "rb") as f:
                    self.store.create_job(job, input=f)
            else:
                self.store.create_job(job)
        finally:
            if checked is not None:
                try:
                    checked.unlink()
                except FileNotFoundError:
                    pass
        self.events.emit(JobChanged(job))
        if start and self.scheduler is not None:
            self.scheduler.notify_queued()
        return job

    def get_job(self, job_id: str) -> JobRecord:
        if not _JOB_ID.fullmatch(job_id):
            raise JobNotFound(f"no job {job_id}")
        job = self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        return job

    def find_job(self, prefix: str) -> JobRecord:
        """A job by id; the console and the command line also accept a unique id prefix (>= 6)."""
        if not _JOB_ID_OR_PREFIX.fullmatch(prefix):  # what users type never reaches a path
            raise JobNotFound(f"no job {prefix}")
        job = self.store.get_job(prefix)
        if job is not None:
            return job
        if len(prefix) >= 6 and all(c in "0123456789abcdef" for c in prefix):
            matches = self._by_prefix(prefix)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise JobNotFound(f"job id prefix {prefix} is ambiguous ({len(matches)} jobs)")
        raise JobNotFound(f"no job {prefix}")

    def _by_prefix(self, prefix: str) -> list[JobRecord]:
        finder = getattr(self.store, "jobs_with_prefix", None)
        if finder is not None:
            return finder(prefix)
        return [j for j in self.store.list_jobs() if j.id.startswith(prefix)]

    def list_jobs(self, *, account_id: str | None = None, status: str | Iterable[str] | None = None,
                  limit: int | None = None, offset: int = 0, task: str | None = None,
                  id_prefix: str | None = None) -> list[JobRecord]:
        """Jobs newest first; ``task`` is a piece of ``category/action`` (case-insensitive)."""
        return self.store.list_jobs(account_id=account_id, status=status, limit=limit, offset=offset,
                                    task=task, id_prefix=id_prefix)

    def iter_job_rows(self, columns: Sequence[str], *, account_id: str | None = None,
                      status: str | Iterable[str] | None = None, limit: int | None = None,
                      offset: int = 0) -> Iterator[tuple[Any, ...]]:
        """The values of ``columns`` (JobRecord field names, ``id`` and ``created`` among them) for
        the jobs ``list_jobs`` returns, in its order, streamed: for listings of every job, where a
        JobRecord per row was most of the time (``tasks list`` with 100,000 jobs). ``status`` is
        its string. Errors in the arguments are raised by the first ``next()``."""
        rows = getattr(self.store, "iter_job_rows", None)
        if rows is not None:
            return rows(columns, account_id=account_id, status=status, limit=limit, offset=offset)
        jobs = self.list_jobs(account_id=account_id, status=status, limit=limit, offset=offset)
        return (tuple(getattr(job, c).value if c == "status" else getattr(job, c) for c in columns) for job in jobs)

    def count_jobs(self, *, account_id: str | None = None, status: str | Iterable[str] | None = None,
                   task: str | None = None, id_prefix: str | None = None) -> int:
        return self.store.count_jobs(account_id=account_id, status=status, task=task, id_prefix=id_prefix)

    def start_job(self, job_id: str) -> JobRecord:
        """Queue a pending job; a running engine on the same store picks it up."""
        job = self.find_job(job_id)
        if job.status.is_finished:
            raise InvalidJobState(f"job {job.id} is already finished ({job.status.value})")
        if job.status is JobStatus.EXECUTING:
            raise InvalidJobState(f"job {job.id} is already running")
        if job.queued_at is not None:
            return job
        updated = self.store.update_job(
            job.id, {"queued_at": self.clock.time()}, expect={"status": "pending", "queued_at": None}
        )
        if updated is None:
            return self.start_job(job.id)  # it changed under us: report its new state
        self.events.emit(JobChanged(updated))
        if self.scheduler is not None:
            self.scheduler.notify_queued()
        return updated

    def stop_job(self, job_id: str) -> JobRecord:
        """Pending: stopped at once. Executing: the owning engine stops it before its next row."""
        job = self.find_job(job_id)
        if job.status is JobStatus.PENDING:
            updated = self.store.update_job(
                job.id,
                {"status": JobStatus.STOPPED.value, "end_timestamp": self.clock.time(),
                 "error": STOPPED_BY_OPERATOR, "queued_at": None},
                expect={"status": "pending"},
            )
            if updated is None:
                return self.stop_job(job.id)
            self.events.emit(JobChanged(updated))
            return updated
        if job.status is JobStatus.EXECUTING:
            updated = self.store.update_job(job.id, {"stop_requested": True}, expect={"status": "executing"})
            if updated is None:
                return self.stop_job(job.id)
            control = self.scheduler.control(job.id) if self.scheduler else None
            if control is not None:
                control.request_stop()
            self._foreground_stop(job.id)
            self.events.emit(JobChanged(updated))
            return updated
        raise InvalidJobState(f"job {job.id} is not running ({job.status.value})")

    def set_wait(self, job_id: str, wait_ms: int) -> JobRecord:
        _check_job_arguments(wait_ms=wait_ms)
        job = self.find_job(job_id)
        if job.status.is_finished:
            raise InvalidJobState(f"job {job.id} is already finished ({job.status.value})")
        updated = self.store.update_job(job.id, {"wait_after_row_ms": int(wait_ms)},
                                        expect={"status": job.status.value})
        if updated is None:
            return self.set_wait(job.id, wait_ms)
        control = self.scheduler.control(job.id) if self.scheduler else None
        if control is not None:
            control.set_wait(int(wait_ms))
        fg = self._foreground.get(job.id)
        if fg is not None:
            fg.set_wait(int(wait_ms))
        self.events.emit(JobChanged(updated))
        return updated

    def restart_job(self, job_id: str, *, start: bool = True) -> JobRecord:
        """A new job with the same task, input and accounts (queued to run unless start=False)."""
        old = self.find_job(job_id)
        new_id = uuid.uuid4().hex
        now = self.clock.time()
        job = JobRecord(
            id=new_id,
            account_id=old.account_id,
            auth_account_id=old.auth_account_id,
            category=old.category,
            action=old.action,
            file_name=old.file_name,
            status=JobStatus.PENDING,
            created=now,
            total_count=old.total_count,
            wait_after_row_ms=old.wait_after_row_ms,
            input_path=f"jobs/{new_id}/in.csv" if old.input_path is not None else None,
            queued_at=now if start else None,
        )
        if old.input_path is not None:
            source = self.store.open_file(old.id, "input")
            if source is None:
                raise EngineError(f"the input of job {old.id} is gone")
            with source:
                self.store.create_job(job, input=source)
        else:
            self.store.create_job(job)
        self.events.emit(JobChanged(job))
        if start and self.scheduler is not None:
            self.scheduler.notify_queued()
        return job

    def remove_job(self, job_id: str) -> JobRecord:
        job = self.find_job(job_id)
        if job.status is JobStatus.EXECUTING:
            raise InvalidJobState(f"job {job.id} is running; stop it first")
        removed = self.store.delete_job(job.id, expect={"status": job.status.value})
        if removed is None:
            return self.remove_job(job.id)
        if removed.output_path:  # the output fallback is this engine's file, not the store's
            try:
                os.unlink(removed.output_path)
            except OSError:
                pass
        self.events.emit(JobDeleted(job.id))
        return removed

    def input_path(self, job: JobRecord) -> Path | None:
        """Deprecated (SQLite only): where the stored input is. Use :meth:`open_input`."""
        return self.data_dir / job.input_path if job.input_path else None

    def output_path(self, job: JobRecord) -> Path | None:
        """Deprecated (SQLite only): where the output is. Use :meth:`open_output`."""
        if job.output_path:
            return Path(job.output_path)
        default = self.job_dir(job.id) / "out.csv"
        return default if default.exists() else None

    def log_path(self, job: JobRecord) -> Path:
        """Deprecated (SQLite only): where the log is. Use :meth:`read_log`."""
        return self.job_dir(job.id) / "job.log"

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

    def running_count(self) -> int:
        """Jobs this engine runs now (0 when it runs none, or was not started to run jobs)."""
        scheduler = self.scheduler
        return scheduler.running_count() if scheduler is not None else 0

    # --------------------------------------------------------- foreground

    def _foreground_stop(self, job_id: str) -> None:
        control = self._foreground.get(job_id)
        if control is not None:
            control.request_stop()

    def run_job(
        self,
        job_id: str,
        *,
        control: JobControl | None = None,
        on_started: Callable[[JobRecord], None] | None = None,
    ) -> JobRecord:
        """Run a pending job in this process until it ends (``tasks run``). The caller may stop it
        through ``control`` (Ctrl-C). Returns the final record."""
        job = self.find_job(job_id)
        if job.status.is_finished:
            raise InvalidJobState(f"job {job.id} is already finished ({job.status.value})")
        if job.status is JobStatus.EXECUTING:
            raise InvalidJobState(f"job {job.id} is already running on {job.node}")
        spec = self.catalog.task(job.category, job.action)
        from kzconsole.engine.logs import install_stream_router
        from kzconsole.engine.runner import JobControl, JobRun
        from kzconsole.engine.scheduler import Lease

        install_stream_router()
        lease = Lease(self.store, self.node, self.clock)
        lease.renew(force=True)
        claimed = self.store.update_job(
            job.id,
            {"status": JobStatus.EXECUTING.value, "owner": self.node, "node": self.node,
             "start_timestamp": self.clock.time(), "queued_at": None, "claim": job.claim + 1},
            expect={"status": "pending", "claim": job.claim},
        )
        if claimed is None:
            lease.release()
            return self.run_job(job.id, control=control, on_started=on_started)
        if spec is None:
            final = self.store.update_job(
                job.id,
                {"status": JobStatus.INTERNAL_ERROR.value, "owner": None, "end_timestamp": self.clock.time(),
                 "error": f"task {job.category}/{job.action} is not in the catalog"},
                expect={"claim": claimed.claim},
            )
            lease.release()
            assert final is not None
            return final
        control = control or JobControl(claimed.wait_after_row_ms)
        self._foreground[job.id] = control
        self.events.emit(JobChanged(claimed))
        if on_started is not None:
            on_started(claimed)
        run = JobRun(
            claimed,
            spec,
            self.catalog.verifiers(job.category),
            store=self.store,
            data_dir=self.data_dir,
            node=self.node,
            control=control,
            events=self.events,
            fallback_dir=self.settings.tasks.output_fallback_dir,
            progress_every=self.settings.tasks.send_progress_after_processed,
            clock=self.clock,
        )
        done = threading.Event()
        result: list[JobRecord | None] = [None]

        def work() -> None:
            try:
                result[0] = run.run()
            finally:
                done.set()

        thread = threading.Thread(target=work, name=f"job-{job.id[:8]}", daemon=True)
        thread.start()
        try:
            # Heartbeat and watch for a stop asked by another process while the job runs.
            while True:
                try:
                    if done.wait(0.25):
                        break
                    lease.renew()
                    current = self.store.get_job(job.id)
                    if current is None or (current.stop_requested and not control.stop.is_set()):
                        control.request_stop()
                    elif current.wait_after_row_ms != control.wait_after_row_ms:
                        control.set_wait(current.wait_after_row_ms)
                except KeyboardInterrupt:
                    # Ctrl-C is an operator stop: the job ends `stopped` with its output so far.
                    control.request_stop()
        finally:
            self._foreground.pop(job.id, None)
            thread.join()
            lease.release()
        final = result[0] or self.store.get_job(job.id)
        if final is None:
            raise JobNotFound(f"job {job.id} was removed while it ran")
        return final
