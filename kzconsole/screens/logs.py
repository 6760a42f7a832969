"""The Logs view: the engine's own log and the console's (jobs started, stopped, restarted, created,
deleted; every message of the message line), tailing, with a level filter and a search.

Records arrive as the engine's ``EngineLogged`` events; the bridge keeps the recent ones with
sequence numbers, and this view asks it for those after the last it showed: when told something
was logged, and when shown again after being hidden. It keeps its own bounded copy (so a filter
change re-renders without asking again). Lines wrap to the width; warnings and errors have colour.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from kzconsole.messages import EngineBatch
from kzconsole.screens.base import ConsoleScreen
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.keys import box_key
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.log_view import LogView
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.view_bar import ViewBar

__all__ = ["LogsScreen", "LEVELS", "format_record"]

KEEP_RECORDS = 10_000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Record = tuple[float, str, str, str]  # (created, level, logger, message)


def _level_number(name: str) -> int:
    value = logging.getLevelName(name)
    return value if isinstance(value, int) else 0


def format_record(record: Record) -> str:
    """``12:03:04.512 WARNING engine  message``; the lines of a multi-line message (a traceback)
    follow, indented."""
    created, level, logger, message = record
    stamp = time.strftime("%H:%M:%S", time.localtime(created)) + f".{int(created * 1000) % 1000:03d}"
    name = logger[len("kzconsole.") :] if logger.startswith("kzconsole.") else logger
    first, *rest = str(message).split("\n") or [""]
    line = f"{stamp} {level:<7} {name}  {first}"
    if rest:
        line += "".join(f"\n    {r}" for r in rest)
    return line


class LogsScreen(ConsoleScreen):
    """The engine's log, tailing; ``l`` / ``L`` change the minimum level, ``/`` searches."""

    VIEW_NAME = "Logs"
    MODE = "logs"

    BINDINGS = [
        Binding(
            "l",
            "level(1)",
            "Level up",
            tooltip="show fewer records: raise the minimum level (DEBUG, INFO, WARNING, ERROR)",
        ),
        Binding("L", "level(-1)", "Level down", tooltip="show more records: lower the minimum level"),
        box_key("search", "Search", "search as you type (enter keeps it, escape clears it)"),
        Binding("escape", "clear_search", "Clear search", show=False, tooltip="clear the search"),
        Binding("f", "toggle_follow", "Follow", tooltip="follow new lines, or stop to read (G follows again)"),
        Binding("c", "clear", "Clear view", tooltip="forget the records shown here (the engine's log is untouched)"),
    ]

    DEFAULT_CSS = """
    LogsScreen #logs-note {
        height: 1fr;
        padding: 1 2;
    }
    LogsScreen #logs-search {
        height: 1;
        display: none;
    }
    LogsScreen.searching #logs-search {
        display: block;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._records: deque[Record] = deque(maxlen=KEEP_RECORDS)
        self._seq = 0
        self._level = "INFO"
        self._search = ""
        self._shown = 0

    def compose(self) -> ComposeResult:
        yield ViewBar("logs")
        yield Lines("Logs", id="logs-title", classes="view-title")
        # Under the title, as the jobs filter: docked at the bottom it lay under the key bar.
        yield Input(placeholder="search the log (enter: keep, escape: clear)", id="logs-search", compact=True)
        yield LogView(id="logs-log", max_lines=KEEP_RECORDS)
        note = Static(
            Text(
                "The engine is not started here, so there is no engine log to show.\n"
                "(It appears as soon as the engine runs.)"
            ),
            id="logs-note",
        )
        note.display = False
        yield note
        yield MessageLine()
        yield KeyBar()

    @property
    def level(self) -> str:
        return self._level

    @property
    def search(self) -> str:
        return self._search

    @property
    def log_widget(self) -> LogView:
        return self.query_one("#logs-log", LogView)

    def on_mount(self) -> None:
        self.watch(self.log_widget, "follow", lambda _follow: self._update_title(), init=False)
        self.poll()
        self.set_focus(self.log_widget)

    def wants(self, batch: EngineBatch) -> bool:
        return batch.engine_logged > 0

    def catch_up(self) -> None:
        self.poll()

    # ------------------------------------------------------------------ data

    def poll(self) -> None:
        """Show the records logged since the last call that pass the filter."""
        self.query_one("#logs-note").display = not self.console.engine_running and not self._records
        last, items = self.console.bridge.log_since(self._seq)
        self._seq = last
        if items:
            self._records.extend(items)
            self._write(items)
        self._update_title()

    def _filtered(self, records: Iterable[Record]) -> list[tuple[str, str]]:
        floor = _level_number(self._level)
        needle = self._search.lower()
        lines = []
        for record in records:
            if _level_number(record[1]) < floor:
                continue
            line = format_record(record)
            # The full logger name counts too: the line shows it without "kzconsole.".
            if needle and needle not in line.lower() and needle not in record[2].lower():
                continue
            lines.append((record[1], line))
        return lines

    def _write(self, records: Iterable[Record]) -> None:
        lines = self._filtered(records)
        if lines:
            self._shown += len(lines)
            self.log_widget.write(lines)

    def _rerender(self) -> None:
        log = self.log_widget
        log.clear()
        self._shown = 0
        self._write(self._records)
        self._update_title()

    def _update_title(self) -> None:
        title = Text("Logs")
        if not self.console.engine_running and not self._records:
            title.append("  (the engine is not running here)")
        else:
            title.append(f"  level >= {self._level}")
            if self._search:
                title.append(f'  search "{self._search}"')
            title.append(f"  {self._shown:,} of {len(self._records):,} records")
            title.append("  following" if self.log_widget.follow else "  paused (f or G: follow)")
        self.query_one("#logs-title", Lines).update(title)

    def shown_lines(self) -> list[str]:
        """The lines the view holds now (for tests and the command palette)."""
        return self.log_widget.plain_lines()

    # ------------------------------------------------------------------ actions

    def set_level(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
        self._level = level
        self._rerender()

    def set_search(self, text: str) -> None:
        self._search = text
        self._rerender()

    def action_level(self, step: int) -> None:
        index = LEVELS.index(self._level) + step
        if not 0 <= index < len(LEVELS):
            edge = "the highest" if step > 0 else "the lowest"
            self.notify(f"the level is already {self._level}, {edge} ({' < '.join(LEVELS)})", severity="warning")
            return
        self.set_level(LEVELS[index])
        self.notify(f"showing {self._level} and above")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "search" and isinstance(self.focused, Input))

    def action_search(self) -> None:
        self.add_class("searching")
        # set_focus now, not widget.focus() (deferred): see box_key.
        self.set_focus(self.query_one("#logs-search", Input))

    def action_clear_search(self) -> None:
        search = self.query_one("#logs-search", Input)
        self.remove_class("searching")
        if search.value:
            search.value = ""  # Input.Changed re-renders
        self.set_focus(self.log_widget)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "logs-search":
            event.stop()
            self.set_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "logs-search":
            event.stop()
            if not event.value:
                self.remove_class("searching")
            self.set_focus(self.log_widget)

    def action_toggle_follow(self) -> None:
        log = self.log_widget
        log.follow = not log.follow
        if log.follow:
            log.scroll_end(animate=False)
        self._update_title()

    def action_clear(self) -> None:
        """Forget the records kept by the view (the engine's buffer is untouched)."""
        self._records.clear()
        self._rerender()
