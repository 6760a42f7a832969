"""Defects found by exploratory QA of the console in a real terminal (tmux), round of 2026-12-02:
each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from textual.widgets import Tree

from kzconsole.engine import Engine
from kzconsole.engine.clock import FakeClock
from kzconsole.screens.catalog import CatalogScreen
from kzconsole.screens.job_detail import JobDetailScreen
from kzconsole.screens.logs import LogsScreen
from kzconsole.screens.new_job import NewJobModal
from kzconsole.widgets.csv_table import CsvTable
from tests.conftest import write_csv
from tests.ui.conftest import job_id, make_job, running_console, screen_text, seed_jobs, shown, ui_settings, wait_for
from tests.ui.test_defects import GATED_PLUGIN

pytestmark = pytest.mark.anyio


def _rows_csv(tmp_path, rows: int = 400):
    return write_csv(tmp_path / "rows.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(rows)])


def _table_lines(app) -> list[str]:
    """The output table's painted rows (those under its header that start with a row number)."""
    lines = screen_text(app).splitlines()
    header = next(n for n, line in enumerate(lines) if line.lstrip().startswith("# col1"))
    return [line for line in lines[header + 1 :] if line.split() and line.split()[0].isdigit()]


async def test_rows_written_after_the_output_was_first_read_show_their_cells(tmp_path, plugin_dir):
    """The output tab of a running job showed the rows that came after its first look as row
    numbers with empty cells (`tasks run` of 200,000 rows, `t`, `G`: "1712" and nothing else).
    The table kept the stream it opened first, and a small output is handed out as a copy of the
    bytes stored then: rows after them read as nothing."""
    plugin_dir.write("gated.py", GATED_PLUGIN)
    settings = ui_settings(tmp_path, plugin_dir.path, send_progress_after_processed=1)
    engine = Engine(settings)
    gate = engine.catalog.task("gated", "rows").function.__globals__["GATE"]
    try:
        async with running_console(settings, engine=engine) as (app, pilot):
            try:
                job = app.engine.add_job("gated", "rows", input=_rows_csv(tmp_path), wait_ms=0, start=True)
                app.open_job(job.id)
                screen = await shown(pilot, app, JobDetailScreen)
                await pilot.press("t")
                table = screen.query_one(CsvTable)
                gate.release(3)
                await wait_for(pilot, lambda: table.row_count == 3, what="the first rows")
                await wait_for(pilot, lambda: "a2" in screen_text(app), what="the first rows painted")
                await pilot.press("G")
                gate.release(7)
                await wait_for(pilot, lambda: table.row_count == 10 and table.cursor == 9, what="more rows")
                await wait_for(pilot, lambda: " a9" in screen_text(app), what="the last row's cells")
                assert [line.split()[:2] for line in _table_lines(app)][-3:] == [["8", "a7"], ["9", "a8"], ["10", "a9"]]
            finally:
                gate.release(400)  # no job thread left waiting at the gate when the engine stops
    finally:
        gate.release(400)


async def test_the_job_view_drops_why_a_job_waited_once_it_runs(tmp_path, plugin_dir):
    """`r` in the job view opens the new job while it is queued ("waiting  about to start (1 of
    4 slots taken)"); that line stayed in its record while the job ran, and after it ended."""
    plugin_dir.write("gated.py", GATED_PLUGIN)
    settings = ui_settings(tmp_path, plugin_dir.path, max_running=1, send_progress_after_processed=1)
    engine = Engine(settings)
    gate = engine.catalog.task("gated", "rows").function.__globals__["GATE"]
    try:
        async with running_console(settings, engine=engine) as (app, pilot):
            try:
                first = app.engine.add_job("gated", "rows", input=_rows_csv(tmp_path, 2), wait_ms=0, start=True)
                await wait_for(pilot, lambda: app.engine.get_job(first.id).status.name == "EXECUTING")
                second = app.engine.add_job("gated", "rows", input=_rows_csv(tmp_path, 2), wait_ms=0, start=True)
                app.open_job(second.id)
                await shown(pilot, app, JobDetailScreen)
                await wait_for(pilot, lambda: "every slot is taken" in screen_text(app), what="why it waits")
                gate.release(4)  # both jobs' rows
                await wait_for(pilot, lambda: app.engine.get_job(second.id).status.is_finished, what="the end")
                await wait_for(pilot, lambda: "success" in screen_text(app), what="the view to show the end")
                assert "waiting" not in screen_text(app)
            finally:
                gate.release(400)
    finally:
        gate.release(400)


