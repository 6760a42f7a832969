"""KzConsoleApp: the operator console, with the engine embedded.

Views are Textual *modes*, each with its own screen stack, so a job opened in the jobs view is still
open after a look at the catalog: ``1`` jobs, ``2`` catalog, ``3`` triggers, ``4`` plugins, ``5`` logs,
or the ``:`` command line. ``q`` goes back, and quits from the jobs view; ``[`` and ``]`` go back and
forward through the places visited, as k9s does.

Threads: the engine starts in a plain thread after the first paint (loading plugins may take a
moment) and is stopped by :func:`run_console` after ``app.run()`` returns, never on the UI thread
(joining job threads from the event loop can deadlock). Engine events reach the screens only
through :class:`~kzconsole.bridge.EngineBridge`, drained ``console.refresh_hz`` times a second and
handed to the screens that are on screen; the others catch up when they are shown.

One place for what every view shows about the console itself: ``engine_summary`` (the engine's
state, in every view's top line) and ``message`` (the message line, fed by :meth:`notify`).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Any

from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider, SearchIcon
from textual.driver import Driver
from textual.reactive import var
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from kzconsole.actions import JobActions
from kzconsole.bridge import EngineBridge
from kzconsole.engine import SYSTEM_CLOCK, Clock, Engine, JobNotFound, JobRecord, JobStatus, install_stream_router
from kzconsole.messages import ConsoleNotified, EngineStarted, EngineUpdated
from kzconsole.screens.base import ConsoleScreen, Place
from kzconsole.screens.command_line import COMMANDS, CommandLineModal, resolve
from kzconsole.screens.help import HelpScreen
from kzconsole.screens.jobs import JobsScreen
from kzconsole.widgets import glyphs
from kzconsole.widgets.key_bar import own_actions
from kzconsole.widgets.message_line import ConsoleMessage, MessageLine
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
MESSAGE_SECONDS = {"information": 6.0, "warning": 10.0, "error": 20.0}
HISTORY_SIZE = 50


class PlaceholderView(ConsoleScreen):
    """Stands in for a view whose module is not there (yet): the console still starts."""

    BINDINGS = [Binding("escape", "app.back", "Back")]

    def __init__(self, mode: str, reason: str) -> None:
        super().__init__()
        self.MODE = mode
        self.reason = reason
        self.VIEW_NAME = VIEW_LABELS.get(mode, mode)

    def compose(self) -> ComposeResult:
        yield ViewBar(self.MODE)
        yield Static(
            f"The {VIEW_LABELS.get(self.MODE, self.MODE)} view is not available: {self.reason}", id="placeholder"
        )
        yield MessageLine()
        yield Footer(compact=True, show_command_palette=False)


def _lazy_view(mode: str) -> Callable[[], Screen]:
    def make() -> Screen:
        module_name, class_name = LAZY_VIEWS[mode]
        try:
            module = importlib.import_module(module_name)
            screen: Screen = getattr(module, class_name)()
        except Exception as exc:  # a missing or broken view must not kill the console
            log.exception("cannot open the %s view", mode)
            return PlaceholderView(mode, f"{type(exc).__name__}: {exc}")
        return screen

    return make


class History:
    """The places visited (views, job views, file viewers), for ``[`` and ``]``."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self.places: list[Place] = []
        self.index = -1
        self.size = size

    @property
    def current(self) -> Place | None:
        return self.places[self.index] if 0 <= self.index < len(self.places) else None

    def visit(self, place: Place) -> None:
        if place == self.current:
            return  # shown again (back from a dialog, or reached through [ / ])
        del self.places[self.index + 1 :]
        self.places.append(place)
        if len(self.places) > self.size:
            del self.places[0]
        self.index = len(self.places) - 1

    def move(self, step: int) -> Place | None:
        target = self.index + step
        if not 0 <= target < len(self.places):
            return None
        self.index = target
        return self.places[target]


