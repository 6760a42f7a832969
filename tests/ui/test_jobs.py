"""The jobs flows, driven by keys through Pilot: create from a CSV and watch it finish, stop, filter,
delete with confirmation, the job view's log and output, the pause keys, and 100,000 jobs."""

from __future__ import annotations

import pytest

from kzconsole.engine import Engine, JobStatus
from kzconsole.engine.clock import FakeClock
from kzconsole.screens.confirm import ConfirmModal
from kzconsole.screens.csv_view import CsvViewScreen
from kzconsole.screens.job_actions import next_pause
from kzconsole.screens.job_detail import JobDetailScreen
from kzconsole.screens.jobs import JobsScreen, parse_filter
from kzconsole.screens.new_job import NewJobModal
from kzconsole.widgets.csv_table import CsvTable
from kzconsole.widgets.job_list import JobList
from kzconsole.widgets.log_tail import LogTail
from tests.conftest import write_csv
from tests.ui.conftest import (
    ACCOUNT,
    job_id,
    make_job,
    running_console,
    said,
    screen_text,
    seed_jobs,
    shown,
    ui_settings,
    wait_for,
)

pytestmark = pytest.mark.anyio


def _list(app) -> JobList:
    return app.screen.query_one(JobList)


async def _type(pilot, text: str) -> None:
    await pilot.press(
        *[
            {" ": "space", "/": "slash", ":": "colon", ".": "full_stop", "_": "underscore", "-": "minus"}.get(c, c)
            for c in text
        ]
    )


# ------------------------------------------------------------------ create and run


async def test_create_a_job_from_a_csv_through_the_modal_and_watch_it_finish(tmp_path):
    settings = ui_settings(tmp_path)
    src = write_csv(tmp_path / "numbers.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(20)])
    async with running_console(settings) as (app, pilot):
        await pilot.press("n")
        modal = await shown(pilot, app, NewJobModal)
        await wait_for(pilot, lambda: modal.tasks, what="the catalog in the modal")
        modal.query_one("#task").value = "skel/id2"
        box = modal.query_one("#file")
        box.focus()
        box.value = str(src)[:-3]
        box.cursor_position = len(box.value)
        await _type(pilot, "csv")  # typed, as the checks follow the keys
        # The checks of contract 3.3 and a preview, before anything exists.
        await wait_for(pilot, lambda: "20 data rows" in screen_text(app), what="the checks")
        assert "col1, col2" in screen_text(app)
        assert app.engine.count_jobs() == 0
        modal.query_one("#pause").value = "0"
        await pilot.press("ctrl+s")  # create and start
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen), what="the modal to close")
        job = app.engine.list_jobs()[0]
        assert job.file_name == "numbers.csv" and job.total_count == 20
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.SUCCESS, what="success")
        # The list shows it finished, and a notification said so.
        await wait_for(pilot, lambda: "✔ success" in screen_text(app), what="the list to show success")
        await wait_for(pilot, lambda: said(app, job.id[:8], "finished: success"), what="the message")
        assert "✔20 ✖0 /20" in screen_text(app)


async def test_the_modal_shows_what_is_wrong_before_creating_and_creates_nothing(tmp_path):
    settings = ui_settings(tmp_path)
    bad = write_csv(tmp_path / "bad.csv", [["col1", "other"], ["a", "x"], ["", "y"]])
    empty_values = write_csv(tmp_path / "holes.csv", [["col1", "col2"], ["a", "b"], ["c", ""], ["", ""]])
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.open_new_job("skel", "id2")
        modal = await shown(pilot, app, NewJobModal)
        await wait_for(pilot, lambda: modal.task_info is not None, what="the task pre-filled")
        modal.query_one("#file").value = str(bad)
        await wait_for(pilot, lambda: "missing mandatory column(s): col2" in screen_text(app))
        await wait_for(pilot, lambda: "other" in screen_text(app), what="the preview")  # the file as it is
        modal.query_one("#file").value = str(empty_values)
        await wait_for(pilot, lambda: "empty mandatory value(s) on line(s) 3, 4" in screen_text(app))
        await pilot.press("ctrl+n")  # create anyway: the engine rejects it, the modal says why
        await wait_for(pilot, lambda: "not created" in screen_text(app))
        assert isinstance(app.screen, NewJobModal)
        assert app.engine.count_jobs() == 0
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


