"""Log lines, wrapped to the width and coloured by level, painted line by line.

Textual's ``Log`` neither wraps nor colours (a message ended after ~30 characters at 80 columns,
and an ERROR looked like an INFO); ``RichLog`` does both but took seconds for 100,000 lines. This
keeps the lines as (level, text), wraps them for the current width once, and paints only the visible
ones. ``follow`` keeps the end in view as lines arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kzconsole.widgets.csv_table import crop
from kzconsole.widgets.keys import end_keys, line_keys, page_keys

INDENT = "    "  # continuation lines of a wrapped line


def wrap(text: str, width: int) -> list[str]:
    """``text`` (one or more lines) cut into pieces of at most ``width`` cells, at spaces when
    possible; continuation pieces are indented."""
    out: list[str] = []
    width = max(8, width)
    for line in text.split("\n"):
        first = True
        while True:
            room = width if first else width - len(INDENT)
            prefix = "" if first else INDENT
            if cell_len(line) <= room:
                out.append(prefix + line)
                break
            piece = crop(line, room)
            cut = piece.rfind(" ")
            if cut > room // 2:
                piece = piece[:cut]
            out.append(prefix + piece)
            line = line[len(piece) :].lstrip(" ")
            first = False
    return out


class LogView(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        *line_keys("scroll_by(-1)", "scroll_by(1)"),
        *page_keys("page(-1)", "page(1)"),
        *end_keys("top", "bottom"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-view--DEBUG",
        "log-view--INFO",
        "log-view--WARNING",
        "log-view--ERROR",
        "log-view--CRITICAL",
    }

    DEFAULT_CSS = """
    LogView { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    LogView > .log-view--DEBUG { color: $text-muted; }
    LogView > .log-view--INFO { color: $foreground; }
    LogView > .log-view--WARNING { color: $warning; }
    LogView > .log-view--ERROR { color: $error; text-style: bold; }
    LogView > .log-view--CRITICAL { color: $error; text-style: bold reverse; }
    """

    follow: reactive[bool] = reactive(True)

    def __init__(self, *, max_lines: int = 10_000, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.max_lines = max_lines
        self.entries: list[tuple[str, str]] = []  # (level, text)
        self._lines: list[tuple[str, str]] = []  # (level, wrapped piece)
        self._width = -1

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def plain_lines(self) -> list[str]:
        return [text for _, text in self.entries]

    def _wrap_width(self) -> int:
        return max(8, self.size.width - 1)

    def _rewrap(self) -> None:
        width = self._wrap_width()
        self._width = width
        self._lines = [(level, piece) for level, text in self.entries for piece in wrap(text, width)]
        self._sized()

    def _sized(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._lines))
        if self.follow:
            self.scroll_end(animate=False, immediate=True)
        self.refresh()

    def write(self, entries: Iterable[tuple[str, str]]) -> None:
        new = list(entries)
        if not new:
            return
        self.entries.extend(new)
        if len(self.entries) > self.max_lines:
            del self.entries[: len(self.entries) - self.max_lines]
            self._width = -1
        if self._width != self._wrap_width():
            self._rewrap()
            return
        width = self._width
        self._lines.extend((level, piece) for level, text in new for piece in wrap(text, width))
        self._sized()

    def clear(self) -> None:
        self.entries = []
        self._lines = []
        self._sized()

    def on_resize(self, event: events.Resize) -> None:
        if self._wrap_width() != self._width:
            self._rewrap()

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_offset.y) + y
        width = self.size.width
        if not 0 <= index < len(self._lines):
            return Strip.blank(width, self.rich_style)
        level, text = self._lines[index]
        style = (
            self.rich_style + self.get_component_rich_style(f"log-view--{level}", partial=True)
            if f"log-view--{level}" in self.COMPONENT_CLASSES
            else self.rich_style
        )
        return Strip([Segment(text, style)]).crop_extend(0, width, self.rich_style)

    # ---------------------------------------------------------------- keys

    def action_scroll_by(self, step: int) -> None:
        if step < 0:
            self.follow = False
        self.scroll_to(y=self.scroll_offset.y + step, animate=False)

    def action_page(self, step: int) -> None:
        if step < 0:
            self.follow = False
        self.scroll_to(y=self.scroll_offset.y + step * max(1, self.size.height - 1), animate=False)

    def action_top(self) -> None:
        self.follow = False
        self.scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.follow = True
        self.scroll_end(animate=False)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False
