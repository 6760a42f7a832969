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


def node_rows(nodes: list[Any], now: float) -> list[tuple[Any, ...]]:
    """The table's cells for ``nodes`` (NodeInfo records)."""
    rows = []
    for n in nodes:
        state = Text("alive", style="green") if n.alive else Text("DEAD", style="bold red")
        rows.append(
            (
                n.name,
                state,
                n.host,
                str(n.pid),
                n.version,
                short_time(n.started, now),
                n.heartbeat_age(now),
                n.load(),
                str(len(n.resumed_elsewhere)) if not n.alive else "",
            )
        )
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

    def compose(self) -> ComposeResult:
        yield ViewBar("nodes")
        yield NodeTable(id="nodes-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="nodes-empty")
        with VerticalScroll(id="nodes-details"):
            yield Static("", id="nodes-detail-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#nodes-table", DataTable)
        add_fitted_columns(
            table,
            (
                ("node", "Node", 0),
                ("state", "State", 5),
                ("host", "Host", 14),
                ("pid", "PID", 7),
                ("version", "Version", 7),
                ("started", "Started", 11),
                ("heartbeat", "Heartbeat", 10),
                ("jobs", "Jobs", 5),
                ("resumed", "Resumed", 7),
            ),
            self.app.size.width or 100,
            minimum=8,
            maximum=30,
        )
        self.load()
        self.set_interval(POLL_SECONDS, self.load)

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
        rows = node_rows(self.nodes, time.time())
        empty.update("" if rows else "No engine on this store (an engine that stopped gracefully leaves it).")
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
