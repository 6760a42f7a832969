"""Pilot tests of the Catalog, Triggers, Plugins and Logs views, in the console over an Engine on a
private data dir.

Deterministic: no sleeps; the tests wait for conditions (worker results arrive as messages) with
``pilot.pause()`` in a bounded loop, and the trigger countdown runs on a FakeClock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kzconsole.app import KzConsoleApp
from kzconsole.engine import Engine
from kzconsole.engine.clock import FakeClock
from kzconsole.screens.catalog import CatalogScreen
from kzconsole.screens.logs import LogsScreen
from kzconsole.screens.plugins import PluginsScreen
from kzconsole.screens.triggers import TriggerHistoryModal, TriggersScreen, format_countdown
from tests.ui.conftest import screen_text, ui_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    # Times on screen are local: pin the zone so the expected strings are fixed.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def make_engine(tmp_path, plugin_dir):
    engines: list[Engine] = []

    def make(**kwargs: Any) -> Engine:
        engine = Engine(ui_settings(tmp_path, plugin_dir.path), **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


async def wait_for(pilot: Any, condition: Callable[[], Any], what: str, tries: int = 400) -> None:
    """Let the app process messages until ``condition()`` holds (worker results are messages)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def console_on(engine: Engine, view: str, size: tuple[int, int]) -> AsyncIterator[tuple[Any, Any]]:
    """The console over ``engine`` (not started unless the test started it), on ``view``."""
    app = KzConsoleApp(engine.settings, engine=engine, clock=engine.clock, start_engine=False)
    async with app.run_test(size=size) as pilot:
        app.action_view(view)
        await wait_for(pilot, lambda: app.current_mode == view and app.screen.is_mounted, f"the {view} view")
        yield app, pilot


# ---------------------------------------------------------------------------------- catalog


@pytest.mark.anyio
async def test_catalog_shows_skel_id2_details(make_engine):
    async with console_on(make_engine(), "catalog", (100, 30)) as (app, pilot):
        screen = app.screen
        assert isinstance(screen, CatalogScreen)
        await wait_for(pilot, lambda: screen.selected_task() is not None, "the catalog to load")
        # Walk the tree with the keyboard to skel/id2.
        for _ in range(40):
            task = screen.selected_task()
            if task is not None and task.name == "skel/id2":
                break
            await pilot.press("down")
        else:
            raise AssertionError("skel/id2 is not in the tree")
        await pilot.pause()
        text = screen_text(app)
        assert "skel/id2" in text
        assert "The identity task" in text
        assert "Takes 2 columns and returns them." in text
        assert "text/csv" in text
        assert "col1, col2" in text  # mandatory
        assert "Col1, Col2, error" in text  # output header, error added by the engine
        assert "skel.py:" in text  # where the plugin declares it
        assert "col2" in screen.selected_task().verified
        # n opens the new-job dialog for it.
        await pilot.press("n")
        from kzconsole.screens.new_job import NewJobModal

        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, NewJobModal)
                and app.screen.task_info is not None
                and app.screen.task_info.name == "skel/id2"
            ),
            "the dialog, pre-filled",
        )


@pytest.mark.anyio
async def test_catalog_noinput_task_and_callable_header(make_engine, plugin_dir):
    plugin_dir.write(
        "cat.py",
        """
        from kzconsole.plugin import task

        def header():
            raise RuntimeError("no header today")

        @task("zcat", "noin", description="Runs without input", output_header=header)
        def noin(ctx, it):
            return None
        """,
    )
    async with console_on(make_engine(), "catalog", (80, 24)) as (app, pilot):
        screen = app.screen
        await wait_for(pilot, lambda: ("zcat", "noin") in screen.tasks, "the plugin's task")
        for _ in range(40):
            task = screen.selected_task()
            if task is not None and task.name == "zcat/noin":
                break
            await pilot.press("down")
        await pilot.pause()
        text = screen_text(app)
        assert "Input   no input" in text
        assert "RuntimeError" in text  # the header callable's failure is shown, not raised
        assert "no header today" in screen.selected_task().header_note