async def test_the_modal_corrects_itself_as_the_operator_types(tmp_path):
    """Issue 13.10: a wrong pause is said while it is wrong, and no longer once corrected; a path
    still being typed is a hint, not an error."""
    settings = ui_settings(tmp_path)
    folder = tmp_path / "examples"
    folder.mkdir()
    write_csv(folder / "data.csv", [["col1", "col2"], ["a", "b"]])
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.open_new_job("skel", "id2")
        modal = await shown(pilot, app, NewJobModal)
        await wait_for(pilot, lambda: modal.task_info is not None, what="the task pre-filled")
        box = modal.query_one("#file")
        box.value = str(folder / "d")
        await wait_for(pilot, lambda: "1 name starts so: data.csv" in screen_text(app), what="the hint")
        assert "✖" not in str(modal.query_one("#checks").render())  # typing is not an error
        box.value = str(folder / "nothing-like-it")
        await wait_for(pilot, lambda: "nothing named" in screen_text(app), what="the other hint")
        assert "✖" not in str(modal.query_one("#checks").render())
        box.value = str(folder / "data.csv")
        await wait_for(pilot, lambda: "1 data row" in screen_text(app), what="the checks")
        pause = modal.query_one("#pause")
        pause.value = "abc"
        await wait_for(pilot, lambda: "the pause must be a whole number" in screen_text(app))
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: "not created: correct the line(s) above" in screen_text(app))
        assert app.engine.count_jobs() == 0
        pause.value = "25"
        await wait_for(pilot, lambda: "the pause must be" not in screen_text(app), what="the line to go")
        assert "not created" not in screen_text(app)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.engine.count_jobs() == 1, what="the job")
        assert app.engine.list_jobs()[0].wait_after_row_ms == 25


async def test_path_completion_and_the_file_browser(tmp_path):
    settings = ui_settings(tmp_path)
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_csv(folder / "only.csv", [["col1", "col2"], ["a", "b"]])
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.open_new_job("skel", "id2")
        modal = await shown(pilot, app, NewJobModal)
        box = modal.query_one("#file")
        box.focus()
        box.value = str(tmp_path / "in")
        box.cursor_position = len(box.value)
        await _type(pilot, "p")
        await pilot.press("tab")  # completes the folder
        assert box.value == str(folder) + "/"
        await pilot.press("tab")  # the only file in it
        assert box.value == str(folder / "only.csv")
        await wait_for(pilot, lambda: "1 data row" in screen_text(app))
        box.value = str(folder) + "/"
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: "Pick the input file" in screen_text(app))
        await pilot.press("down", "enter")  # the first entry is only.csv
        await wait_for(pilot, lambda: isinstance(app.screen, NewJobModal))
        assert box.value == str(folder / "only.csv")


async def test_completion_never_picks_one_of_several_matches(tmp_path):
    """Issue 13.4: inp + tab made the name of a script when the operator meant the inputs/ folder."""
    settings = ui_settings(tmp_path)
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inport.csv").write_text("col1,col2\na,b\n")
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.open_new_job("skel", "id2")
        modal = await shown(pilot, app, NewJobModal)
        box = modal.query_one("#file")
        box.focus()
        box.value = str(tmp_path / "in")
        box.cursor_position = len(box.value)
        await pilot.press("tab")  # what both share
        assert box.value == str(tmp_path / "inp")
        await pilot.press("tab")  # nothing more they share: say which, pick none
        assert box.value == str(tmp_path / "inp")
        await wait_for(pilot, lambda: "several names match: inport.csv, inputs/" in screen_text(app))
        assert box.has_focus


