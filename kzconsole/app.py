"""KzConsoleApp: the operator console, with the engine embedded.

Views are Textual *modes*, each with its own screen stack, so a job opened in the jobs view is still
open after a look at the catalog: ``1`` jobs, ``2`` catalog, ``3`` triggers, ``4`` plugins, ``5`` logs,
or the ``:`` command line. ``q`` goes back, and quits from the jobs view.

Threads: the engine starts in a plain thread after the first paint (loading plugins may take a
moment) and is stopped by :func:`run_console` after ``app.run()`` returns, never on the UI thread
(joining job threads from the event loop can deadlock). Engine events reach the screens only
through :class:`~kzconsole.bridge.EngineBridge`, drained ``console.refresh_hz`` times a second.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import Footer, Static

from kzconsole.bridge import EngineBridge
from kzconsole.engine import Engine, EngineError, JobRecord, JobStatus
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock
from kzconsole.messages import EngineStarted, EngineUpdated
from kzconsole.screens.command_line import COMMANDS, CommandLineModal, resolve
from kzconsole.screens.confirm import ConfirmModal
from kzconsole.screens.csv_view import CsvViewScreen, SaveFileModal
from kzconsole.screens.help import HelpScreen
from kzconsole.screens.job_detail import JobDetailScreen
from kzconsole.screens.jobs import JobsScreen, next_pause
from kzconsole.screens.new_job import NewJobModal, NewJobResult
from kzconsole.widgets.view_bar import VIEWS, ViewBar

log = logging.getLogger("kzconsole.console")

# mode -> (module, class) of the views written in their own files; imported when first shown.
LAZY_VIEWS: dict[str, tuple[str, str]] = {
    "catalog": ("kzconsole.screens.catalog", "CatalogScreen"),
    "triggers": ("kzconsole.screens.triggers", "TriggersScreen"),
    "plugins": ("kzconsole.screens.plugins", "PluginsScreen"),
    "logs": ("kzconsole.screens.logs", "LogsScreen"),
    "nodes": ("kzconsole.screens.nodes", "NodesScreen"),  # contract 9 (owner: pg)
}
VIEW_LABELS = {mode: label for _key, mode, label in VIEWS}
DEFAULT_THEME = "ansi-dark"  # the terminal's own 16 colours and background


class PlaceholderView(Screen):
    """Stands in for a view whose module is not there (yet): the console still starts."""

    BINDINGS = [Binding("escape", "app.back", "Back")]

    def __init__(self, mode: str, reason: str) -> None:
        super().__init__()
        self.mode = mode
        self.reason = reason
        self.VIEW_NAME = VIEW_LABELS.get(mode, mode)

    def compose(self) -> ComposeResult:
        yield ViewBar(self.mode)
        yield Static(f"The {VIEW_LABELS.get(self.mode, self.mode)} view is not available: {self.reason}",
                     id="placeholder")
        yield Footer(compact=True, show_command_palette=False)


def _lazy_view(mode: str) -> Callable[[], Screen]:
    def make() -> Screen:
        module_name, class_name = LAZY_VIEWS[mode]
        try:
            module = importlib.import_module(module_name)
            screen = getattr(module, class_name)()
        except Exception as exc:  # noqa: BLE001 - a missing or broken view must not kill the console
            log.exception("cannot open the %s view", mode)
            return PlaceholderView(mode, f"{type(exc).__name__}: {exc}")
        # Every view gets the same top line (views, engine state); the view itself stays as written.
        own_compose = screen.compose

        def compose() -> ComposeResult:
            yield ViewBar(mode)
            yield from own_compose()

        screen.compose = compose  # type: ignore[method-assign]
        if not hasattr(screen, "VIEW_NAME"):
            screen.VIEW_NAME = VIEW_LABELS.get(mode, mode)  # type: ignore[attr-defined]
        return screen

    return make


class ConsoleCommands(Provider):
    """The command palette (ctrl+p): every view, every key of the current view, and the console's own."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: KzConsoleApp = self.app  # type: ignore[assignment]
        screen = self.screen
        out: list[tuple[str, str, Callable[[], Any]]] = []
        for key, mode, label in VIEWS:
            out.append((f"View: {label}", f"switch to the {label.lower()} view (key {key}, :{mode})",
                        partial(app.action_view, mode)))
        out.append(("Job: new job…", "create a job from a task and an input file (key n)", app.open_new_job))
        view = getattr(screen, "VIEW_NAME", type(screen).__name__)
        seen = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.system or active.node is app or not active.enabled:
                continue
            ident = (binding.action, id(active.node))
            if ident in seen:
                continue
            seen.add(ident)
            display = app.get_key_display(binding)
            out.append((f"{view}: {binding.description}", f"key {display}",
                        partial(app.call_later, app.run_action, binding.action, active.node)))
        out.append(("Console: keys of this view", "key ?", app.action_help))
        out.append(("Console: command line", "key : (jobs, catalog, job ID, q…)", app.action_command_line))
        out.append(("Console: back", "key q / escape", app.action_back))
        out.append(("Console: quit", "stop the embedded engine and leave", app.action_quit_console))
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class KzConsoleApp(App[int]):
    TITLE = "kzconsole"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    MODES = {"jobs": JobsScreen, **{mode: _lazy_view(mode) for mode in LAZY_VIEWS}}
    DEFAULT_MODE = "jobs"

    BINDINGS = [
        Binding("q", "back", "Back", tooltip="back; from the jobs view, quit"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="the keys of this view"),
        Binding("colon", "command_line", "Cmd", key_display=":", tooltip="command line: :jobs :catalog :triggers :plugins :logs :job ID :new :q"),
        Binding("1", "view('jobs')", "Jobs", show=False),
        Binding("2", "view('catalog')", "Catalog", show=False),
        Binding("3", "view('triggers')", "Triggers", show=False),
        Binding("4", "view('plugins')", "Plugins", show=False),
        Binding("5", "view('logs')", "Logs", show=False),
        Binding("6", "view('nodes')", "Nodes", show=False),
        Binding("ctrl+c", "quit_console", "Quit", show=False, priority=True),
        Binding("ctrl+q", "quit_console", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        settings: Any,
        *,
        engine: Engine | None = None,
        clock: Clock | None = None,
        start_engine: bool = True,
        theme: str | None = DEFAULT_THEME,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.clock: Clock = clock or (engine.clock if engine is not None else SYSTEM_CLOCK)
        self.engine: Engine = engine or Engine(settings, clock=self.clock)
        # Open the store here, on one thread, before any other thread can race to open it.
        self.engine.store
        self.bridge = EngineBridge(self.engine)
        self.start_engine = start_engine
        self.engine_state = "off"  # off | starting | running | failed
        self.engine_error: str | None = None
        self._initial_theme = theme
        self._notified: set[str] = set()
        self._status_cache = ("", False)

    # ------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        if self._initial_theme:
            self.theme = self._initial_theme
        self.bridge.attach()
        hz = max(1, int(getattr(getattr(self.settings, "console", None), "refresh_hz", 10) or 10))
        self.set_interval(1 / hz, self._drain)
        if self.start_engine:
            self.engine_state = "starting"
            self.call_after_refresh(self._start_engine)

    def _start_engine(self) -> None:
        """A plain thread, not a Textual worker: the engine's threads must not hold app.run()."""

        def run() -> None:
            try:
                self.engine.start()
            except Exception as exc:  # noqa: BLE001 - shown in the console
                log.exception("the engine failed to start")
                self.post_message(EngineStarted(f"{type(exc).__name__}: {exc}"))
            else:
                self.post_message(EngineStarted())

        threading.Thread(target=run, name="kz-console-start", daemon=True).start()

    def on_engine_started(self, message: EngineStarted) -> None:
        if message.error:
            self.engine_state = "failed"
            self.engine_error = message.error
            self.notify(message.error, title="The engine did not start", severity="error", timeout=15)
        else:
            self.engine_state = "running"
        self._refresh_status()

    def on_unmount(self) -> None:
        self.bridge.detach()

    @property
    def engine_running(self) -> bool:
        return self.engine_state == "running"

    def on_cluster_store(self) -> bool:
        """Whether the store is shared by a cluster of nodes (the view bar lists Nodes then)."""
        return self.engine.store_display.startswith(("postgresql:", "postgres:"))

    def engine_status(self) -> tuple[str, bool]:
        """The engine's state for the view bar: (text, needs attention)."""
        state = self.engine_state
        if state == "running":
            scheduler = self.engine.scheduler
            running = scheduler.running_count() if scheduler is not None else 0
            return (f"engine ● {running} running" if running else "engine ● idle"), False
        if state == "starting":
            return "engine starting…", False
        if state == "failed":
            return "engine FAILED", True
        return "engine off", True

    def _refresh_status(self) -> None:
        status = self.engine_status()
        if status != self._status_cache:
            self._status_cache = status
            for bar in self.screen.query(ViewBar):
                bar.refresh()

    # ------------------------------------------------------------ engine news

    def _drain(self) -> None:
        batch = self.bridge.drain()
        self._refresh_status()
        if batch is None:
            return
        for job in batch.finished:
            self._notify_finished(job)
        message_for = EngineUpdated
        # Every screen of the current stack: a modal's background stays live.
        for screen in self.screen_stack:
            screen.post_message(message_for(batch))

    def _notify_finished(self, job: JobRecord) -> None:
        key = f"{job.id}:{job.status.value}"
        if key in self._notified:
            return
        self._notified.add(key)
        status = job.status
        counts = f"✔ {job.success_count:,} ✖ {job.failure_count:,}"
        if status is JobStatus.SUCCESS:
            severity, text = "information", f"finished: success ({counts})"
        elif status is JobStatus.PARTIAL:
            severity, text = "warning", f"finished with failures: partial ({counts})"
        elif status is JobStatus.FAILURE:
            severity, text = "error", f"failed: every row failed ({counts})"
        elif status is JobStatus.STOPPED:
            severity, text = "information", f"stopped ({counts})"
        else:
            severity, text = "error", f"internal error: {job.error or 'see its log'}"
        self.notify(f"{job.task_name} {text}", title=f"Job {job.id[:8]}", severity=severity,
                    timeout=8 if severity == "information" else 15)

    # ------------------------------------------------------------ navigation

    def action_view(self, mode: str) -> None:
        if mode not in self.MODES:
            return
        if self.current_mode != mode:
            self.switch_mode(mode)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.current_mode != "jobs":
            self.switch_mode("jobs")
        else:
            self.action_quit_console()

    def action_quit_console(self) -> None:
        scheduler = self.engine.scheduler
        running = scheduler.running_count() if scheduler is not None and self.engine_running else 0
        if not running:
            self.exit(0)
            return
        if isinstance(self.screen, ConfirmModal):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(0)

        self.push_screen(
            ConfirmModal(
                f"{running} job{'s are' if running != 1 else ' is'} running in this console's engine.\n"
                f"Quitting pauses {'them' if running != 1 else 'it'} at a checkpoint; "
                f"{'they resume' if running != 1 else 'it resumes'} when an engine next opens this store.",
                title="Quit?", yes="Quit", no="Stay",
            ),
            answered,
        )

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_command_line(self) -> None:
        if isinstance(self.screen, CommandLineModal):
            return
        self.push_screen(CommandLineModal(), self.run_command)

    def run_command(self, line: str | None) -> None:
        if not line:
            return
        command, arg = resolve(line)
        if command is None:
            self.notify(f"unknown command :{line.strip()}; try " + ", ".join(f":{c}" for c in COMMANDS),
                        severity="warning")
        elif command in ("jobs", "catalog", "triggers", "plugins", "logs", "nodes"):
            self.action_view(command)
        elif command == "quit":
            self.action_quit_console()
        elif command == "help":
            self.action_help()
        elif command == "job":
            if not arg:
                self.notify("usage: :job ID (an id prefix of 6+ characters works)", severity="warning")
            else:
                self.open_job(arg)
        elif command == "new":
            category, _, action = arg.partition("/")
            self.open_new_job(category or None, action or None)

    # ------------------------------------------------------------ jobs

    def _find(self, job_id: str) -> JobRecord | None:
        try:
            return self.engine.find_job(job_id)
        except EngineError as exc:
            self.notify(str(exc), severity="error")
            return None

    def open_job(self, job_id: str) -> None:
        job_id = job_id.strip().lower()
        if len(job_id) < 6:
            self.notify("give at least 6 characters of the job id", severity="warning")
            return
        job = self._find(job_id)
        if job is None:
            return
        if self.current_mode != "jobs":
            self.switch_mode("jobs")
        self.push_screen(JobDetailScreen(job))

    def open_new_job(self, category: str | None = None, action: str | None = None) -> None:
        """The new-job modal, pre-filled with a task (the catalog's ``n``)."""

        def created(result: NewJobResult | None) -> None:
            if result is None:
                return
            how = "created and queued to start" if result.started else "created (pending: s starts it)"
            self.notify(f"Job {result.job_id[:8]} {how}", timeout=5)
            if self.current_mode != "jobs":
                self.switch_mode("jobs")
            jobs = self.screen
            if isinstance(jobs, JobsScreen):
                jobs.select_job(result.job_id)

        self.push_screen(NewJobModal(category, action), created)

    def change_pause(self, job_id: str, step: int) -> JobRecord | None:
        job = self._find(job_id)
        if job is None:
            return None
        if job.status.is_finished:
            self.notify(f"Job {job.id[:8]} is finished: its pause no longer matters", severity="warning")
            return None
        live = self.bridge.live_progress(job.id)
        current = live.wait_after_row_ms if live is not None and job.status is JobStatus.EXECUTING else job.wait_after_row_ms
        new = next_pause(current, step)
        try:
            updated = self.engine.set_wait(job.id, new)
        except EngineError as exc:
            self.notify(str(exc), title="Cannot change the pause", severity="error")
            return None
        self.notify(f"Job {job.id[:8]}: pause {current} → {new} ms after each row", timeout=3)
        return updated

    @work(thread=True, group="job-restart")
    def restart_job(self, job_id: str, open_it: bool = False) -> None:
        try:
            job = self.engine.restart_job(job_id)
        except EngineError as exc:
            self.call_from_thread(self.notify, str(exc), title="Cannot restart", severity="error")
            return
        self.call_from_thread(self._restarted, job_id, job, open_it)

    def _restarted(self, old_id: str, job: JobRecord, open_it: bool) -> None:
        self.notify(f"Job {old_id[:8]} restarted as job {job.id[:8]} (queued)", timeout=5)
        if open_it and isinstance(self.screen, JobDetailScreen):
            self.pop_screen()
            self.push_screen(JobDetailScreen(job))

    def delete_job(self, job: JobRecord) -> None:
        if job.status is JobStatus.EXECUTING:
            self.notify(f"Job {job.id[:8]} is running: stop it first (x)", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(job.id)

        self.push_screen(
            ConfirmModal(
                f"Delete job {job.id[:8]} ({job.task_name}, {job.status.value})?\n"
                "Its record, input, output and log are removed for good.",
                title="Delete job", yes="Delete", no="Keep",
            ),
            answered,
        )

    @work(thread=True, group="job-delete")
    def _delete(self, job_id: str) -> None:
        try:
            self.engine.remove_job(job_id)
        except EngineError as exc:
            self.call_from_thread(self.notify, str(exc), title="Cannot delete", severity="error")
            return
        self.call_from_thread(self._deleted, job_id)

    def _deleted(self, job_id: str) -> None:
        self.notify(f"Job {job_id[:8]} deleted", timeout=3)
        screen = self.screen
        if isinstance(screen, JobDetailScreen) and screen.job.id == job_id:
            self.pop_screen()

    def view_output(self, job_id: str) -> None:
        job = self._find(job_id)
        if job is None:
            return
        path = self.engine.output_path(job)
        if path is None or not Path(path).exists():
            self.notify(f"Job {job.id[:8]} has no output yet", severity="warning")
            return
        self.push_screen(CsvViewScreen(Path(path), title=f"output of job {job.id[:8]}",
                                       save_name=f"task_out.{job.id}.csv", is_output=True,
                                       growing=not job.status.is_finished))

    def view_input(self, job_id: str) -> None:
        job = self._find(job_id)
        if job is None:
            return
        path = self.engine.input_path(job)
        if path is None or not Path(path).exists():
            self.notify(f"Job {job.id[:8]} has no input (a noinput task)", severity="warning")
            return
        self.push_screen(CsvViewScreen(Path(path), title=f"input of job {job.id[:8]}",
                                       save_name=f"task_in.{job.id}.csv", is_output=False))

    def save_output(self, job_id: str) -> None:
        job = self._find(job_id)
        if job is None:
            return
        path = self.engine.output_path(job)
        if path is None or not Path(path).exists():
            self.notify(f"Job {job.id[:8]} has no output yet", severity="warning")
            return
        self.push_screen(SaveFileModal(Path(path), f"task_out.{job.id}.csv"))

    def get_system_commands(self, screen: Screen) -> Iterable[Any]:
        # Keep Textual's own (theme, keys, screenshot...) but drop its quit: ours asks first.
        for command in super().get_system_commands(screen):
            if command.title.lower() != "quit":
                yield command


def run_console(settings: Any, *, clock: Clock | None = None) -> int:
    """``kzconsole`` / ``kzconsole tui``: run the console until the operator quits; stop the engine."""
    app = KzConsoleApp(settings, clock=clock)
    try:
        app.run()
    finally:
        engine = app.engine
        # Textual restored the real stdout/stderr: route job threads' prints to their logs again
        # while they wind down.
        from kzconsole.engine.logs import install_stream_router

        install_stream_router()
        scheduler = engine.scheduler
        running = scheduler.running_count() if scheduler is not None else 0
        if running:
            sys.__stderr__.write(f"kzconsole: stopping the engine; {running} running job(s) will resume "
                                 "when an engine next opens this store…\n")
            sys.__stderr__.flush()
        stuck = engine.stop()
        if stuck:
            sys.__stderr__.write("kzconsole: still inside a row at exit (they resume from their last checkpoint): "
                                 + ", ".join(stuck) + "\n")
        engine.close()
    return app.return_code or 0
