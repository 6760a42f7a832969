"""The console as a whole: views and the command line, help, the command palette, q, notifications,
the embedded engine's life, and the bridge that carries engine events to the screens."""

from __future__ import annotations

import threading

import pytest

from kzconsole.bridge import EngineBridge
from kzconsole.engine import Engine, JobChanged, JobDeleted, JobLogged, JobProgressed, JobStatus, StoreChanged
from kzconsole.engine.clock import FakeClock
from kzconsole.screens.command_line import resolve
from kzconsole.screens.confirm import ConfirmModal
from kzconsole.screens.help import HelpScreen
from kzconsole.screens.job_detail import JobDetailScreen
from kzconsole.screens.jobs import JobsScreen
from kzconsole.screens.new_job import NewJobModal
from tests.conftest import write_csv
from tests.ui.conftest import (
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


async def test_number_keys_and_the_command_line_switch_views(tmp_path):
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, pilot):
        assert app.current_mode == "jobs" and isinstance(app.screen, JobsScreen)
        for key, mode in (("2", "catalog"), ("3", "triggers"), ("4", "plugins"), ("5", "logs"), ("1", "jobs")):
            await pilot.press(key)
            await wait_for(pilot, lambda mode=mode: app.current_mode == mode and app.screen.is_mounted)
        for command, mode in (("cat", "catalog"), ("jobs", "jobs")):
            await pilot.press("colon")
            await wait_for(pilot, lambda: app.screen.query("#command"))
            app.screen.query_one("#command").value = command
            await pilot.press("enter")
            await wait_for(pilot, lambda mode=mode: app.current_mode == mode, what=f":{command}")
        await pilot.press("colon")
        await wait_for(pilot, lambda: app.screen.query("#command"))
        app.screen.query_one("#command").value = "bogus"
        await pilot.press("enter")
        await wait_for(pilot, lambda: said(app, "unknown command :bogus"))
        assert "unknown command :bogus" in screen_text(app)  # on the message line


def test_command_resolution():
    assert resolve(":jobs") == ("jobs", "")
    assert resolve("cat") == ("catalog", "")
    assert resolve("job 0123abcd") == ("job", "0123abcd")
    assert resolve("q") == ("quit", "")
    assert resolve("tri") == ("triggers", "")
    assert resolve("new skel/id2") == ("new", "skel/id2")
    assert resolve("zzz")[0] is None


async def test_q_goes_back_then_to_jobs_then_quits(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        await pilot.press("enter")
        await shown(pilot, app, JobDetailScreen)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "catalog")
        await pilot.press("1")  # the job stays open in the jobs view
        await shown(pilot, app, JobDetailScreen)
        await pilot.press("q")
        await shown(pilot, app, JobsScreen)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "triggers")
        await pilot.press("q")
        await wait_for(pilot, lambda: app.current_mode == "jobs")
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code == 0, what="the app to exit")


async def test_quitting_with_running_jobs_asks_first(tmp_path):
    settings = ui_settings(tmp_path)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(200)])
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job("skel", "id2", input=src, wait_ms=50, start=True)
        await wait_for(pilot, lambda: app.engine.running_count() == 1)
        await pilot.press("q")
        await shown(pilot, app, ConfirmModal)
        assert "1 job is running" in screen_text(app)
        await pilot.press("n")
        assert app.return_code is None
        await pilot.press("ctrl+c")
        await shown(pilot, app, ConfirmModal)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code == 0)
    # run_console's part: the engine stopped after the app; the job waits to be resumed.
    assert engine_status(app, job.id) is JobStatus.EXECUTING


def engine_status(app, job_id_: str) -> JobStatus:
    engine = Engine(app.settings)
    try:
        return engine.get_job(job_id_).status
    finally:
        engine.close()


async def test_help_lists_the_keys_of_the_current_view(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine, size=(100, 50)) as (app, pilot):
        await pilot.press("question_mark")
        help_screen = await shown(pilot, app, HelpScreen)
        assert "Keys: Jobs" in screen_text(app) and "start a pending job" in screen_text(app)
        listed = "\n".join(f"{keys}  {text}" for _where, keys, text in help_screen.rows)
        for words in (
            "start a pending job",
            "stop:",
            "delete the job",
            "longer pause",
            "filter:",
            "sort by status",
            "sort by rate",
            "quit the console",
            "mark or unmark",
            "failed rows only",
            "[  back to the previous place",
            "]  forward again",
        ):
            assert words in listed, words
        assert [keys for _w, keys, _t in help_screen.rows].count(":") == 1  # ":" once, not twice
        await pilot.press("escape")
        await pilot.press("enter")
        await shown(pilot, app, JobDetailScreen)
        await pilot.press("question_mark")
        await shown(pilot, app, HelpScreen)
        assert "only the failed rows" in screen_text(app) and "Keys: Job" in screen_text(app)


