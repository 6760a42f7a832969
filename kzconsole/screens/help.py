"""``?``: the keys of the view it was opened on, gathered from the bindings actually in force."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from kzconsole.widgets.key_bar import own_actions

# What no binding of the view says (the command line, back, history and quit are bindings: listed).
GLOBAL_NOTES = [
    ("ctrl+p", "command palette: every action, searchable"),
    ("escape", "back (never quits; on the jobs view it clears the filter, then the marks)"),
    ("tab, shift+tab", "move between the parts of a view"),
    ("ctrl+q, ctrl+c", "quit (asks first while jobs run here)"),
]


def bindings_of(screen: Screen) -> list[tuple[str, str, str]]:
    """(where, keys, description) for the bindings in force on ``screen``, de-duplicated."""
    app = screen.app
    seen: set[tuple[str, str]] = set()
    rows: list[tuple[str, str, str]] = []
    for _key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description or binding.system or binding.action not in own_actions(active.node):
            continue
        if active.node is screen:
            where = "view"
        elif active.node is app:
            where = "console"
        else:
            where = getattr(active.node, "HELP_NAME", type(active.node).__name__)
        ident = (binding.action, binding.description)
        if ident in seen:
            continue
        seen.add(ident)
        keys = ", ".join(app.get_key_display(Binding(k, binding.action)) for k in _keys_for(screen, binding))
        rows.append((where, keys, binding.tooltip or binding.description))
    order = {"view": 0}
    rows.sort(key=lambda r: order.get(r[0], 1 if r[0] != "console" else 2))
    return rows


def _keys_for(screen: Screen, binding: Any) -> list[str]:
    """Every key bound to the same action on the same node (``up,k`` shows both)."""
    keys = []
    for key, active in screen.active_bindings.items():
        if active.binding.action == binding.action and active.binding.description == binding.description:
            keys.append(key)
    return keys or [binding.key]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close"),
        Binding("up,k", "scroll('up')", show=False),
        Binding("down,j", "scroll('down')", show=False),
    ]

    def __init__(self, target: Screen) -> None:
        super().__init__()
        self.target = target
        # Read now: once this modal is up, the target's bindings are no longer the ones in force.
        self.rows = bindings_of(target)

    def compose(self) -> ComposeResult:
        title = getattr(self.target, "VIEW_NAME", None) or self.target.__class__.__name__
        with VerticalScroll() as box:
            box.border_title = f"Keys: {title}"
            box.border_subtitle = "escape closes"
            yield Static(self._table(), id="help-table")

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        current = None
        for where, keys, description in self.rows:
            if where != current:
                if current is not None:
                    table.add_row("", "")
                label = {"view": "This view", "console": "Everywhere"}.get(where, where)
                table.add_row(Text(label, style="underline"), "")
                current = where
            table.add_row(keys, description)
        table.add_row("", "")
        table.add_row(Text("Also", style="underline"), "")
        for keys, description in GLOBAL_NOTES:
            table.add_row(keys, description)
        return table

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, direction: str) -> None:
        box = self.query_one(VerticalScroll)
        box.scroll_up() if direction == "up" else box.scroll_down()
