"""SVG snapshots of every view at 80x24 and 120x40 (``--snapshot-update`` rewrites them).

Deterministic: a FakeClock, TZ=UTC (tests/ui/conftest.py), fixed job ids and files, the engine not
started (no threads), and every path that reaches the screen under a fixed folder, so the pictures
are the same on any machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from kzconsole.app import KzConsoleApp
from kzconsole.engine import Engine
from kzconsole.engine.clock import FakeClock
from tests.conftest import write_csv
from tests.ui.conftest import seed_jobs, ui_settings

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
ROOT = Path("/tmp/kzconsole-snapshots")

# A plugin at a fixed path, first in the catalog, so no checkout path shows on screen.
PLUGIN = """
from kzconsole.plugin import task

@task("accounts", "rename",
      description="Renames accounts",
      doc="Takes an account id and a new name; writes the old and the new name.",
      mandatory=["account_id", "name"], optional=["reseller"],
      output_header=["account_id", "old_name", "name"])
def rename(ctx, it, row):
    return [row["account_id"], "old", row["name"]]
"""


@pytest.fixture
def snap_app(request) -> Any:
    """Build the console on fixed data under ROOT/<test>; close its engine afterwards."""
    made: list[KzConsoleApp] = []

    def build() -> KzConsoleApp:
        base = ROOT / request.node.name.replace("[", "-").replace("]", "")
        shutil.rmtree(base, ignore_errors=True)
        plugins = base / "plugins"
        plugins.mkdir(parents=True)
        (plugins / "accounts.py").write_text(PLUGIN)
        write_csv(base / "accounts.csv", [["account_id", "name"], ["a1", "Alpha"], ["a2", ""], ["a3", "Gamma"]])
        settings = ui_settings(base, plugins)
        clock = FakeClock()
        engine = Engine(settings, clock=clock, node="snapshot-node")
        seed_jobs(engine)
        app = KzConsoleApp(settings, engine=engine, clock=clock, start_engine=False)
        made.append(app)
        return app

    yield build
    for app in made:
        app.engine.close()


async def _settle(pilot, condition=lambda: True, rounds: int = 100) -> None:
    for _ in range(rounds):
        if condition():
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_jobs_view(snap_compare, snap_app, size):
    assert snap_compare(snap_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_job_view_log(snap_compare, snap_app, size):
    async def run_before(pilot) -> None:
        await pilot.press("G", "enter")
        await _settle(
            pilot, lambda: pilot.app.screen.query("LogTail") and pilot.app.screen.query_one("LogTail").line_count
        )

    assert snap_compare(snap_app(), terminal_size=size, run_before=run_before)


def test_job_view_failed_rows(snap_compare, snap_app):
    async def run_before(pilot) -> None:
        await pilot.press("G", "up", "enter")
        await _settle(
            pilot,
            lambda: pilot.app.screen.query("CsvTable") and len(pilot.app.screen.query_one("CsvTable").data) == 100,
        )
        await pilot.press("f")

    assert snap_compare(snap_app(), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_new_job_modal_with_checks(snap_compare, snap_app, size):
    async def run_before(pilot) -> None:
        app = pilot.app
        app.open_new_job("accounts", "rename")
        await _settle(pilot, lambda: app.screen.query("#file") and app.screen.task_info is not None)
        box = app.screen.query_one("#file")
        box.value = str(Path(app.settings.data_dir).parent / "accounts.csv")
        await _settle(pilot, lambda: "empty mandatory" in str(app.screen.query_one("#checks").render()))
        await pilot.pause()

    assert snap_compare(snap_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_output_viewer(snap_compare, snap_app, size):
    async def run_before(pilot) -> None:
        await pilot.press("G", "up", "o")
        await _settle(
            pilot,
            lambda: pilot.app.screen.query("CsvTable") and len(pilot.app.screen.query_one("CsvTable").data) == 100,
        )

    assert snap_compare(snap_app(), terminal_size=size, run_before=run_before)


def test_help(snap_compare, snap_app):
    assert snap_compare(snap_app(), terminal_size=(80, 24), press=["question_mark"])


def test_delete_confirmation(snap_compare, snap_app):
    assert snap_compare(snap_app(), terminal_size=(80, 24), press=["G", "d"])


def test_filtered_and_command_line(snap_compare, snap_app):
    async def run_before(pilot) -> None:
        await pilot.press("slash", *"done", "enter")
        await _settle(pilot, lambda: pilot.app.screen.query_one("JobList").total == 5)
        await pilot.press("colon", "c", "a")
        await pilot.pause()

    assert snap_compare(snap_app(), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "key,ready",
    [
        pytest.param("2", "accounts/rename", id="catalog"),
        pytest.param("3", "minutely", id="triggers"),
        pytest.param("4", "accounts.py", id="plugins"),
        pytest.param("5", "Logs", id="logs"),
    ],
)
def test_other_views(snap_compare, snap_app, size, key, ready):
    async def run_before(pilot) -> None:
        await pilot.press(key)
        from tests.ui.conftest import screen_text

        await _settle(pilot, lambda: ready in screen_text(pilot.app) and "loading" not in screen_text(pilot.app))
        await pilot.pause(0.1)

    assert snap_compare(snap_app(), terminal_size=size, run_before=run_before)