@pytest.mark.anyio
async def test_catalog_follows_a_reload(make_engine, plugin_dir):
    engine = make_engine()
    async with console_on(engine, "catalog", (80, 24)) as (app, pilot):
        screen = app.screen
        await wait_for(pilot, lambda: screen.selected_task() is not None, "the catalog to load")
        plugin_dir.write(
            "late.py",
            """
            from kzconsole.plugin import task

            @task("late", "one", description="Arrived later", optional=["x"])
            def one(ctx, it, row):
                return None
            """,
        )
        engine.reload_plugins()  # the engine says the catalog changed; the view follows
        await wait_for(pilot, lambda: ("late", "one") in screen.tasks, "the new task", tries=600)


# ---------------------------------------------------------------------------------- plugins


BROKEN = """
from kzconsole.plugin import task

@task("broken", "x", description="never loads")
def x(ctx, it, row)
    return None
"""


@pytest.mark.anyio
async def test_plugins_shows_the_traceback_of_a_syntax_error(make_engine, plugin_dir):
    plugin_dir.write("broken.py", BROKEN)
    async with console_on(make_engine(), "plugins", (100, 30)) as (app, pilot):
        screen = app.screen
        assert isinstance(screen, PluginsScreen)
        await wait_for(pilot, lambda: screen.selected_plugin() is not None, "the plugins to load")
        # The cursor starts on the broken plugin: that is what the operator came for.
        selected = screen.selected_plugin()
        assert selected.source.endswith("broken.py")
        await pilot.pause()
        text = screen_text(app)
        assert "FAILED" in text
        assert "broken.py" in text
        assert "1 with load errors" in text
        assert "SyntaxError" in text
        assert "Traceback" in text or "line 5" in text
        # enter focuses the scrollable traceback pane
        await pilot.press("enter")
        assert app.focused is not None and app.focused.id == "plugins-details-pane"


@pytest.mark.anyio
async def test_plugins_reload_picks_up_a_new_file(make_engine, plugin_dir):
    async with console_on(make_engine(), "plugins", (100, 30)) as (app, pilot):
        screen = app.screen
        await wait_for(pilot, lambda: screen.selected_plugin() is not None, "the plugins to load")
        assert not any(s.source.endswith("fresh.py") for s in screen.sources)
        plugin_dir.write(
            "fresh.py",
            """
            from kzconsole.plugin import task, trigger

            @task("fresh", "a", description="A new task", mandatory=["n"])
            def a(ctx, it, row):
                return None

            @trigger("hourly")
            def every_hour():
                pass
            """,
        )
        await pilot.press("r")
        await wait_for(pilot, lambda: any(s.source.endswith("fresh.py") for s in screen.sources), "the reloaded list")
        await wait_for(pilot, lambda: not screen.reloading, "the reload to end")
        fresh = next(s for s in screen.sources if s.source.endswith("fresh.py"))
        assert fresh.loaded and [t.name for t in fresh.tasks] == ["fresh/a"]
        screen.query_one("DataTable").move_cursor(row=screen.sources.index(fresh))
        await pilot.pause()
        text = screen_text(app)
        assert "fresh.py" in text
        assert "fresh/a" in text
        assert "hourly: every_hour" in text


# ---------------------------------------------------------------------------------- logs


@pytest.mark.anyio
async def test_logs_without_engine_shows_a_note(make_engine):
    async with console_on(make_engine(), "logs", (80, 24)) as (app, pilot):
        await pilot.pause()
        assert "not started" in screen_text(app)


