"""The parts of an engine and their life: the store, the job lifecycle, the catalog and its
loader, the executor, and, once started, the scheduler, the changes feed follower, the plugin
watcher and the trigger engine. :class:`~kzconsole.engine.engine.Engine` (the facade) is made of
these; nothing here is called by the console, the command line or the API but through it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.engine.events import CatalogChanged, EngineLogged, EventBus, StoreChanged
from kzconsole.engine.hosts import new_node_id, node_name
from kzconsole.engine.intake import private_dir
from kzconsole.engine.lifecycle import JobLifecycle
from kzconsole.engine.runtime import EngineRuntime
from kzconsole.engine.store import Store, StoreChange, open_store

# The catalog, loader, runner and scheduler are imported where they are first used: `kzconsole
# tasks list` or `show` never needs them, and the command line must start fast.
if TYPE_CHECKING:
    from kzconsole.engine.catalog import Catalog
    from kzconsole.engine.engine import Engine
    from kzconsole.engine.executor import ClaimHook, Executor
    from kzconsole.engine.loader import Loader
    from kzconsole.engine.scheduler import Scheduler
    from kzconsole.engine.triggers import TriggerEngine

__all__ = ["EngineParts"]

log = logging.getLogger("kzconsole.engine")


class EngineParts:
    """What an engine is made of (see the module docstring). Parts are made on first use."""

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
        # Where add_job checks an input before the store takes it (made once: a Path join was a
        # tenth of adding a job without input, which never uses it).
        self._incoming = self.data_dir / "incoming"
        self.events = EventBus()
        # The node name (contract 9: --node, engine.node, else the host name) is what jobs record
        # as their `node`; the engine id, unique to this process, owns the jobs it runs.
        self.node_name = node_name(getattr(getattr(settings, "engine", None), "node", None))
        self.node = node or new_node_id(self.node_name)
        # EngineParts is only ever the base of the Engine facade, whose methods the runtime uses.
        self.runtime = EngineRuntime(cast("Engine", self))
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
            lifecycle = self._lifecycle = JobLifecycle(self.store, self.events, self.clock, self.node, self.node_name)
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
        self.catalog  # noqa: B018 - the property creates the loader
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
                    claim_hook=self._claim_hook,
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
        self.catalog  # noqa: B018 - the property loads the plugins, before the first job is claimed
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

    @property
    def services(self) -> tuple[Any, ...]:
        """The background services running since :meth:`start` (the plugin watcher, the trigger
        engine), in the order they started."""
        return tuple(self._extra)

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
            except Exception:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