async def test_the_command_palette_offers_the_views_and_the_keys_of_the_view(tmp_path):
    from textual.command import CommandPalette

    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    async with running_console(settings, start_engine=False, engine=engine, size=(100, 40)) as (app, pilot):
        await pilot.press("ctrl+p")
        await shown(pilot, app, CommandPalette)
        await pilot.press(*"new job")
        await wait_for(pilot, lambda: "Job: new job" in screen_text(app), what="the palette's hit")
        await pilot.press("enter")
        await shown(pilot, app, NewJobModal)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await shown(pilot, app, CommandPalette)
        await pilot.press(*"sort by task")
        await wait_for(pilot, lambda: "Jobs: Sort by task" in screen_text(app))
        assert "Focus Next" not in screen_text(app)  # Textual's own keys are not listed
        await pilot.press("enter")
        await shown(pilot, app, JobsScreen)
        await wait_for(pilot, lambda: app.screen.sort.column == "task")


async def test_catalog_n_opens_the_new_job_modal_pre_filled(tmp_path):
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, pilot):
        app.open_new_job("skel", "id1")
        modal = await shown(pilot, app, NewJobModal)
        await wait_for(pilot, lambda: modal.task_info is not None and modal.task_info.name == "skel/id1")
        assert "optional: col1" in screen_text(app)


async def test_a_finished_job_is_notified_once(tmp_path):
    settings = ui_settings(tmp_path)
    src = write_csv(tmp_path / "in.csv", [["col1", "col2"], ["a", "b"], ["c", ""]])
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job(
            "skel", "id2", input=write_csv(tmp_path / "ok.csv", [["col1", "col2"], ["a", "b"]]), wait_ms=0, start=True
        )
        await wait_for(pilot, lambda: said(app, job.id[:8], "finished"))
        await wait_for(pilot, lambda: app.engine.running_count() == 0)
        await pilot.pause()
        finished = [m for m in app.message_log if job.id[:8] in m.text and "finished" in m.text]
        assert len(finished) == 1 and "success" in finished[0].text and finished[0].severity == "information"
        assert src.exists()


async def test_the_engine_runs_in_the_console_and_the_view_bar_says_so(tmp_path):
    settings = ui_settings(tmp_path)
    async with running_console(settings) as (app, pilot):
        assert app.engine_running
        await wait_for(pilot, lambda: "engine ● idle" in screen_text(app))
        # Started in a plain thread, never in a Textual worker (they would keep app.run() alive).
        assert not any(w for w in app.workers if "start" in (w.name or ""))


async def test_engine_off_says_so(tmp_path):
    settings = ui_settings(tmp_path)
    async with running_console(settings, start_engine=False) as (app, _pilot):
        assert "engine off" in screen_text(app)


# ------------------------------------------------------------------ the bridge


def test_the_bridge_keeps_the_latest_state_per_job_and_drains_once(tmp_path):
    engine = Engine(ui_settings(tmp_path), clock=FakeClock())
    bridge = EngineBridge(engine)
    bridge.attach()
    try:
        assert bridge.drain() is None
        running = make_job(1, status=JobStatus.EXECUTING)

        def emit_many() -> None:
            for n in range(1000):
                engine.events.emit(JobProgressed(running.id, n, 0, n, 1000, n, 50.0, 0))
                engine.events.emit(JobLogged(running.id, f"line {n}"))
                engine.events.emit(StoreChanged())

        threads = [threading.Thread(target=emit_many) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        batch = bridge.drain()
        assert batch is not None and batch.store_changed
        assert list(batch.progress) == [running.id] and batch.progress[running.id].rows_done == 999
        assert batch.logged == {running.id}
        assert bridge.drain() is None  # drained
        assert bridge.live_progress(running.id).rows_done == 999  # kept for screens shown later
        done = running.replace(status=JobStatus.SUCCESS)
        engine.events.emit(JobChanged(done))
        engine.events.emit(JobChanged(done))  # a second event for the same end is not a new finish
        batch = bridge.drain()
        assert batch.finished == (done,) and bridge.live_progress(running.id) is None
        engine.events.emit(JobDeleted(job_id(2)))
        assert bridge.drain().deleted == {job_id(2)}
    finally:
        bridge.detach()
        engine.close()
    engine.events.emit(StoreChanged())
    assert bridge.drain() is None  # detached: nothing recorded


async def test_a_plugin_with_a_syntax_error_shows_its_traceback_in_the_console(tmp_path, plugin_dir):
    plugin_dir.write("broken.py", "from kzconsole.plugin import task\ndef oops(:\n    pass\n")
    settings = ui_settings(tmp_path, plugin_dir.path)
    async with running_console(settings, size=(100, 40)) as (app, pilot):
        await pilot.press("4")
        await wait_for(pilot, lambda: "SyntaxError" in screen_text(app), what="the traceback")
        text = screen_text(app)
        assert "broken.py" in text and "FAILED" in text and "def oops(:" in text
