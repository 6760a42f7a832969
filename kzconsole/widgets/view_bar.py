"""The top line of every console view: the views and their number keys, and the engine's state.

It replaces Textual's Header: one line that tells an operator where they are, how to get elsewhere,
and whether the embedded engine is running, without a clock (snapshots stay stable; the terminal
multiplexer shows the time). The engine's state is the app's ``engine_summary``, the one place it
is worked out; every bar follows it, on every view, and repaints only the cells that changed.
"""

from __future__ import annotations

from rich.text import Text

from kzconsole.widgets.lines import Lines

VIEWS = (
    ("1", "jobs", "Jobs"),
    ("2", "catalog", "Catalog"),
    ("3", "triggers", "Triggers"),
    ("4", "plugins", "Plugins"),
    ("5", "logs", "Logs"),
    ("6", "nodes", "Nodes"),
)
# Listed in the bar on a cluster store (or when shown); key 6 opens it on any store.
CLUSTER_VIEWS = frozenset({"nodes"})


class ViewBar(Lines):
    DEFAULT_CSS = """
    ViewBar { dock: top; height: 1; background: $panel; }
    ViewBar > .view-bar--brand { text-style: bold; color: $accent; }
    ViewBar > .view-bar--active { text-style: bold reverse; }
    ViewBar > .view-bar--key { color: $text-muted; }
    ViewBar > .view-bar--status { color: $text-muted; }
    ViewBar > .view-bar--warn { color: $warning; text-style: bold; }
    """

    COMPONENT_CLASSES = {"view-bar--brand", "view-bar--active", "view-bar--key", "view-bar--status", "view-bar--warn"}

    def __init__(self, active: str, *, detail: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.active = active
        self.detail = detail

    def on_mount(self) -> None:
        if hasattr(self.app, "engine_summary"):
            self.watch(self.app, "engine_summary", lambda _summary: self.update(), init=False)

    def set_detail(self, detail: str) -> None:
        if detail != self.detail:
            self.detail = detail
            self.update()

    def _left(self, width: int, labels: int | None) -> Text:
        """The brand, the views (inactive ones' labels cut to ``labels`` characters, or left out
        when 0; None: in full) and the breadcrumb. Nodes is listed on a cluster store only."""
        left = Text(no_wrap=True, overflow="crop")
        left.append(" kz " if width < 90 else " kzconsole ", self.get_component_rich_style("view-bar--brand"))
        cluster = bool(getattr(self.app, "on_cluster_store", lambda: False)())
        for key, mode, label in VIEWS:
            if mode in CLUSTER_VIEWS and not cluster and mode != self.active:
                continue
            if mode == self.active:
                left.append(f" {key} {label} ", self.get_component_rich_style("view-bar--active"))
                continue
            left.append(f" {key}", self.get_component_rich_style("view-bar--key"))
            shown = label if labels is None else label[:labels]
            left.append(f" {shown} " if shown else " ")
        if self.detail:
            left.append(f" {self.detail}")
        return left

    def content_for(self, width: int) -> Text:
        status, warn = getattr(self.app, "engine_summary", ("", False))
        right = Text(
            f" {status} " if status else "",
            style=self.get_component_rich_style("view-bar--warn" if warn else "view-bar--status"),
        )
        room = max(0, width - right.cell_len)
        # The engine's state and where the operator is always show in full: the other views'
        # labels give way first (their number keys stay).
        for labels in (None, 3, 0):
            left = self._left(width, labels)
            if left.cell_len <= room:
                break
        if left.cell_len > room:
            left.truncate(room)
        left.append(" " * (room - left.cell_len))
        left.append_text(right)
        return left