class ConsoleCommands(Provider):
    """The command palette (ctrl+p): every view, every key of the current view, and the console's own."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: KzConsoleApp = self.app  # type: ignore[assignment]
        screen = self.screen
        out: list[tuple[str, str, Callable[[], Any]]] = []
        for key, mode, label in VIEWS:
            out.append(
                (
                    f"View: {label}",
                    f"switch to the {label.lower()} view (key {key}, :{mode})",
                    partial(app.action_view, mode),
                )
            )
        out.append(("Job: new job…", "create a job from a task and an input file (key n)", app.open_new_job))
        view = getattr(screen, "VIEW_NAME", type(screen).__name__)
        seen = set()
        for _key, active in screen.active_bindings.items():
            binding = active.binding
            if (
                not binding.description
                or binding.system
                or active.node is app
                or not active.enabled
                or binding.action not in own_actions(active.node)
            ):
                continue  # Textual's generic keys (focus next, copy...) are not the console's
            ident = (binding.action, id(active.node))
            if ident in seen:
                continue
            seen.add(ident)
            display = app.get_key_display(binding)
            out.append(
                (
                    f"{view}: {binding.description}",
                    f"key {display}",
                    partial(app.call_later, app.run_action, binding.action, active.node),
                )
            )
        out.append(("Console: keys of this view", "key ?", app.action_help))
        out.append(("Console: command line", "key : (jobs, catalog, job ID, q…)", app.action_command_line))
        out.append(("Console: back", "key q / escape", app.action_back))
        out.append(("Console: history back / forward", "keys [ and ]", partial(app.action_history, -1)))
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


class ConsolePalette(CommandPalette):
    """Textual's command palette, with a search prompt every terminal can draw (its magnifying
    glass emoji is missing from the Linux console's font)."""

    def on_mount(self) -> None:
        self.query_one(SearchIcon).icon = ">"


def _ascii_driver(base: type[Driver]) -> type[Driver]:
    class AsciiDriver(base):  # type: ignore[valid-type, misc]
        """Writes plain ASCII: the terminal's locale is not UTF-8 (or ``--ascii``)."""

        def write(self, data: str) -> None:
            super().write(glyphs.to_ascii(data))

    return AsciiDriver


