"""What every view of the console shares: the engine (typed), its place in the history, and
whether it is on screen.

A view hidden behind another (the jobs list under a job view, a view of another mode) receives no
engine news and paints nothing: Textual repaints the whole visible screen for any change of a
screen under it, so a live list behind the job view cost 70 KiB/s of terminal output. A view
catches up when it is shown again (``on_screen_resume``).

A view that follows one kind of engine news says which (:meth:`ConsoleScreen.wants`) and how it
catches up (:meth:`ConsoleScreen.catch_up`): on that news, and whenever it is shown again.
:class:`CatalogView` is the base of the views of the catalog (loaded in a worker thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from textual import work
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable

from kzconsole.messages import EngineBatch, EngineUpdated

if TYPE_CHECKING:
    from kzconsole.app import KzConsoleApp
    from kzconsole.engine import Engine

Place = tuple[str, ...]  # ("view", mode) | ("job", id) | ("file", id, "input" | "output")


def engine_time(engine: Any) -> float:
    """The engine's clock (tests drive a fake one), the host's when it cannot be read."""
    try:
        return float(engine.clock.time())
    except Exception:  # noqa: BLE001 - an engine being replaced; the host's clock is as good
        return time.time()


class OneRead:
    """One read of a view's data in flight at a time: asked while one runs, it starts once more
    after it (what changed meanwhile is read then), never twice at once."""

    def __init__(self, start: Callable[[], object], later: Callable[[Callable[[], None]], object]) -> None:
        self._start = start  # starts the read (a worker); done() is called when it has ended
        self._later = later  # the screen's call_later: the next read starts after this message
        self.running = False
        self._again = False

    def ask(self) -> None:
        if self.running:
            self._again = True
            return
        self.running = True
        self._start()

    def done(self) -> None:
        self.running = False
        if self._again:
            self._again = False
            self._later(self.ask)


class RowDetails:
    """A view's table whose highlighted row's details the view shows (Plugins, Triggers): moving
    the cursor redraws them (the view's ``_show_details``), enter opens the row (``_open_row``)."""

    def _show_details(self) -> None:
        raise NotImplementedError

    def _open_row(self) -> None:
        raise NotImplementedError

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open_row()


class ConsoleScreen(Screen[Any]):
    DEFAULT_CSS = """
    /* A view's title line (Catalog, Triggers, Plugins, Logs). */
    ConsoleScreen .view-title {
        height: 1;
        padding: 0 1;
        text-style: bold;
        background: $panel;
    }
    /* The details of the highlighted row, under a view's table (Triggers, Plugins). */
    ConsoleScreen .details-pane {
        height: 1fr;
        padding: 0 1;
        border-top: solid $primary-darken-2;
    }
    """

    VIEW_NAME = ""
    MODE = "jobs"  # the view (Textual mode) the screen belongs to

    @property
    def console(self) -> KzConsoleApp:
        return cast("KzConsoleApp", self.app)

    @property
    def engine(self) -> Engine:
        return self.console.engine

    @property
    def shown(self) -> bool:
        """On screen now (the top screen, or under a dialog that lets it show through)."""
        visible = getattr(self.app, "visible_screens", None)
        return self.is_current if visible is None else self in visible()

    def place(self) -> Place:
        return ("view", self.MODE)

    def on_screen_resume(self) -> None:
        visited = getattr(self.app, "visited", None)
        if visited is not None:
            visited(self)
        self.catch_up()

    def on_engine_updated(self, message: EngineUpdated) -> None:
        if self.wants(message.batch):
            self.catch_up()

    def wants(self, batch: EngineBatch) -> bool:
        """Whether this engine news changes what the view shows (then :meth:`catch_up` runs)."""
        return False

    def catch_up(self) -> None:
        """Bring the view up to date: on the news it :meth:`wants`, and when it is shown again."""


class CatalogView(ConsoleScreen):
    """A view of what the catalog holds (the Catalog and Plugins views), read in a worker thread
    (:meth:`_read`: the first catalog read may load every plugin, and plugin code may run) and
    read again when the catalog's version changes; one read at a time (a change during a read is
    read after it). :meth:`_show` draws what was read."""

    @dataclass
    class Loaded(Message):
        """What a read found (``items``), or why it failed (``error``)."""

        version: int | None
        items: tuple[Any, ...]
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self._version: int | None = None
        self._loading = False
        self._error: str | None = None
        self._stale = False  # the catalog changed while a load ran: load again after it

    def wants(self, batch: EngineBatch) -> bool:
        return batch.catalog_changed

    def catch_up(self) -> None:
        """Load again if the catalog changed since the last load (or the last load failed)."""
        if self._loading:
            self._stale = True
            return
        try:
            version = self.engine.catalog.version
        except Exception:  # noqa: BLE001 - the next load reports it
            version = None
        if version != self._version:
            self._load()

    def _load(self) -> None:
        self._loading = True
        self._load_worker()

    @work(thread=True, exclusive=True, group="catalog-view-load")
    def _load_worker(self) -> None:
        try:
            version = self.engine.catalog.version
            items = self._read()
        except Exception as exc:  # noqa: BLE001 - shown in the view, the screen keeps working
            self.post_message(self.Loaded(None, (), f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Loaded(version, items, None))

    def _read(self) -> tuple[Any, ...]:
        """What the view shows, read from the engine (in the worker thread)."""
        raise NotImplementedError

    def _show(self, items: tuple[Any, ...] | None) -> None:
        """Draw what was read; None: the read failed (``_error`` says why)."""
        raise NotImplementedError

    def on_catalog_view_loaded(self, message: Loaded) -> None:
        self._loading = False
        if self._stale:
            self._stale = False
            self.call_later(self.catch_up)
        self._error = message.error
        # A failed read is read again on the next version change.
        self._version = -1 if message.error is not None else message.version
        self._show(message.items if message.error is None else None)
