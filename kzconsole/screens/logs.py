"""The Logs view: the engine's own log, tailing, with a level filter and an incremental search.

The engine keeps its recent records in ``engine.log_buffer`` (a ring with sequence numbers); this
screen polls it ten times a second, keeps its own bounded copy of the records (so a filter change
re-renders without asking the engine again) and appends the new lines that pass the filter to a
``Log`` widget in one batched ``write_lines`` call. ``RichLog`` is several times slower.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Log, Static

__all__ = ["LogsScreen", "LEVELS", "format_record"]

POLL_SECONDS = 0.1
KEEP_RECORDS = 10_000
MAX_LINES = 10_000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Record = tuple[float, str, str, str]  # (created, level, logger, message), as LogBuffer.since gives


def _level_number(name: str) -> int:
    value = logging.getLevelName(name)
    return value if isinstance(value, int) else 0


def format_record(record: Record) -> str:
    """``12:03:04.512 WARNING engine  message``; the lines of a multi-line message (a traceback)
    follow, indented."""
    created, level, logger, message = record
    stamp = time.strftime("%H:%M:%S", time.localtime(created)) + f".{int(created * 1000) % 1000:03d}"
    name = logger[len("kzconsole."):] if logger.startswith("kzconsole.") else logger
    first, *rest = str(message).split("\n") or [""]
    line = f"{stamp} {level:<7} {name}  {first}"
    if rest:
        line += "".join(f"\n    {r}" for r in rest)
    return line


class LogsScreen(Screen):
    """The engine's log, tailing; ``l`` changes the minimum level, ``/`` searches."""

    BINDINGS = [
        Binding("l", "next_level", "Level"),
        Binding("L", "previous_level", "Level down", show=False),
        # priority: the focus must move to the search box when "/" is read, before the keys
        # typed after it (already queued) are handed to the log; check_action lets "/" through
        # to any input that has the focus (the search box itself, or one the app shows).
        Binding("slash", "search", "Search", priority=True),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("f", "toggle_follow", "Follow"),
        Binding("c", "clear", "Clear view"),
    ]

    DEFAULT_CSS = """
    LogsScreen #logs-title {
        height: 1;
        padding: 0 1;
        text-style: bold;
        background: $panel;
    }
    LogsScreen #logs-log {
        height: 1fr;
    }
    LogsScreen #logs-note {
        height: 1fr;
        padding: 1 2;
    }
    LogsScreen #logs-search {
        dock: bottom;
        height: 3;
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
        self._buffer: Any = None
        self._level = "INFO"
        self._search = ""
        self._shown = 0
        self._follow = True
        self._no_engine = False

    def compose(self) -> ComposeResult:
        yield Static("Logs", id="logs-title")
        yield Log(id="logs-log", max_lines=MAX_LINES, highlight=False, auto_scroll=True)
        note = Static(
            Text(
                "The engine is not started here, so there is no engine log to show.\n"
                "(It appears as soon as the engine runs.)"
            ),
            id="logs-note",
        )
        note.display = False
        yield note
        yield Input(placeholder="search the log (enter: keep, escape: clear)", id="logs-search")
        yield Footer()

    @property
    def engine(self) -> Any:
        return self.app.engine  # type: ignore[attr-defined]

    @property
    def level(self) -> str:
        return self._level

    @property
    def search(self) -> str:
        return self._search

    @property
    def log_widget(self) -> Log:
        return self.query_one("#logs-log", Log)

    def on_mount(self) -> None:
        self.set_interval(POLL_SECONDS, self.poll)
        self.poll()
        self.set_focus(self.log_widget)

    def on_screen_resume(self) -> None:
        self.poll()

    # ------------------------------------------------------------------ data

    def poll(self) -> None:
        """Fetch the records logged since the last poll and show those that pass the filter."""
        buffer = getattr(self.engine, "log_buffer", None)
        if buffer is None:
            if not self._no_engine:
                self._no_engine = True
                self.query_one("#logs-note").display = True
                self.log_widget.display = False
                self._update_title()
            return
        if self._no_engine:
            self._no_engine = False
            self.query_one("#logs-note").display = False
            self.log_widget.display = True
        if buffer is not self._buffer:
            # A new engine run means a new buffer whose numbering restarts.
            self._buffer = buffer
            self._seq = 0
        try:
            last, items = buffer.since(self._seq)
        except Exception as exc:  # noqa: BLE001 - the view must survive a broken buffer
            self.query_one("#logs-title", Static).update(Text(f"Logs  cannot read the engine log: {exc}"))
            return
        self._seq = last
        if not items:
            return
        self._records.extend(items)
        self._write(items)
        self._update_title()

    def _filtered(self, records: Iterable[Record]) -> list[str]:
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
            lines.append(line)
        return lines

    def _write(self, records: Iterable[Record]) -> None:
        lines = self._filtered(records)
        if lines:
            self._shown += len(lines)
            self.log_widget.write_lines(lines, scroll_end=True if self._follow else False)

    def _rerender(self) -> None:
        log = self.log_widget
        log.clear()
        self._shown = 0
        self._write(self._records)
        if self._follow:
            log.scroll_end(animate=False)
        self._update_title()

    def _update_title(self) -> None:
        title = Text("Logs")
        if self._no_engine:
            title.append("  (the engine is not running)")
        else:
            title.append(f"  level >= {self._level}")
            if self._search:
                title.append(f'  search "{self._search}"')
            title.append(f"  {self._shown} of {len(self._records)} records")
            title.append("  following" if self._follow else "  paused (f: follow)")
        self.query_one("#logs-title", Static).update(title)

    def shown_lines(self) -> list[str]:
        """What the log widget holds now (for tests and the command palette)."""
        return list(self.log_widget.lines)

    # ------------------------------------------------------------------ actions

    def set_level(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
        self._level = level
        self._rerender()

    def set_search(self, text: str) -> None:
        self._search = text
        self._rerender()

    def action_next_level(self) -> None:
        self.set_level(LEVELS[(LEVELS.index(self._level) + 1) % len(LEVELS)])
        self.notify(f"Showing {self._level} and above.", timeout=2)

    def action_previous_level(self) -> None:
        self.set_level(LEVELS[(LEVELS.index(self._level) - 1) % len(LEVELS)])
        self.notify(f"Showing {self._level} and above.", timeout=2)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "search" and isinstance(self.focused, Input):
            return False
        return True

    def action_search(self) -> None:
        self.add_class("searching")
        # set_focus now, not widget.focus() (deferred): keys typed right after "/" (a fast typist,
        # a paste over SSH) are already queued and must land in the search box.
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
        self._follow = not self._follow
        log = self.log_widget
        log.auto_scroll = self._follow
        if self._follow:
            log.scroll_end(animate=False)
        self._update_title()

    def action_clear(self) -> None:
        """Forget the records kept by the view (the engine's buffer is untouched)."""
        self._records.clear()
        self._rerender()
