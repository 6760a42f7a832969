"""The Plugins view: every plugin source (built-in module, plugin file, entry point), what it
declares, when it was loaded, and why it failed to load, with the traceback.

``r`` reloads the plugin directories (``engine.reload_plugins()``, in a thread worker: it runs
plugin code). The list follows the engine's catalog-changed events, so a hot reload by the watcher
shows up without a key press; hidden meanwhile, the view catches up when shown again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from kzconsole.screens.base import CatalogView, RowDetails, engine_time
from kzconsole.widgets.fmt import add_fitted_columns, short_time
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.row_table import highlighted_key, row_table
from kzconsole.widgets.view_bar import ViewBar

if TYPE_CHECKING:
    from kzconsole.engine import PluginSource

__all__ = ["PluginsScreen", "plugin_status"]

STATUS_STYLE = {"ok": "green", "FAILED": "bold red", "STALE": "bold yellow"}


def plugin_status(source: PluginSource) -> str:
    """``ok``; ``FAILED`` (not loaded); ``STALE`` (a reload failed, the previous version serves)."""
    if source.error is None:
        return "ok" if source.loaded else "FAILED"
    return "STALE" if source.loaded else "FAILED"


def _short_source(source: PluginSource) -> str:
    if source.kind == "file":
        return os.path.basename(source.source)
    if source.kind == "builtin" and source.source.startswith("kzconsole.plugins."):
        return source.source[len("kzconsole.plugins.") :]  # the Kind column says "builtin"
    return source.source


PluginTable = row_table("Details")


class PluginsScreen(RowDetails, CatalogView):
    """Plugin sources, their declarations and load errors."""

    VIEW_NAME = "Plugins"
    MODE = "plugins"

    BINDINGS = [
        Binding("r", "reload", "Reload", tooltip="load every plugin directory again now"),
        Binding("enter", "focus_details", "Details", show=False),  # the table shows it (see PluginTable)
        Binding("escape", "focus_table", "Back to list", show=False),
    ]

    DEFAULT_CSS = """
    PluginsScreen #plugins-table {
        height: auto;
        max-height: 45%;
    }
    PluginsScreen #plugins-details-pane:focus {
        border-top: solid $accent;
    }
    """

    COLUMNS = (
        ("status", "Status", 6),
        ("source", "Plugin", 0),  # fitted to the terminal on mount
        ("kind", "Kind", 11),
        ("loaded", "Loaded", 11),
        ("tasks", "Tasks", 5),
        ("verifiers", "Verif", 5),
        ("triggers", "Trig", 4),
    )

    @dataclass
    class Reloaded(Message):
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self._sources: list[PluginSource] = []
        self._reloading = False
        self._first = True
        self._report_next = False  # notify the outcome of a reload once its result is loaded

    def compose(self) -> ComposeResult:
        yield ViewBar("plugins")
        yield Lines("Plugins  (loading...)", id="plugins-title", classes="view-title")
        yield PluginTable(id="plugins-table", cursor_type="row")
        with VerticalScroll(id="plugins-details-pane", classes="details-pane"):
            yield Static("", id="plugins-details")
        yield MessageLine()
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        add_fitted_columns(table, self.COLUMNS, self.app.size.width, minimum=12, maximum=70)
        self._load()

    # ------------------------------------------------------------------ data

    def _read(self) -> tuple[PluginSource, ...]:
        return tuple(self.engine.plugins())

    def _show(self, items: tuple[PluginSource, ...] | None) -> None:
        if items is not None:
            self._sources = list(items)
            if self._report_next:
                self._report_next = False
                broken = sum(1 for s in self._sources if s.error is not None)
                self.notify(
                    f"Plugins reloaded: {len(self._sources)} sources, "
                    + (f"{broken} with load errors." if broken else "no load errors."),
                    severity="warning" if broken else "information",
                )
        self._render_table()

    # ------------------------------------------------------------------ drawing

    def _render_table(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_plugin()
        keep = selected.source if selected is not None else None
        now = engine_time(self.engine)
        table.clear()
        for src in self._sources:
            status = plugin_status(src)
            table.add_row(
                Text(status, style=STATUS_STYLE.get(status, "")),
                _short_source(src),
                src.kind.replace("_", " "),
                short_time(src.loaded_at, now),
                str(len(src.tasks)),
                str(len(src.verifiers)),
                str(len(src.triggers)),
                key=src.source,
            )
        target = 0
        sources = [s.source for s in self._sources]
        if keep in sources:
            target = sources.index(keep)
        elif self._first:
            # The first time, put the cursor on the first broken plugin: that is why one comes here.
            for i, src in enumerate(self._sources):
                if src.error is not None:
                    target = i
                    break
        if self._sources:
            self._first = False
            table.move_cursor(row=target, animate=False)
        self._update_title()
        self._show_details()

    def _update_title(self) -> None:
        title = Text("Plugins")
        if self._error is not None:
            title.append(f"  cannot read the plugins: {self._error}")
        elif self._version is None:
            title.append("  (loading...)")
        else:
            n = len(self._sources)
            broken = sum(1 for s in self._sources if s.error is not None)
            title.append(f"  {n} source{'s' if n != 1 else ''}")
            title.append(f", {broken} with load errors" if broken else ", no load errors")
            if self._reloading:
                title.append("  (reloading...)")
        self.query_one("#plugins-title", Lines).update(title)

    @property
    def sources(self) -> Sequence[PluginSource]:
        """The plugin sources the view shows, as of its last load."""
        return self._sources

    @property
    def reloading(self) -> bool:
        """Whether a reload asked from this view is still running."""
        return self._reloading

    def selected_plugin(self) -> PluginSource | None:
        key = highlighted_key(self.query_one(DataTable))
        return next((src for src in self._sources if src.source == key), None)

    def _show_details(self) -> None:
        details = self.query_one("#plugins-details", Static)
        src = self.selected_plugin()
        if src is None:
            if self._error is not None:
                details.update(Text(f"The plugins could not be read:\n\n{self._error}"))
            elif self._version is not None:
                details.update(Text("No plugins are known. Plugin files go in the directories of plugins.paths."))
            else:
                details.update("")
            return
        details.update(self._details(src))

    def _details(self, src: PluginSource) -> Table:
        now = engine_time(self.engine)
        status = plugin_status(src)
        out = Table.grid()
        out.add_row(Text(src.source, style="bold underline"))
        facts = Table.grid(padding=(0, 2))
        facts.add_column(no_wrap=True, style="bold")
        facts.add_column()
        facts.add_row("Kind", Text(src.kind.replace("_", " ")))
        if status == "ok":
            state = Text("loaded", style=STATUS_STYLE["ok"])
        elif status == "STALE":
            state = Text(
                "STALE: the new version failed to load; the previous one keeps serving", style=STATUS_STYLE["STALE"]
            )
        else:
            state = Text("FAILED: not loaded, nothing of it is served", style=STATUS_STYLE["FAILED"])
        facts.add_row("Status", state)
        facts.add_row("Loaded at", Text(short_time(src.loaded_at, now) if src.loaded_at else "never"))
        facts.add_row("Tasks", Text("\n".join(f"{t.name}  (line {t.where.lineno})" for t in src.tasks) or "(none)"))
        facts.add_row(
            "Verifiers", Text("\n".join(f"{v.name}  (line {v.where.lineno})" for v in src.verifiers) or "(none)")
        )
        facts.add_row(
            "Triggers",
            Text(
                "\n".join(f"{t.trigger}: {t.function_name}  (line {t.where.lineno})" for t in src.triggers) or "(none)"
            ),
        )
        out.add_row(facts)
        if src.error:
            out.add_row(Text(""))
            out.add_row(Text("Load error (traceback):", style="bold"))
            out.add_row(Text(src.error.rstrip("\n")))
        return out

    def _open_row(self) -> None:
        self.action_focus_details()

    # ------------------------------------------------------------------ actions

    def action_focus_details(self) -> None:
        self.set_focus(self.query_one("#plugins-details-pane"))

    def action_focus_table(self) -> None:
        self.set_focus(self.query_one(DataTable))

    def action_reload(self) -> None:
        if self._reloading:
            self.notify("A reload is already running.")
            return
        self._reloading = True
        self._update_title()
        self._reload_worker()

    @work(thread=True, group="plugins-reload")
    def _reload_worker(self) -> None:
        try:
            self.engine.reload_plugins()
        except Exception as exc:  # noqa: BLE001 - reported to the operator
            self.post_message(self.Reloaded(f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Reloaded(None))

    def on_plugins_screen_reloaded(self, message: Reloaded) -> None:
        self._reloading = False
        if message.error is not None:
            self.notify(f"Reload failed: {message.error}", severity="error", timeout=8)
        else:
            self._report_next = True
        self._load()
