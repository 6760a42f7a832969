"""The top line of every console view: the views and their number keys, and the engine's state.

It replaces Textual's Header: one line that tells an operator where they are, how to get elsewhere,
and whether the embedded engine is running, without a clock (snapshots stay stable; the terminal
multiplexer shows the time).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

VIEWS = (("1", "jobs", "Jobs"), ("2", "catalog", "Catalog"), ("3", "triggers", "Triggers"),
         ("4", "plugins", "Plugins"), ("5", "logs", "Logs"))


class ViewBar(Widget):
    DEFAULT_CSS = """
    ViewBar { dock: top; height: 1; background: $panel; }
    ViewBar > .view-bar--brand { text-style: bold; color: $accent; }
    ViewBar > .view-bar--active { text-style: bold reverse; }
    ViewBar > .view-bar--key { color: $text-muted; }
    ViewBar > .view-bar--status { color: $text-muted; }
    ViewBar > .view-bar--warn { color: $warning; text-style: bold; }
    """

    COMPONENT_CLASSES = {"view-bar--brand", "view-bar--active", "view-bar--key", "view-bar--status",
                         "view-bar--warn"}

    def __init__(self, active: str, *, detail: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.active = active
        self.detail = detail

    def set_detail(self, detail: str) -> None:
        if detail != self.detail:
            self.detail = detail
            self.refresh()

    def render(self) -> Text:
        width = self.content_size.width
        text = Text(no_wrap=True, overflow="ellipsis")
        compact = width < 90
        text.append(" kz " if compact else " kzconsole ", self.get_component_rich_style("view-bar--brand"))
        for key, mode, label in VIEWS:
            shown = label if not compact or mode == self.active else label[:3]
            if mode == self.active:
                text.append(f" {key} {shown} ", self.get_component_rich_style("view-bar--active"))
            else:
                text.append(f" {key}", self.get_component_rich_style("view-bar--key"))
                text.append(f" {shown} ")
        if self.detail:
            text.append(f" {self.detail}")
        status, warn = getattr(self.app, "engine_status", lambda: ("", False))()
        if status:
            style = self.get_component_rich_style("view-bar--warn" if warn else "view-bar--status")
            room = width - text.cell_len - 2
            if room > 4:
                label = status if len(status) <= room else status[: room - 1] + "…"
                text.append(" " * (room - len(label) + 1))
                text.append(label + " ", style)
        return text
