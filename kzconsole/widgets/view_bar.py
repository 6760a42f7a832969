"""The top line of every console view: the views and their number keys, and the engine's state.

It replaces Textual's Header: one line that tells an operator where they are, how to get elsewhere,
and whether the embedded engine is running, without a clock (snapshots stay stable; the terminal
multiplexer shows the time).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

VIEWS = (("1", "jobs", "Jobs"), ("2", "catalog", "Catalog"), ("3", "triggers", "Triggers"),
         ("4", "plugins", "Plugins"), ("5", "logs", "Logs"), ("6", "nodes", "Nodes"))
# Listed in the bar on a cluster store (or when shown); key 6 opens it on any store.
CLUSTER_VIEWS = frozenset({"nodes"})


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
        compact = width < 90
        left = Text(no_wrap=True, overflow="ellipsis")
        left.append(" kz " if compact else " kzconsole ", self.get_component_rich_style("view-bar--brand"))
        cluster = bool(getattr(self.app, "on_cluster_store", lambda: False)())
        for key, mode, label in VIEWS:
            if mode in CLUSTER_VIEWS and not cluster and mode != self.active:
                continue
            shown = label if not compact or mode == self.active else label[:3]
            if mode == self.active:
                left.append(f" {key} {shown} ", self.get_component_rich_style("view-bar--active"))
            else:
                left.append(f" {key}", self.get_component_rich_style("view-bar--key"))
                left.append(f" {shown} ")
        if self.detail:
            left.append(f" {self.detail}")
        status, warn = getattr(self.app, "engine_status", lambda: ("", False))()
        if not status:
            return left
        # The engine's state always shows in full; what is on the left gives way.
        right = Text(f" {status} ", style=self.get_component_rich_style("view-bar--warn" if warn else "view-bar--status"))
        room = max(0, width - right.cell_len)
        if left.cell_len > room:
            left.truncate(room, overflow="ellipsis")
        left.append(" " * (room - left.cell_len))
        left.append_text(right)
        return left
