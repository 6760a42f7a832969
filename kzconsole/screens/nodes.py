"""The Nodes view (key ``6``, contract 9): every engine on the store, alive or dead, with its node
name, host, process id, version, start, last heartbeat, running jobs and slots, and for the
selected engine its tasks and, when it died, what other engines resumed.

The list comes from ``engine.nodes()`` (the store only, so every node of a cluster shows the same),
read in a thread worker once a second: a slow or restarting store never blocks a key press.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from kzconsole.widgets.fmt import add_fitted_columns, short_time
from kzconsole.widgets.row_table import row_table
from kzconsole.widgets.view_bar import ViewBar

__all__ = ["NodesScreen", "node_rows"]

POLL_SECONDS = 1.0

NodeTable = row_table("Details")


# (key, title, width; 0: the one that takes what is left); host and version go first when the
# terminal is narrow (the details below say them), so that the jobs and what was resumed stay.
COLUMNS = (
    ("node", "Node", 0),
    ("state", "State", 5),
    ("host", "Host", 14),
    ("pid", "PID", 7),
    ("version", "Version", 7),
    ("started", "Started", 11),
    ("heartbeat", "Heartbeat", 10),
    ("jobs", "Jobs", 5),
    ("resumed", "Resumed", 7),
)
NARROW_LEAVES_OUT = ("host", "version")
NODE_MIN, NODE_MAX = 8, 30


def node_columns(width: int) -> tuple[tuple[str, str, int], ...]:
    """The columns that fit ``width`` cells (every one from 94 on)."""
    fixed = sum(w for _, _, w in COLUMNS) + 2 * len(COLUMNS) + 2
    if fixed + NODE_MIN <= width:
        return COLUMNS
    return tuple(c for c in COLUMNS if c[0] not in NARROW_LEAVES_OUT)


def node_rows(nodes: list[Any], now: float, keys: tuple[str, ...] | None = None) -> list[tuple[Any, ...]]:
    """The table's cells for ``nodes`` (NodeInfo records), for the columns ``keys`` (all)."""
    rows = []
    for n in nodes:
        state = Text("alive", style="green") if n.alive else Text("DEAD", style="bold red")
        cells = {
            "node": n.name,
            "state": state,
            "host": n.host,
            "pid": str(n.pid),
            "version": n.version,
            "started": short_time(n.started, now),
            "heartbeat": n.heartbeat_age(now),
            "jobs": n.load(),
            "resumed": str(len(n.resumed_elsewhere)) if not n.alive else "",
        }
        rows.append(tuple(cells[k] for k in (keys or [c[0] for c in COLUMNS])))
    return rows


class NodesScreen(Screen):
    """Every engine on the store."""

    VIEW_NAME = "Nodes"
    BINDINGS = [Binding("r", "refresh_now", "Refresh"), Binding("escape", "app.back", "Back", show=False)]

    DEFAULT_CSS = """
    NodesScreen #nodes-table { height: auto; max-height: 50%; }
    NodesScreen #nodes-details { height: 1fr; padding: 0 1; border-top: solid $primary-darken-2; }
    NodesScreen #nodes-empty { padding: 1 2; color: $text-muted; }
    """

    @dataclass
    class Loaded(Message):
        nodes: list[Any]
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[Any] = []
        self._shown: list[tuple[Any, ...]] | None = None
        self._columns: tuple[tuple[str, str, int], ...] = ()

    def compose(self) -> ComposeResult:
        yield ViewBar("nodes")
        yield NodeTable(id="nodes-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="nodes-empty")
        with VerticalScroll(id="nodes-details"):
            yield Static("", id="nodes-detail-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._fit_columns()
        self.load()
        self.set_interval(POLL_SECONDS, self.load)

    def on_resize(self) -> None:
        if self._fit_columns():
            self._show_rows()

    def _fit_columns(self) -> bool:
        """The columns for the terminal's width (fitted once per width: a narrower terminal
        cut the jobs and what was resumed off the right edge). True if they changed."""
        width = self.app.size.width or 100
        columns = node_columns(width)
        flexible = max(NODE_MIN, min(NODE_MAX, width - sum(w for *_, w in columns) - 2 * len(columns) - 2))
        fitted = tuple((k, t, w or flexible) for k, t, w in columns)
        if fitted == self._columns:
            return False
        self._columns = fitted
        table = self.query_one("#nodes-table", DataTable)
        table.clear(columns=True)
        add_fitted_columns(table, columns, width, minimum=NODE_MIN, maximum=NODE_MAX)
        self._shown = None
        return True

    def action_refresh_now(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="nodes")
    def load(self) -> None:
        try:
            nodes = self.app.engine.nodes()  # type: ignore[attr-defined]
            self.post_message(self.Loaded(nodes, None))
        except Exception as exc:  # noqa: BLE001 - a store error is shown, not raised in the UI
            self.post_message(self.Loaded([], f"cannot read the engines: {exc}"))

    def on_nodes_screen_loaded(self, message: NodesScreen.Loaded) -> None:
        empty = self.query_one("#nodes-empty", Static)
        if message.error:
            empty.update(message.error)
            return
        self.nodes = message.nodes
        empty.update("" if self.nodes else "No engine on this store (an engine that stopped gracefully leaves it).")
        self._show_rows()

    def _show_rows(self) -> None:
        rows = node_rows(self.nodes, time.time(), tuple(k for k, _, _ in self._columns))
        if rows != self._shown:
            table = self.query_one("#nodes-table", DataTable)
            cursor = table.cursor_row
            table.clear()
            for n, row in zip(self.nodes, rows, strict=True):
                table.add_row(*row, key=n.engine)
            if rows:
                table.move_cursor(row=min(cursor, len(rows) - 1))
            self._shown = rows
        self._show_details()

    def on_data_table_row_highlighted(self, event: Any) -> None:
        self._show_details()

    def _show_details(self) -> None:
        text = self.query_one("#nodes-detail-text", Static)
        table = self.query_one("#nodes-table", DataTable)
        if not self.nodes or table.cursor_row >= len(self.nodes):
            text.update("")
            return
        n = self.nodes[table.cursor_row]
        out = Text()
        out.append(f"{n.name}", style="bold")
        out.append(f"  engine {n.engine}, {'alive' if n.alive else 'DEAD'}\n")
        out.append(f"host {n.host}, pid {n.pid}, version {n.version}\n")
        if n.slots:
            out.append(f"runs {n.running} of {n.slots} job slots; tasks: {', '.join(n.tasks) or '-'}\n")
        else:  # `tasks run` / `triggers run`: runs what it was given, claims nothing
            out.append(f"runs {n.running} job(s) in the foreground (tasks run); claims no job\n")
        if not n.alive:
            if n.resumed_elsewhere:
                out.append("\nResumed elsewhere when it died:\n", style="bold")
                for t in n.resumed_elsewhere:
                    what = "resumed" if t.outcome == "resumed" else "ended internal_error"
                    out.append(
                        f"  job {t.job_id} {what} by {t.to_name} at row {t.rows_done + 1}"
                        f" ({short_time(t.at, time.time())})\n"
                    )
            else:
                out.append("\nNo job of it was resumed elsewhere.\n")
        text.update(out)