# ------------------------------------------------------------------ stop, delete, pause


async def test_stop_a_running_job(tmp_path):
    settings = ui_settings(tmp_path)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(500)])
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job("skel", "id2", input=src, wait_ms=20, start=True)
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.EXECUTING)
        await wait_for(pilot, lambda: "▶ executing" in screen_text(app))
        assert _list(app).highlighted.id == job.id
        await pilot.press("x")
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.STOPPED, what="stopped")
        stopped = app.engine.get_job(job.id)
        assert 0 < stopped.success_count < 500
        await wait_for(pilot, lambda: "■ stopped" in screen_text(app))


async def test_the_job_view_shows_stopping_and_how_long_the_row_has_run(tmp_path, plugin_dir):
    release = tmp_path / "release"
    plugin_dir.write(
        "slow.py",
        f"""
        import os, time
        from kzconsole.plugin import task

        @task("slow", "row", description="Waits until the test lets it go", mandatory=["a"])
        def row(ctx, it, row):
            deadline = time.monotonic() + 20
            while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
                time.sleep(0.01)
    """,
    )
    settings = ui_settings(tmp_path, plugin_dir.path)
    src = write_csv(tmp_path / "in.csv", [["a"], ["1"], ["2"]])
    async with running_console(settings) as (app, pilot):
        try:
            job = app.engine.add_job("slow", "row", input=src, wait_ms=0, start=True)
            await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.EXECUTING)
            app.open_job(job.id)
            await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen))
            await pilot.press("x")
            await wait_for(pilot, lambda: "STOPPING: the current row has run" in screen_text(app))
            release.touch()
            await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.STOPPED, what="stopped")
            await wait_for(pilot, lambda: "■ stopped" in screen_text(app))
        finally:
            # Before the console and its engine stop: a row still waiting would hold the
            # engine's stop and hide why the test failed.
            release.touch()


async def test_delete_asks_first(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        await pilot.press("G")  # the oldest: job 1, a success with files
        assert _list(app).highlighted.id == job_id(1)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmModal)
        assert "Delete job 00000001" in screen_text(app)
        await pilot.press("n")
        assert app.engine.get_job(job_id(1))
        await pilot.press("d")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.engine.count_jobs() == 7, what="the delete")
        assert all(app.engine.store.file_size(job_id(1), kind) is None for kind in ("input", "output", "log"))
        await wait_for(pilot, lambda: "00000001" not in screen_text(app))
        # A running job is not deleted: the key says why.
        await pilot.press("g")
        while _list(app).highlighted.status is not JobStatus.EXECUTING:
            await pilot.press("down")
        await pilot.press("d")
        assert not isinstance(app.screen, ConfirmModal)