@pytest.mark.anyio
async def test_logs_tail_level_filter_and_search(make_engine):
    engine = make_engine()
    engine.start(run_jobs=False, watch=False, triggers=False)
    log = logging.getLogger("kzconsole.test.screens")
    log.setLevel(logging.DEBUG)
    async with console_on(engine, "logs", (100, 30)) as (app, pilot):
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        log.info("alpha line for the tail")
        log.warning("bravo warning here")
        log.error("charlie went wrong")

        def has(text: str) -> bool:
            return any(text in line for line in screen.shown_lines())

        await wait_for(pilot, lambda: has("charlie"), "the lines to arrive")
        assert has("alpha") and has("bravo")
        assert any("WARNING" in line and "bravo" in line for line in screen.shown_lines())

        # l raises the minimum level: INFO -> WARNING hides alpha.
        await pilot.press("l")
        assert screen.level == "WARNING"
        assert not has("alpha") and has("bravo") and has("charlie")
        await pilot.press("l")
        assert screen.level == "ERROR"
        assert not has("bravo") and has("charlie")
        await pilot.press("l")  # no wrap around to DEBUG: it says ERROR is the highest
        assert screen.level == "ERROR"
        await wait_for(pilot, lambda: "already ERROR" in screen_text(app), "why")
        await pilot.press("L", "L", "L")  # down to DEBUG: everything again
        assert screen.level == "DEBUG"
        assert has("alpha") and has("bravo")

        # / searches incrementally; typed letters go to the search box, not to the bindings.
        await pilot.press("slash")
        await pilot.press(*"brav")
        assert screen.search == "brav"
        assert has("bravo") and not has("alpha") and not has("charlie")
        # A new matching line arrives while searching; a non-matching one stays hidden.
        log.warning("bravo again")
        log.info("delta unrelated")
        await wait_for(pilot, lambda: has("bravo again"), "the new matching line")
        assert not has("delta")
        await pilot.press("enter")  # keep the filter, back to the log
        assert screen.search == "brav"
        await pilot.press("escape")  # clear it
        assert screen.search == ""
        assert has("delta") and has("alpha")
        assert "level >= DEBUG" in screen_text(app)


# ---------------------------------------------------------------------------------- triggers


def _schedule(now: float) -> list[dict[str, Any]]:
    return [
        {
            "name": "minutely",
            "functions": ["kzconsole.plugins.skel:tick"],
            "next_fire": now + 42,
            "last": {
                "trigger": "minutely",
                "started": now - 18,
                "ended": now - 17.5,
                "status": "ok",
                "reason": None,
                "functions": [{"function": "kzconsole.plugins.skel:tick", "ok": True, "error": None, "seconds": 0.5}],
                "databases": [],
            },
        },
        {
            "name": "hourly",
            "functions": ["/plugins/a.py:purge", "/plugins/b.py:report"],
            "next_fire": now + 3600 - 5,
            "last": {
                "trigger": "hourly",
                "started": now - 5,
                "ended": now - 2,
                "status": "failed",
                "reason": None,
                "functions": [
                    {"function": "/plugins/a.py:purge", "ok": True, "error": None, "seconds": 1.0},
                    {"function": "/plugins/b.py:report", "ok": False, "error": "ValueError: boom", "seconds": 2.0},
                ],
                "databases": [],
            },
        },
        {"name": "account", "functions": ["/plugins/c.py:cleanup"], "next_fire": None, "last": None},
    ]


class _FakeFiring:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def public(self) -> dict[str, Any]:
        return dict(self._data)


