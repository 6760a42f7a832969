"""The Triggers view: each trigger, the plugin functions bound to it, when it fires next, and how
its last firing went. ``enter`` opens the firing history, ``f`` fires the trigger now.

Data comes from ``engine.trigger_schedule()`` (the ``triggers --json`` "triggers" list) and
``engine.firings()``; both read the store, so they run in thread workers and report back with
messages. They are read again when the engine says a trigger fired or the catalog changed, and a
few seconds after a countdown ran out (another engine on the store may have fired it). The
countdown is recomputed every second from ``engine.clock`` (injected, so a test can freeze it)
without going back to the store, and only its cells are repainted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from kzconsole.messages import EngineBatch, EngineUpdated
from kzconsole.screens.base import ConsoleScreen, OneRead, RowDetails, engine_time
from kzconsole.widgets.fmt import add_fitted_columns, short_time
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.row_table import highlighted_key, row_table
from kzconsole.widgets.view_bar import ViewBar

__all__ = [
    "TriggersScreen",
    "TriggerHistoryModal",
    "DATABASE_TRIGGERS",
    "fire_name",
    "format_countdown",
    "format_duration",
    "format_when",
    "short_function",
]

TICK_SECONDS = 1.0  # the countdown
DUE_RELOAD_SECONDS = 3.0  # after a countdown ran out, read the schedule again this much later
HISTORY_LIMIT = 200

# Database triggers are fired together by one database pass (contract 2.6, `triggers run databases`).
DATABASE_TRIGGERS = frozenset({"account", "account_mod", "system", "other", "all_dbs", "databases"})

OUTCOME_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow", "running": "cyan"}


# ---------------------------------------------------------------------- formatting (pure)


def fire_name(trigger: str) -> str:
    """What to pass to ``engine.fire_trigger`` to fire ``trigger`` now."""
    return "databases" if trigger in DATABASE_TRIGGERS else trigger


def format_countdown(seconds: float | None) -> str:
    """``42s``, ``4m05s``, ``11h04m09s``, ``2d11h04m``; ``due`` when the time has come."""
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "due"
    s = int(seconds + 0.999)  # round up: "1s" until it fires, never "0s"
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_duration(started: float | None, ended: float | None) -> str:
    if started is None:
        return "-"
    if ended is None:
        return "running"
    d = max(0.0, ended - started)
    if d < 10:
        return f"{d:.2f}s"
    if d < 60:
        return f"{d:.1f}s"
    minutes, secs = divmod(int(d), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


format_when = short_time  # local time: HH:MM:SS today, MM-DD HH:MM another day


def short_function(ref: str) -> str:
    """``/path/to/plugin.py:fn`` -> ``plugin.py:fn``; ``kzconsole.plugins.skel:fn`` -> ``skel:fn``."""
    source, sep, function = ref.rpartition(":")
    if not sep:
        return ref
    if "/" in source or "\\" in source:
        source = source.replace("\\", "/").rsplit("/", 1)[-1]
    elif "." in source:
        source = source.rsplit(".", 1)[-1]
    return f"{source}:{function}"


def _stamp(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def outcome_text(firing: dict[str, Any] | None) -> Text:
    if not firing:
        return Text("-")
    status = str(firing.get("status") or "-")
    label = "FAILED" if status == "failed" else status
    return Text(label, style=OUTCOME_STYLE.get(status, ""))


def _firing_dict(firing: Any) -> dict[str, Any]:
    if isinstance(firing, dict):
        return firing
    return firing.public()


def firing_details(firing: dict[str, Any], now: float) -> Table:
    """The functions (and databases) of one firing, for the detail panes."""
    out = Table.grid()
    head = Text()
    head.append(f"{format_when(firing.get('started'), now)}", style="bold")
    head.append(f"  took {format_duration(firing.get('started'), firing.get('ended'))}  ")
    head.append_text(outcome_text(firing))
    if firing.get("reason"):
        head.append(f"  ({firing['reason']})")
    out.add_row(head)
    functions = firing.get("functions") or []
    if functions:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column()
        for f in functions:
            ok = bool(f.get("ok"))
            secs = f.get("seconds")
            grid.add_row(
                Text("ok" if ok else "FAILED", style=OUTCOME_STYLE["ok" if ok else "failed"]),
                Text(str(f.get("function", "?"))),
                Text(f"{secs:.2f}s" if isinstance(secs, (int, float)) else "-"),
                Text(str(f.get("error") or "")),
            )
        out.add_row(grid)
    else:
        out.add_row(Text("no function ran", style="dim"))
    databases = firing.get("databases") or []
    if databases:
        failed = [d for d in databases if not d.get("ok")]
        out.add_row(Text(f"databases: {len(databases)} visited, {len(failed)} failed"))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column()
        # Failed ones first: they are what the operator looks for in a long pass.
        for d in failed + [d for d in databases if d.get("ok")]:
            ok = bool(d.get("ok"))
            grid.add_row(
                Text("ok" if ok else "FAILED", style=OUTCOME_STYLE["ok" if ok else "failed"]),
                Text(str(d.get("kind", ""))),
                Text(str(d.get("name", ""))),
            )
        out.add_row(grid)
    return out


# ---------------------------------------------------------------------- the view


TriggerTable = row_table("History")
HistoryTable = row_table("Details")


class TriggersScreen(RowDetails, ConsoleScreen):
    """Every trigger: bound functions, countdown to the next firing, the last firing."""

    VIEW_NAME = "Triggers"
    MODE = "triggers"

    BINDINGS = [
        Binding("enter", "history", "History", show=False),  # the table shows it (see TriggerTable)
        Binding("f", "fire", "Fire now", tooltip="fire the highlighted trigger now, in the background"),
    ]

    DEFAULT_CSS = """
    TriggersScreen #triggers-table {
        height: auto;
        max-height: 60%;
    }
    """

    COLUMNS = (
        ("trigger", "Trigger", 11),
        ("functions", "Functions", 0),  # width fitted to the terminal on mount
        ("next", "Next in", 10),
        ("last", "Last", 11),
        ("took", "Took", 7),
        ("outcome", "Outcome", 7),
    )

    @dataclass
    class Loaded(Message):
        rows: tuple[dict[str, Any], ...]
        error: str | None

    @dataclass
    class Fired(Message):
        trigger: str
        fired: str
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, dict[str, Any]] = {}
        self._error: str | None = None
        self._reads = OneRead(self._load_worker, self.call_later)
        self._loaded_once = False
        self._cells: dict[tuple[str, str], str] = {}  # what each cell shows, to skip no-op updates
        self._functions_width = 20
        self._due_reload: float | None = None  # when to re-read after a countdown ran out

    def compose(self) -> ComposeResult:
        yield ViewBar("triggers")
        yield Lines("Triggers", id="triggers-title", classes="view-title")
        table: DataTable[Any] = TriggerTable(id="triggers-table", cursor_type="row")
        yield table
        with VerticalScroll(id="triggers-details-pane", classes="details-pane"):
            yield Lines("", id="triggers-details")
        yield MessageLine()
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._functions_width = add_fitted_columns(table, self.COLUMNS, self.app.size.width, minimum=14, maximum=60)
        self.set_interval(TICK_SECONDS, self._tick)
        self.refresh_schedule()

    def wants(self, batch: EngineBatch) -> bool:
        # A firing recorded here or by another engine on the store, or a plugin (un)loaded.
        return bool(batch.fired or batch.catalog_changed or {"firing", "reset"} & batch.store_kinds)

    def catch_up(self) -> None:
        self.refresh_schedule()

    # ------------------------------------------------------------------ data

    def _tick(self) -> None:
        if not self.shown:
            return  # hidden: on_screen_resume catches up
        now = engine_time(self.engine)
        if self._due_reload is not None and now >= self._due_reload:
            self._due_reload = None
            self.refresh_schedule()
        self._render_rows()

    def refresh_schedule(self) -> None:
        """Re-read the schedule in a worker (once more after the one in flight, if any)."""
        self._reads.ask()

    @work(thread=True, group="triggers-load")
    def _load_worker(self) -> None:
        try:
            rows = tuple(dict(r) for r in self.engine.trigger_schedule())
        except (ImportError, AttributeError) as exc:
            self.post_message(self.Loaded((), f"the trigger engine is not available ({type(exc).__name__}: {exc})"))
        except Exception as exc:  # noqa: BLE001 - shown in the view
            self.post_message(self.Loaded((), f"cannot read the trigger schedule: {type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Loaded(rows, None))

    def on_triggers_screen_loaded(self, message: Loaded) -> None:
        self._reads.done()
        self._loaded_once = True
        self._error = message.error
        if message.error is None:
            self._rows = {str(r.get("name")): r for r in message.rows}
        elif not self._rows or "not available" in message.error:
            self._rows = {}
        # Otherwise a passing store error keeps the last rows on screen, with the note above them.
        self._render_rows()

    # ------------------------------------------------------------------ drawing

    def _cells_for(self, row: dict[str, Any], now: float) -> dict[str, Any]:
        functions = [str(f) for f in row.get("functions") or []]
        if functions:
            more = f" +{len(functions) - 1}" if len(functions) > 1 else ""
            fn_text = short_function(functions[0]) + more
            if len(fn_text) > self._functions_width:
                # Too narrow for plugin:function: the function's name says more (the details
                # pane below shows the full references).
                fn_text = functions[0].rpartition(":")[2] + more
        else:
            fn_text = "(none bound)"
        nxt = row.get("next_fire")
        last = row.get("last") or None
        return {
            "trigger": row.get("name", "?"),
            "functions": fn_text,
            "next": format_countdown(None if nxt is None else nxt - now),
            "last": format_when(last.get("started"), now) if last else "never",
            "took": format_duration(last.get("started"), last.get("ended")) if last else "-",
            "outcome": outcome_text(last),
        }

    def _render_rows(self) -> None:
        table = self.query_one("#triggers-table", TriggerTable)
        now = engine_time(self.engine)
        names = list(self._rows)
        existing = [str(k.value) for k in table.rows]
        if existing != names:
            # The set of triggers changed (a plugin was (un)loaded): rebuild; it is a few rows.
            selected = self.selected_trigger()
            table.clear()
            self._cells.clear()
            for name in names:
                cells = self._cells_for(self._rows[name], now)
                table.add_row(*(cells[key] for key, _, _ in self.COLUMNS), key=name)
                self._cells.update({(name, k): str(v) for k, v in cells.items()})
            if selected in names:
                table.move_cursor(row=names.index(selected), animate=False)
        else:
            # Same rows: touch only the cells that changed (the countdown, mostly), so a tick
            # repaints a few cells, not the screen.
            for name in names:
                cells = self._cells_for(self._rows[name], now)
                for key, value in cells.items():
                    if self._cells.get((name, key)) != str(value):
                        table.set_cell(name, key, value)
                        self._cells[(name, key)] = str(value)
        self._update_title(now)
        self._show_details(now)

    def _update_title(self, now: float) -> None:
        title = Text("Triggers")
        if self._error is not None:
            title.append(f"  note: {self._error}")
        elif not self._loaded_once:
            title.append("  (loading...)")
        else:
            title.append(f"  {len(self._rows)} trigger{'s' if len(self._rows) != 1 else ''}")
            upcoming = [(r["next_fire"], n) for n, r in self._rows.items() if r.get("next_fire") is not None]
            if upcoming:
                when, name = min(upcoming)
                title.append(f"; next: {name} in {format_countdown(when - now)}")
        upcoming_due = [r["next_fire"] for r in self._rows.values() if r.get("next_fire") is not None]
        if upcoming_due and self._due_reload is None and min(upcoming_due) <= now:
            self._due_reload = now + DUE_RELOAD_SECONDS
        self.query_one("#triggers-title", Lines).update(title)

    @property
    def loaded(self) -> bool:
        """Whether the schedule has been read at least once (the table may still be empty)."""
        return self._loaded_once

    def selected_trigger(self) -> str | None:
        return highlighted_key(self.query_one(DataTable))

    def _show_details(self, now: float | None = None) -> None:
        now = engine_time(self.engine) if now is None else now
        details = self.query_one("#triggers-details", Lines)
        name = self.selected_trigger()
        if name is None or name not in self._rows:
            if self._error is not None:
                details.update(Text(f"No triggers to show: {self._error}."))
            elif self._loaded_once:
                details.update(
                    Text(
                        "No triggers. A plugin binds a function to a trigger with "
                        '@trigger("hourly") (or minutely, daily, account, account_mod, system, '
                        "other, all_dbs)."
                    )
                )
            else:
                details.update("")
            return
        row = self._rows[name]
        out = Table.grid()
        head = Text(name, style="bold underline")
        nxt = row.get("next_fire")
        if nxt is not None:
            head.append(f"   next firing in {format_countdown(nxt - now)} (at {format_when(nxt, now)})")
        else:
            head.append("   no firing scheduled")
        out.add_row(head)
        functions = [str(f) for f in row.get("functions") or []]
        out.add_row(Text(f"Bound functions ({len(functions)}):", style="bold"))
        for f in functions:
            out.add_row(Text(f"  {f}"))
        last = row.get("last")
        if last:
            out.add_row(Text("Last firing:", style="bold"))
            out.add_row(firing_details(last, now))
        else:
            out.add_row(Text("Never fired yet.", style="bold"))
        fire = fire_name(name)
        hint = "enter: history   f: fire now"
        if fire != name:
            hint += f" (runs a full database pass: {fire})"
        out.add_row(Text(hint, style="dim"))
        details.update(out)

    def _open_row(self) -> None:
        self.action_history()

    # ------------------------------------------------------------------ actions

    def action_history(self) -> None:
        name = self.selected_trigger()
        if name is None:
            self.notify("No trigger selected.", severity="warning")
            return
        self.app.push_screen(TriggerHistoryModal(name))

    def action_fire(self) -> None:
        name = self.selected_trigger()
        if name is None:
            self.notify("No trigger selected.", severity="warning")
            return
        self._fire_worker(name, fire_name(name))

    @work(thread=True, group="triggers-fire")
    def _fire_worker(self, trigger: str, fired: str) -> None:
        try:
            self.engine.fire_trigger(fired, wait=False)
        except Exception as exc:  # noqa: BLE001 - reported to the operator
            self.post_message(self.Fired(trigger, fired, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Fired(trigger, fired, None))

    def on_triggers_screen_fired(self, message: Fired) -> None:
        if message.error is not None:
            self.notify(f"Cannot fire {message.fired}: {message.error}", severity="error", timeout=8)
        else:
            self.notify(f"Fired {message.fired}; its firing shows up here when it ends.")
        self.refresh_schedule()


class TriggerHistoryModal(ModalScreen[None]):
    """The recorded firings of one trigger, newest first, and the selected one's details."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close", show=False)]

    DEFAULT_CSS = """
    TriggerHistoryModal {
        align: center middle;
    }
    TriggerHistoryModal #history-box {
        width: 100%;
        height: 100%;
        border: round $primary;
        background: $surface;
    }
    TriggerHistoryModal #history-title {
        height: 1;
        padding: 0 1;
        text-style: bold;
    }
    TriggerHistoryModal #history-table {
        height: auto;
        max-height: 50%;
    }
    TriggerHistoryModal #history-details-pane {
        height: 1fr;
        padding: 0 1;
        border-top: solid $primary-darken-2;
    }
    """

    COLUMNS = (
        ("started", "Started", 14),
        ("took", "Took", 7),
        ("outcome", "Outcome", 7),
        ("functions", "Functions", 9),
        ("databases", "DBs", 5),
        ("reason", "Reason", 0),  # fitted to the terminal on mount
    )

    @dataclass
    class Loaded(Message):
        firings: tuple[dict[str, Any], ...]
        error: str | None

    def __init__(self, trigger: str) -> None:
        super().__init__()
        self.trigger = trigger
        self._firings: list[dict[str, Any]] = []
        self._reads = OneRead(self._load_worker, self.call_later)
        self._signature: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box"):
            yield Static(f"History of {self.trigger} (loading...)", id="history-title")
            yield HistoryTable(id="history-table", cursor_type="row")
            with VerticalScroll(id="history-details-pane"):
                yield Static("", id="history-details")
            yield Footer()

    @property
    def firings(self) -> Sequence[dict[str, Any]]:
        """The firings the history shows, newest first, as of its last load."""
        return self._firings

    @property
    def engine(self) -> Any:
        return self.app.engine  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        add_fitted_columns(table, self.COLUMNS, self.app.size.width, minimum=12, maximum=80, margin=4)
        self._reload()

    def on_engine_updated(self, message: EngineUpdated) -> None:
        if message.batch.fired or {"firing", "reset"} & message.batch.store_kinds:
            self._reload()

    def _reload(self) -> None:
        self._reads.ask()

    @work(thread=True, group="trigger-history")
    def _load_worker(self) -> None:
        try:
            found = [_firing_dict(f) for f in self.engine.firings(trigger=self.trigger, limit=HISTORY_LIMIT)]
            if self.trigger in DATABASE_TRIGGERS and self.trigger != "databases":
                # A database pass may be recorded under "databases" rather than each trigger.
                seen = {(f.get("trigger"), f.get("started")) for f in found}
                for f in self.engine.firings(trigger="databases", limit=HISTORY_LIMIT):
                    d = _firing_dict(f)
                    if (d.get("trigger"), d.get("started")) not in seen:
                        found.append(d)
                found.sort(key=lambda f: f.get("started") or 0, reverse=True)
                found = found[:HISTORY_LIMIT]
        except Exception as exc:  # noqa: BLE001 - shown in the modal
            self.post_message(self.Loaded((), f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Loaded(tuple(found), None))

    def on_trigger_history_modal_loaded(self, message: Loaded) -> None:
        self._reads.done()
        title = self.query_one("#history-title", Static)
        if message.error is not None:
            title.update(Text(f"History of {self.trigger}: cannot read it ({message.error})"))
            return
        signature = tuple(
            (f.get("trigger"), f.get("started"), f.get("ended"), f.get("status")) for f in message.firings
        )
        n = len(message.firings)
        if n == 0:
            title.update(Text(f"History of {self.trigger}: no firings recorded yet"))
        else:
            title.update(
                Text(
                    f"History of {self.trigger}: {n} firing{'s' if n != 1 else ''}, newest first"
                    + (f" (the last {HISTORY_LIMIT})" if n >= HISTORY_LIMIT else "")
                )
            )
        if signature == self._signature:
            return  # nothing new: keep the cursor and the screen as they are
        self._signature = signature
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        self._firings = list(message.firings)
        table.clear()
        for i, f in enumerate(self._firings):
            functions = f.get("functions") or []
            ok = sum(1 for fn in functions if fn.get("ok"))
            databases = f.get("databases") or []
            table.add_row(
                _stamp(f.get("started")),
                format_duration(f.get("started"), f.get("ended")),
                outcome_text(f),
                f"{ok}/{len(functions)} ok",
                str(len(databases)) if databases else "-",
                str(f.get("reason") or ""),
                key=str(i),
            )
        if self._firings:
            table.move_cursor(row=min(cursor, len(self._firings) - 1), animate=False)
        self._show_details()

    def _show_details(self) -> None:
        details = self.query_one("#history-details", Static)
        table = self.query_one(DataTable)
        if not self._firings:
            details.update(Text(f"{self.trigger} has not fired yet (or its firings were not recorded)."))
            return
        index = min(max(table.cursor_row, 0), len(self._firings) - 1)
        details.update(firing_details(self._firings[index], engine_time(self.engine)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.set_focus(self.query_one("#history-details-pane"))

    def action_close(self) -> None:
        self.dismiss(None)