async def test_the_key_bar_lists_no_key_the_filter_box_types(tmp_path):
    """With the filter box open (`/`), the key bar said "+ Slower - Faster": those keys type a
    `+` or `-` into the filter, as every other character does."""
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False, size=(200, 30)) as (app, pilot):
        assert "Slower" in screen_text(app).splitlines()[-1]
        await pilot.press("slash")
        await pilot.press("plus")
        await wait_for(pilot, lambda: "filter: +" in screen_text(app), what="the + typed into the filter")
        key_bar = screen_text(app).splitlines()[-1]
        assert "Slower" not in key_bar and "Faster" not in key_bar


async def test_collapsing_or_expanding_the_catalog_leaves_the_details_and_n_on_the_highlighted_row(tmp_path):
    """`c` with the first task highlighted collapsed every category and left the cursor on the
    second category's line, while the details (and `n`, which opened a new job for it) stayed on
    the task; `e` on a collapsed category did the same the other way."""
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.action_view("catalog")
        screen = await shown(pilot, app, CatalogScreen)
        await wait_for(pilot, lambda: screen.selected_task() is not None, what="the catalog")
        tree = screen.query_one(Tree)
        categories = sorted({category for category, _ in screen.tasks})
        first = screen.selected_task()
        assert first is not None and first.category == categories[0]
        await pilot.press("c")
        await wait_for(pilot, lambda: tree.cursor_node.data == (categories[0], None), what="the task's category")
        await wait_for(pilot, lambda: f"Category {categories[0]}" in screen_text(app), what="its details")
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, NewJobModal)
        await pilot.press("j")
        await wait_for(pilot, lambda: f"Category {categories[1]}" in screen_text(app), what="the next category")
        await pilot.press("e")
        await wait_for(pilot, lambda: tree.cursor_node.data == (categories[1], None), what="the cursor kept")
        assert f"Category {categories[1]}" in screen_text(app)


async def test_each_press_of_minus_shortens_the_pause_one_more_step(tmp_path, plugin_dir):
    """`-` pressed three times in the view of a job running here took the pause from 500 to 250
    ms, not to 50: each press stepped from the pause the job reported at its last row, not from
    the one just set."""
    plugin_dir.write("gated.py", GATED_PLUGIN)
    settings = ui_settings(tmp_path, plugin_dir.path, send_progress_after_processed=1)
    engine = Engine(settings)
    gate = engine.catalog.task("gated", "rows").function.__globals__["GATE"]
    try:
        async with running_console(settings, engine=engine) as (app, pilot):
            try:
                job = app.engine.add_job("gated", "rows", input=_rows_csv(tmp_path), wait_ms=500, start=True)
                gate.release(1)  # one row: the job reports its progress (and its pause), then waits
                await wait_for(pilot, lambda: app.bridge.live_progress(job.id), what="the job to run here")
                app.open_job(job.id)
                await shown(pilot, app, JobDetailScreen)
                await pilot.press("minus", "minus", "minus")  # the job waits in its second row meanwhile
                await wait_for(pilot, lambda: app.engine.get_job(job.id).wait_after_row_ms != 500, what="a change")
                assert app.engine.get_job(job.id).wait_after_row_ms == 50
                await wait_for(pilot, lambda: "pause 50 ms" in screen_text(app), what="the pause shown")
                await pilot.press("plus")
                assert app.engine.get_job(job.id).wait_after_row_ms == 100
            finally:
                gate.release(400)
    finally:
        gate.release(400)


async def test_the_logs_search_box_shows_what_is_typed(tmp_path):
    """`/` in the Logs view opened a search box that could not be seen: it was docked on the key
    bar's line, under the key bar."""
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, pilot):
        await pilot.press("5")
        await shown(pilot, app, LogsScreen)
        await pilot.press("slash")
        await wait_for(pilot, lambda: "search the log (enter: keep" in screen_text(app), what="the empty box")
        await pilot.press("r", "e", "s", "u", "m")
        await wait_for(
            pilot, lambda: any(line.strip() == "resum" for line in screen_text(app).splitlines()), what="the text typed"
        )


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line, in its own process, on the console's data dir."""
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("KZCONSOLE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "kzconsole", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )


async def test_the_view_of_a_finished_job_closes_when_another_process_removes_it(tmp_path):
    """`kzconsole tasks remove ID` run beside a console open on that (finished) job's view left
    the view open on a job that no longer existed (`r` then said "no job ...")."""
    settings = ui_settings(tmp_path)
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job("skel", "id2", input=_rows_csv(tmp_path, 3), start=True)
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status.is_finished, what="the job to end")
        app.open_job(job.id)
        await shown(pilot, app, JobDetailScreen)
        await wait_for(pilot, lambda: "success" in screen_text(app), what="its view")
        _cli(tmp_path, "tasks", "remove", job.id)
        await wait_for(pilot, lambda: not isinstance(app.screen, JobDetailScreen), what="the view to close")
        await wait_for(pilot, lambda: f"job {job.id[:8]} no longer exists" in screen_text(app), what="why")