@pytest.mark.anyio
async def test_triggers_fixed_data_and_countdown(make_engine, monkeypatch):
    clock = FakeClock(1_764_320_400.0 + 18)  # 2025-11-28 09:00:18 UTC
    engine = make_engine(clock=clock)
    start = clock.time()
    monkeypatch.setattr(engine, "trigger_schedule", lambda: _schedule(start))
    fired: list[tuple[str, bool]] = []
    monkeypatch.setattr(engine, "fire_trigger", lambda name, wait=True: fired.append((name, wait)))
    history = [
        _FakeFiring(_schedule(start)[1]["last"]),
        _FakeFiring(
            {
                **_schedule(start)[1]["last"],
                "started": start - 3605,
                "ended": start - 3604,
                "status": "ok",
                "functions": [{"function": "/plugins/a.py:purge", "ok": True, "error": None, "seconds": 1.0}],
            }
        ),
    ]
    asked: list[tuple[str | None, int]] = []

    def firings(*, trigger=None, limit=100):
        asked.append((trigger, limit))
        return [f for f in history if trigger in (None, "hourly")]

    monkeypatch.setattr(engine, "firings", firings)
    async with console_on(engine, "triggers", (100, 30)) as (app, pilot):
        screen = app.screen
        assert isinstance(screen, TriggersScreen)
        await wait_for(pilot, lambda: screen.selected_trigger() is not None, "the schedule")
        table = screen.query_one("DataTable")
        assert table.get_cell("minutely", "next") == "42s"
        assert table.get_cell("hourly", "next") == "59m55s"
        assert table.get_cell("account", "next") == "-"
        assert table.get_cell("hourly", "functions") == "a.py:purge +1"
        assert str(table.get_cell("hourly", "outcome")) == "FAILED"
        assert table.get_cell("minutely", "last") == "09:00:00"
        assert table.get_cell("minutely", "took") == "0.50s"
        assert table.get_cell("account", "last") == "never"

        # The clock moves: the countdown follows on the next tick, without a new schedule read.
        clock.advance(30)
        await wait_for(pilot, lambda: table.get_cell("minutely", "next") == "12s", "the countdown to tick")
        clock.advance(15)
        await wait_for(pilot, lambda: table.get_cell("minutely", "next") == "due", "the countdown to end")

        # The details of the selected (second) trigger show every bound function and the failure.
        await pilot.press("down")
        assert screen.selected_trigger() == "hourly"
        text = screen_text(app)
        assert "/plugins/b.py:report" in text and "ValueError: boom" in text

        # f fires it now, without waiting.
        await pilot.press("f")
        await wait_for(pilot, lambda: fired, "the firing")
        assert fired == [("hourly", False)]

        # enter opens the history of the selected trigger.
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TriggerHistoryModal), "the history")
        modal = app.screen
        await wait_for(pilot, lambda: len(modal.firings) == 2, "the firings")
        assert ("hourly", 200) in asked
        text = screen_text(app)
        assert "History of hourly: 2 firings" in text
        assert "ValueError: boom" in text  # the newest firing's details
        await pilot.press("down")
        await pilot.pause()
        assert "0/1 ok" not in screen_text(app)  # the second firing: 1/1 ok
        assert "1/1 ok" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, TriggersScreen)

        # A database trigger fires a whole database pass.
        await pilot.press("down")
        assert screen.selected_trigger() == "account"
        await pilot.press("f")
        await wait_for(pilot, lambda: len(fired) == 2, "the database pass")
        assert fired[-1] == ("databases", False)


@pytest.mark.anyio
async def test_triggers_without_trigger_engine(make_engine, monkeypatch):
    engine = make_engine()

    def missing():
        raise ImportError("No module named 'kzconsole.engine.triggers'")

    monkeypatch.setattr(engine, "trigger_schedule", missing)
    async with console_on(engine, "triggers", (80, 24)) as (app, pilot):
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded, "the schedule read")
        await pilot.pause()
        assert screen.query_one("DataTable").row_count == 0
        assert "not available" in screen_text(app)


def test_format_countdown():
    assert format_countdown(None) == "-"
    assert format_countdown(0) == "due"
    assert format_countdown(0.2) == "1s"
    assert format_countdown(65) == "1m05s"
    assert format_countdown(3 * 3600 + 4 * 60 + 9) == "3h04m09s"
    assert format_countdown(2 * 86400 + 3600) == "2d01h00m"