class KzConsoleApp(JobActions, App[int]):
    TITLE = "kzconsole"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    MODES = {"jobs": JobsScreen, **{mode: _lazy_view(mode) for mode in LAZY_VIEWS}}
    DEFAULT_MODE = "jobs"

    BINDINGS = [
        Binding("q", "back", "Back", tooltip="back; from the jobs view, quit"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="the keys of this view"),
        Binding(
            "colon",
            "command_line",
            "Cmd",
            key_display=":",
            tooltip="command line: :jobs :catalog :triggers :plugins :logs :job ID :new :q",
        ),
        Binding(
            "left_square_bracket",
            "history(-1)",
            "History back",
            key_display="[",
            show=False,
            tooltip="back to the previous place visited (view, job, file)",
        ),
        Binding(
            "right_square_bracket",
            "history(1)",
            "History forward",
            key_display="]",
            show=False,
            tooltip="forward again, after [",
        ),
        *(Binding(key, f"view('{mode}')", label, show=False) for key, mode, label in VIEWS),
        Binding("ctrl+c", "quit_console", "Quit", show=False, priority=True),
        Binding("ctrl+q", "quit_console", "Quit", show=False, priority=True),
    ]

    # What every view's top line says about the engine: (text, needs attention).
    engine_summary: var[tuple[str, bool]] = var(("engine off", True))
    # The message line of every view (None: empty).
    message: var[ConsoleMessage | None] = var(None)

    def __init__(
        self,
        settings: Any,
        *,
        engine: Engine | None = None,
        clock: Clock | None = None,
        start_engine: bool = True,
        theme: str | None = DEFAULT_THEME,
        ascii: bool | None = None,
    ) -> None:
        # Before any widget exists: the symbols are read when the first screen paints.
        self.ascii = (not glyphs.locale_is_utf8()) if ascii is None else ascii
        glyphs.use_ascii(self.ascii)
        super().__init__()
        self.settings = settings
        self.clock: Clock = clock or (engine.clock if engine is not None else SYSTEM_CLOCK)
        self.engine: Engine = engine or Engine(settings, clock=self.clock)
        # Open the store here, on one thread, before any other thread can race to open it.
        self.engine.store  # noqa: B018 - the property opens it
        self.bridge = EngineBridge(self.engine)
        self.start_engine = start_engine
        self.engine_state = "off"  # off | starting | running | failed
        self.engine_error: str | None = None
        self._initial_theme = theme
        self._notified: set[str] = set()
        self.history = History()
        self._arriving: Place | None = None
        self.message_log: deque[ConsoleMessage] = deque(maxlen=200)  # the latest messages, newest last
        self._message_serial = 0
        self._message_timer: Timer | None = None
        self._elsewhere = 0  # jobs executing in the store that this engine does not run
        self._elsewhere_read: float | None = None
        self.engine_summary = self._summary()

    def get_driver_class(self) -> type[Driver]:
        base = super().get_driver_class()
        return _ascii_driver(base) if self.ascii else base

    # ------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        if self._initial_theme:
            self.theme = self._initial_theme
        self.bridge.attach()
        self._count_elsewhere(True)
        self.engine_summary = self._summary()
        hz = max(1, int(getattr(getattr(self.settings, "console", None), "refresh_hz", 10) or 10))
        self.set_interval(1 / hz, self._drain)
        if self.start_engine:
            self.engine_state = "starting"
            self.engine_summary = self._summary()
            self.call_after_refresh(self._start_engine)

    def _start_engine(self) -> None:
        """A plain thread, not a Textual worker: the engine's threads must not hold app.run()."""

        def run() -> None:
            try:
                self.engine.start()
            except Exception as exc:  # shown in the console
                log.exception("the engine failed to start")
                self.post_message(EngineStarted(f"{type(exc).__name__}: {exc}"))
            else:
                self.post_message(EngineStarted())

        threading.Thread(target=run, name="kz-console-start", daemon=True).start()

    def on_engine_started(self, message: EngineStarted) -> None:
        if message.error:
            self.engine_state = "failed"
            self.engine_error = message.error
            self.notify(message.error, title="The engine did not start", severity="error")
        else:
            self.engine_state = "running"
        self.engine_summary = self._summary()

    def on_unmount(self) -> None:
        self.bridge.detach()

    @property
    def engine_running(self) -> bool:
        return self.engine_state == "running"

    def on_cluster_store(self) -> bool:
        """Whether the store is shared by a cluster of nodes (the view bar lists Nodes then)."""
        return self.engine.store_display.startswith(("postgresql:", "postgres:"))

    def _summary(self) -> tuple[str, bool]:
        """The engine's state for every view's top line, from the engine itself (never from a
        screen's copy): off, starting, failed, or running with how many jobs it runs, and how many
        run elsewhere on the same store."""
        state = self.engine_state
        dot = glyphs.G.engine_on
        elsewhere = f" {glyphs.G.pending} {self._elsewhere} elsewhere" if self._elsewhere else ""
        if state == "running":
            running = self.engine.running_count()
            return (f"engine {dot} {running} running" if running else f"engine {dot} idle") + elsewhere, False
        if state == "starting":
            return f"engine starting{glyphs.G.ellipsis}", False
        if state == "failed":
            return "engine FAILED", True
        return "engine off" + elsewhere, True

    def _count_elsewhere(self, touched: bool) -> None:
        # The store's count of executing jobs, read when jobs changed (at most once a second) or
        # every ten seconds (a job can end in a process that died without telling anyone).
        now = self.clock.monotonic()
        last = self._elsewhere_read
        if last is not None and not (touched and now - last >= 1.0) and now - last < 10.0:
            return
        self._elsewhere_read = now
        try:
            executing = self.engine.count_jobs(status="executing")
        except Exception:  # the indicator must never break the console
            log.debug("cannot count executing jobs", exc_info=True)
            return
        self._elsewhere = max(0, executing - self.engine.running_count())

    # ------------------------------------------------------------ engine news

    def visible_screens(self) -> list[Screen]:
        """The screens on screen now: the top one, and those a dialog lets show through."""
        stack = self.screen_stack
        if not stack:
            return []
        visible = [stack[-1]]
        for screen in reversed(stack[:-1]):
            if not isinstance(visible[-1], ModalScreen):
                break
            visible.append(screen)
        return visible

    def _drain(self) -> None:
        batch = self.bridge.drain()
        self._count_elsewhere(batch is not None and batch.jobs_touched)
        self.engine_summary = self._summary()
        if batch is None:
            return
        for job in batch.started:
            log.info("job %s %s started on %s", job.id, job.task_name, job.node or "this engine")
        for job in batch.finished:
            self._notify_finished(job)
        # Only the screens on screen: a hidden one catches up when shown (on_screen_resume).
        for screen in self.visible_screens():
            screen.post_message(EngineUpdated(batch))

    def already_told(self, job: JobRecord) -> None:
        """The operator was told this job ended (their own action said so): no second message."""
        self._notified.add(f"{job.id}:{job.status.value}")

    def _notify_finished(self, job: JobRecord) -> None:
        key = f"{job.id}:{job.status.value}"
        if key in self._notified:
            return
        self._notified.add(key)
        status = job.status
        g = glyphs.G
        counts = f"{g.ok} {job.success_count:,} {g.failed} {job.failure_count:,}"
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
        self.notify(f"job {job.id[:8]} {job.task_name} {text}", severity=severity)

    # ---------------------------------------------------------- the message line

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: str = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """The message line instead of stacked toasts. Thread-safe, as Textual's notify is."""
        self.post_message(ConsoleNotified(ConsoleMessage(str(message), severity, title), timeout))

    def on_console_notified(self, event: ConsoleNotified) -> None:
        self._message_serial += 1
        message = replace(event.message, serial=self._message_serial)
        self.message = message
        self.message_log.append(message)
        level = {"warning": logging.WARNING, "error": logging.ERROR}.get(message.severity, logging.INFO)
        log.log(level, "%s", message.line())  # the Logs view keeps the older messages
        if self._message_timer is not None:
            self._message_timer.stop()
        seconds = event.timeout or MESSAGE_SECONDS.get(message.severity, 6.0)
        self._message_timer = self.set_timer(seconds, partial(self._expire_message, message))

    def _expire_message(self, message: ConsoleMessage) -> None:
        if self.message is message:
            self.message = None

    # ------------------------------------------------------------ navigation

    def visited(self, screen: ConsoleScreen) -> None:
        place = screen.place()
        if self._arriving is not None:
            # On the way to a place of the history: the screens shown on the way are not visits.
            if place == self._arriving:
                self._arriving = None
            return
        self.history.visit(place)

    def action_history(self, step: int) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        place = self.history.move(step)
        if place is None:
            self.notify(
                "no earlier place in the history ([ goes back, ] forward)"
                if step < 0
                else "no later place in the history (] goes forward after [)",
                severity="warning",
            )
            return
        self._go(place)

    def _go(self, place: Place) -> None:
        self._arriving = place
        self.set_timer(1.0, partial(self._arrived, place))  # in case it is never shown (a deleted job)
        kind = place[0]
        mode = place[1] if kind == "view" else "jobs"
        if self.current_mode != mode:
            self.switch_mode(mode)
        current = self.screen
        if isinstance(current, ConsoleScreen) and current.place() == place:
            self._arriving = None
            return  # already there (the job view kept in the jobs view, say)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if kind == "job":
            self.open_job(place[1])
        elif kind == "file":
            self.view_file(place[1], place[2])

    def _arrived(self, place: Place) -> None:
        if self._arriving == place:
            self._arriving = None

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
        running = self.engine.running_count()
        if not running:
            self.exit(0)
            return
        if isinstance(self.screen, ModalScreen) and getattr(self.screen, "title_text", "") == "Quit?":
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(0)

        from kzconsole.screens.confirm import ConfirmModal

        self.push_screen(
            ConfirmModal(
                f"{running} job{'s are' if running != 1 else ' is'} running in this console's engine.\n"
                f"Quitting pauses {'them' if running != 1 else 'it'} at a checkpoint; "
                f"{'they resume' if running != 1 else 'it resumes'} when an engine next opens this store.",
                title="Quit?",
                yes="Quit",
                no="Stay",
            ),
            answered,
        )

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(ConsolePalette(id="--command-palette"))

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
            self.notify(
                f"unknown command :{line.strip()}; try " + ", ".join(f":{c}" for c in COMMANDS), severity="warning"
            )
        elif command in ("jobs", "catalog", "triggers", "plugins", "logs", "nodes"):
            self.action_view(command)
        elif command == "quit":
            self.action_quit_console()
        elif command == "help":
            self.action_help()
        elif command == "job":
            if not arg:
                self.notify("usage: :job ID (an id prefix of 6+ characters works)", severity="warning")
                return
            self.open_job(arg)
        elif command == "new":
            category, _, action = arg.partition("/")
            self.open_new_job(category or None, action or None)

    async def run_action(self, action: Any, default_namespace: Any = None, namespaces: Any = None) -> bool:
        """A key shown dimmed (it does not apply here) says why on the message line instead of
        doing nothing: the view's ``why_disabled`` tells."""
        if isinstance(action, str) and default_namespace is not None:
            target, name, params = parse_action(action)
            why = getattr(default_namespace, "why_disabled", None)
            if not target and why is not None and default_namespace.check_action(name, params) is None:
                reason = why(name, params)
                if reason:
                    self.notify(reason, severity="warning")
                    return True
        return await super().run_action(action, default_namespace, namespaces)

    def find(self, job_id: str) -> JobRecord | None:
        try:
            return self.engine.find_job(job_id)
        except JobNotFound as exc:
            self.notify(str(exc), severity="error")
            return None

    def get_system_commands(self, screen: Screen) -> Iterable[Any]:
        # Keep Textual's own (theme, keys, screenshot...) but drop its quit: ours asks first.
        for command in super().get_system_commands(screen):
            if command.title.lower() != "quit":
                yield command


def run_console(settings: Any, *, clock: Clock | None = None, ascii: bool | None = None) -> int:
    """``kzconsole`` / ``kzconsole tui``: run the console until the operator quits; stop the engine."""
    app = KzConsoleApp(settings, clock=clock, ascii=ascii)
    try:
        app.run()
    finally:
        engine = app.engine
        # Textual restored the real stdout/stderr: route job threads' prints to their logs again
        # while they wind down.
        install_stream_router()
        running = engine.running_count()
        if running:
            sys.__stderr__.write(
                f"kzconsole: stopping the engine; {running} running job(s) will resume "
                "when an engine next opens this store...\n"
            )
            sys.__stderr__.flush()
        stuck = engine.stop()
        if stuck:
            sys.__stderr__.write(
                "kzconsole: still inside a row at exit (they resume from their last checkpoint): "
                + ", ".join(stuck)
                + "\n"
            )
        engine.close()
    return app.return_code or 0