async def test_the_jobs_line_keeps_what_fits_when_a_long_note_is_left_out(tmp_path):
    """At 80 columns, a job with a long note (its `error`) highlighted, the line under the list
    left out the note, which did not fit, and also the sort, which then did."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    engine.store.create_job(make_job(1, status="internal_error", error="task skel/gone is not in the catalog"))
    async with running_console(settings, start_engine=False, engine=engine, size=(80, 24)) as (app, pilot):
        await wait_for(pilot, lambda: job_id(1) in screen_text(app), what="the line under the list")
        line = next(line for line in screen_text(app).splitlines() if job_id(1) in line)
        assert "sort: newest first" in line


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
async def test_the_new_job_dialog_refuses_a_device_instead_of_reading_it_for_ever(tmp_path):
    """/dev/zero typed as the input file: the dialog said "checking…" for ever while a thread
    read zeros at full speed (and ctrl+s would have stored them for ever)."""
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.open_new_job("skel", "id2")
        modal = await shown(pilot, app, NewJobModal)
        await wait_for(pilot, lambda: modal.task_info is not None, what="the task pre-filled")
        modal.query_one("#file").value = "/dev/zero"
        await wait_for(pilot, lambda: "is not a regular file" in screen_text(app), what="the refusal")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: "not created: /dev/zero is not a regular file" in screen_text(app))
        assert isinstance(app.screen, NewJobModal) and app.engine.count_jobs() == 0


async def test_the_nodes_view_fits_80_columns_and_refits_when_resized(tmp_path):
    """At 80 columns the Nodes view cut "Jobs" to "Job" and left "Resumed" off the right edge
    (its columns took 94); the columns were fitted once, at the width the view opened with."""
    from kzconsole.engine.models import EngineLease
    from kzconsole.screens.nodes import NodesScreen

    settings = ui_settings(tmp_path)
    async with running_console(settings, size=(80, 24)) as (app, pilot):
        store = app.engine.store
        now = store.now()
        store.heartbeat(EngineLease("node-a:41:aa", "host-a", 41, now - 100, now - 50, name="node-a", slots=4))
        await pilot.press("6")
        screen = await shown(pilot, app, NodesScreen)
        await wait_for(pilot, lambda: len(screen.nodes) == 2, what="both engines")
        await wait_for(pilot, lambda: "Resumed" in screen_text(app), what="every column that matters")
        header = next(line for line in screen_text(app).splitlines() if line.lstrip().startswith("Node"))
        assert header.rstrip().endswith("Jobs   Resumed") and len(header) <= 80
        await pilot.press("down")  # the dead engine: its host and version are in the details
        await wait_for(pilot, lambda: "host host-a, pid 41" in screen_text(app), what="the details")
        await pilot.resize_terminal(120, 30)
        await wait_for(pilot, lambda: "Version" in screen_text(app), what="the wide columns")
        await wait_for(pilot, lambda: "host-a" in screen_text(app).split("host host-a")[0], what="the host column")


async def test_l_goes_to_the_log_tab_from_the_output_tab(tmp_path):
    """The job view's tabs read "Log (l)  Output (t)", but on the output tab `l` moved the table
    one column right (the table's own key) and the log tab could not be reached with it."""
    from textual.widgets import TabbedContent

    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        app.open_job(job_id(1))
        screen = await shown(pilot, app, JobDetailScreen)
        tabs = screen.query_one(TabbedContent)
        await pilot.press("t")
        await wait_for(pilot, lambda: tabs.active == "output", what="the output tab")
        table = screen.query_one(CsvTable)
        await wait_for(pilot, lambda: table.row_count == 100, what="the output")
        await pilot.press("l")
        await wait_for(pilot, lambda: tabs.active == "log", what="the log tab")
        assert table.column == 0


async def test_new_for_an_unknown_task_says_so(tmp_path):
    """`:new nope/nope` opened the new-job dialog saying only "pick a task": its "unknown task"
    line was replaced at once by the checks of an empty form."""
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, pilot):
        await pilot.press("colon", *"new", "space", *"nope", "slash", *"nope", "enter")
        modal = await shown(pilot, app, NewJobModal)
        await wait_for(pilot, lambda: modal.tasks, what="the catalog in the dialog")
        await wait_for(pilot, lambda: "unknown task nope/nope" in screen_text(app), what="why no task is picked")