async def test_plus_and_minus_change_the_pause(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    # 120 columns: the line under the list has room for the pause beside why the job waits.
    async with running_console(settings, start_engine=False, engine=engine, size=(120, 30)) as (app, pilot):
        await pilot.press("down")  # job 7, pending with a pause of 0
        assert _list(app).highlighted.id == job_id(7)
        await pilot.press("plus")
        assert app.engine.get_job(job_id(7)).wait_after_row_ms == 10
        await pilot.press("plus", "plus")
        assert app.engine.get_job(job_id(7)).wait_after_row_ms == 50
        await pilot.press("minus")
        assert app.engine.get_job(job_id(7)).wait_after_row_ms == 25
        await wait_for(pilot, lambda: "pause 25 ms" in screen_text(app), what="the status line")
        await pilot.press("G", "plus")  # a finished job has no pause to change: the key says why
        assert app.engine.get_job(job_id(1)).wait_after_row_ms == 0
        await wait_for(pilot, lambda: said(app, "its pause no longer matters"), what="why")


def test_pause_steps():
    assert next_pause(500, 1) == 1000 and next_pause(500, -1) == 250
    assert next_pause(0, -1) == 0 and next_pause(10000, 1) == 20000
    assert next_pause(333, 1) == 500 and next_pause(333, -1) == 250


# ------------------------------------------------------------------ filter and sort


def test_filter_parsing():
    f = parse_filter("executing skel")
    assert f.statuses == ("executing",) and f.words == ("skel",)
    f = parse_filter("status:fail,part account:" + ACCOUNT)
    assert f.statuses == ("failure", "partial") and f.account == ACCOUNT
    f = parse_filter("done")
    assert set(f.statuses) == {"success", "failure", "partial", "stopped", "internal_error"}
    f = parse_filter("task:e164 id:0000")
    assert f.task == "e164" and f.id_prefix == "0000"
    assert parse_filter("account:0123").account_part == "0123"
    assert parse_filter("stop").statuses == ("stopped",) and parse_filter("exe").statuses == ("executing",)
    assert parse_filter("st").words == ("st",)  # too short to mean a status: a piece of an id or name


async def test_filter_is_incremental_by_status_task_account_and_id(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        job_list = _list(app)
        assert job_list.total == 8
        await pilot.press("slash")
        await _type(pilot, "fail")
        await wait_for(pilot, lambda: job_list.total == 1, what="status filter")
        assert job_list.highlighted.id == job_id(3)
        box = app.screen.query_one("#filter")
        await pilot.pause()
        box.value = "task:e164"
        await wait_for(pilot, lambda: job_list.total == 1 and job_list.highlighted.id == job_id(3))
        box.value = "account:fedc"
        await wait_for(pilot, lambda: job_list.total == 1 and job_list.highlighted.id == job_id(6))
        box.value = "0000000"
        box.cursor_position = len(box.value)
        await wait_for(pilot, lambda: job_list.total == 8, what="an id piece every job has")
        await _type(pilot, "2")
        await wait_for(pilot, lambda: job_list.total == 1 and job_list.highlighted.id == job_id(2))
        await pilot.press("enter")  # back to the list, filter kept
        assert job_list.has_focus and "filter: 00000002" in screen_text(app)
        await pilot.press("escape")  # clears it
        await wait_for(pilot, lambda: job_list.total == 8)
        await pilot.press("slash")
        await _type(pilot, "run")
        await wait_for(pilot, lambda: job_list.total == 1 and job_list.highlighted.id == job_id(6))


async def test_sort_by_any_column_and_back(tmp_path):
    """Issue 13: shift + the column's letter sorts by it (k9s); again, the other way."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        job_list = _list(app)

        async def sorted_by(key: str):
            await pilot.press(key)
            await wait_for(pilot, lambda: job_list.total == 8, what=f"sort {key}")
            return [job_list.row(i) for i in range(8)]

        assert job_list.row(0).id == job_id(8)  # newest first
        rows = await sorted_by("C")  # created: again, so oldest first
        assert [j.id for j in rows] == [job_id(n) for n in range(1, 9)]
        rows = await sorted_by("S")  # status: running first
        assert rows[0].status.value == "executing"
        rows = await sorted_by("T")  # task, ascending
        assert rows[0].task_name == "numbers/e164" and rows[-1].task_name == "skel/id2"
        rows = await sorted_by("T")  # descending
        assert rows[0].task_name == "skel/id2" and rows[-1].task_name == "numbers/e164"
        rows = await sorted_by("X")  # failures, most first
        assert rows[0].id == job_id(3) and rows[1].id == job_id(2)
        rows = await sorted_by("D")  # time taken, longest first: job 6 runs (120 s) on the fake clock
        assert rows[0].id == job_id(6)
        assert "TIME▼" in screen_text(app)  # the header marks the column and the direction
        rows = await sorted_by("P")  # progress, furthest first
        assert rows[0].processed == rows[0].total_count and {j.processed for j in rows[-3:]} == {0}
        rows = await sorted_by("A")  # account ascending: OTHER_ACCOUNT (fedc...) last
        assert rows[-1].id == job_id(6)


# ------------------------------------------------------------------ job view and files


async def test_the_job_view_shows_the_log_and_the_output(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        await pilot.press("G", "enter")
        screen = await shown(pilot, app, JobDetailScreen)
        log = screen.query_one(LogTail)
        assert log.line_count == 3 and "row 7 looked odd" in screen_text(app)
        await pilot.press("t")
        table = screen.query_one(CsvTable)
        await wait_for(pilot, lambda: len(table.data) == 100)
        assert "Col1" in screen_text(app) and "a0" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("up", "enter")  # job 2: partial, 10 failed rows
        screen = await shown(pilot, app, JobDetailScreen)
        table = screen.query_one(CsvTable)
        await wait_for(pilot, lambda: len(table.data) == 100)
        await pilot.press("f")
        assert table.failed_only and table.row_count == 10
        assert "bad field(s): col2" in screen_text(app)
        assert "a3" in screen_text(app) and "a4 " not in screen_text(app)


async def test_the_log_tail_follows_lines_written_while_the_view_is_open(tmp_path):
    settings = ui_settings(tmp_path)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(30)])
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job("skel", "id2", input=src, wait_ms=0)
        app.open_job(job.id)
        screen = await shown(pilot, app, JobDetailScreen)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.job.status is JobStatus.SUCCESS, what="the job to finish")
        log = screen.query_one(LogTail)
        await wait_for(pilot, lambda: log.line_count >= 1, what="log lines")
        data, _ = app.engine.read_log(job)
        assert log.line_count == len(data.decode().splitlines())  # every line once, none twice
        await pilot.press("t")
        table = screen.query_one(CsvTable)
        await wait_for(pilot, lambda: len(table.data) == 30, what="the output")


async def test_the_output_viewer_of_a_running_job_grows_as_the_job_runs(tmp_path, plugin_dir):
    release = tmp_path / "release"
    plugin_dir.write(
        "gate.py",
        f"""
        import os, time
        from kzconsole.plugin import task

        @task("gate", "row", description="Row 3 waits until the test lets it go", mandatory=["a"])
        def row(ctx, it, row):
            deadline = time.monotonic() + 20
            while row["a"] == "3" and not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
                time.sleep(0.01)
    """,
    )
    # A checkpoint every row: rows 1 and 2 are stored before row 3 waits.
    settings = ui_settings(tmp_path, plugin_dir.path, send_progress_after_processed=1)
    src = write_csv(tmp_path / "in.csv", [["a"], ["1"], ["2"], ["3"], ["4"]])
    async with running_console(settings) as (app, pilot):
        try:
            job = app.engine.add_job("gate", "row", input=src, wait_ms=0, start=True)

            def has_output() -> bool:
                stream = app.engine.open_output(app.engine.get_job(job.id))
                if stream is not None:
                    stream.close()
                return stream is not None

            await wait_for(pilot, has_output, what="the first output")
            app.view_file(job.id, "output")
            viewer = await shown(pilot, app, CsvViewScreen)
            assert len(viewer.data) < 4 and app.engine.get_job(job.id).status is JobStatus.EXECUTING
            release.touch()
            # No key pressed: the viewer reads what the job adds (its progress and its end).
            await wait_for(pilot, lambda: len(viewer.data) == 4, what="the rest of the output")
        finally:
            # Before the console and its engine stop: row 3 still waiting would hold the engine's
            # stop and hide why the test failed.
            release.touch()


async def test_output_and_input_viewers_and_saving(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        await pilot.press("G", "o")
        viewer = await shown(pilot, app, CsvViewScreen)
        await wait_for(pilot, lambda: len(viewer.data) == 100)
        assert "100 rows" in screen_text(app)
        await pilot.press("w")
        await wait_for(pilot, lambda: "Save a copy" in screen_text(app))
        dest = tmp_path / "saved.csv"
        box = app.screen.query_one("#dest")
        box.value = str(dest)
        await pilot.press("enter")
        await wait_for(pilot, lambda: dest.exists(), what="the saved copy")
        assert dest.read_text().startswith("Col1,Col2,error\n")
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("i")
        viewer = await shown(pilot, app, CsvViewScreen)
        await wait_for(pilot, lambda: viewer.data.header == ["col1", "col2"])
        await pilot.press("q")
        await pilot.press("g", "i")  # job 8 has no input: a notification, no viewer
        assert isinstance(app.screen, JobsScreen)


# ------------------------------------------------------------------ many jobs


def _create_many(engine: Engine, n: int) -> None:
    """n finished jobs through the store's public interface (the 100,000-job figures are the
    benchmark's: bench/bench_console.py)."""
    for i in range(n):
        engine.store.create_job(
            make_job(
                i + 100,
                status=JobStatus.SUCCESS if i % 7 else JobStatus.FAILURE,
                created=1_700_000_000.0 + i,
                start_timestamp=1_700_000_000.0 + i,
                end_timestamp=1_700_000_010.0 + i,
                success_count=100 if i % 7 else 0,
                failure_count=0 if i % 7 else 100,
                action=("id2", "id1", "count")[i % 3],
            )
        )


async def test_a_long_list_pages_from_the_store_as_the_cursor_moves(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    _create_many(engine, 3000)
    async with running_console(settings, start_engine=False, engine=engine, size=(120, 40)) as (app, pilot):
        job_list = _list(app)
        assert job_list.total == 3000
        newest, oldest = job_id(3099), job_id(100)
        assert job_list.highlighted.id == newest and newest[:8] in screen_text(app)
        await pilot.press("down", "pagedown")
        assert job_list.cursor == 1 + job_list.size.height - 2
        await pilot.press("end")
        assert job_list.highlighted.id == oldest and oldest[:8] in screen_text(app)
        await pilot.press("home")
        assert job_list.cursor == 0 and newest[:8] in screen_text(app)
        assert "3,000 jobs" in screen_text(app)


ROWS = 40_000


async def _key(app, key: str, moved) -> None:
    """A key straight to the app, as a terminal sends it (Pilot.press waits for the whole process to
    go idle, which never happens while 8 jobs run flat out), then wait for its effect."""
    import asyncio

    from textual import events

    app.post_message(events.Key(key, None))
    for _ in range(5000):
        if moved():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"{key} had no effect")


async def test_the_console_keeps_up_with_8_jobs_at_full_speed(tmp_path):
    """Keys are handled while 8 jobs run flat out, and the list ends showing them all done (the
    speed figures are the benchmark's: bench/bench_console.py)."""
    settings = ui_settings(tmp_path, max_running=8)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(ROWS)])
    async with running_console(settings, size=(120, 40)) as (app, pilot):
        jobs = [app.engine.add_job("skel", "id2", input=src, wait_ms=0) for _ in range(8)]
        job_list = _list(app)
        await wait_for(pilot, lambda: job_list.total == 8)
        for job in jobs:
            app.engine.start_job(job.id)
        await wait_for(pilot, lambda: app.engine.running_count() > 0, what="the jobs to start")
        presses = 0
        while app.engine.running_count() and presses < 200:
            before = job_list.cursor
            await _key(app, "down" if before == 0 else "up", lambda before=before: job_list.cursor != before)
            presses += 1
        assert presses >= 1
        await wait_for(
            pilot,
            lambda: all(app.engine.get_job(j.id).status is JobStatus.SUCCESS for j in jobs),
            timeout=120,
            what="the jobs to finish",
        )
        await wait_for(pilot, lambda: screen_text(app).count("✔ success") == 8, what="the list to catch up")
