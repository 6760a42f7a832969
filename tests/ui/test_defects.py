"""Issue 13: each defect an operator hit, as a test that failed before the fix (the item's number
in the issue is in each test's docstring), and the features operators of k9s and Oban Web expect.
What the console sends to the terminal (13.1) is tests/ui/test_terminal.py's."""

from __future__ import annotations

import threading

import pytest
from rich.cells import cell_len

from kzconsole.engine import Engine, JobStatus
from kzconsole.engine.clock import FakeClock
from kzconsole.screens.confirm import ConfirmModal
from kzconsole.screens.csv_view import CsvViewScreen, RowModal, SaveFileModal
from kzconsole.screens.job_detail import JobDetailScreen
from kzconsole.screens.jobs import JobsScreen
from kzconsole.screens.logs import LogsScreen
from kzconsole.screens.triggers import TriggersScreen
from kzconsole.widgets.csv_table import CsvTable
from kzconsole.widgets.job_list import JobList
from kzconsole.widgets.log_tail import LogTail
from kzconsole.widgets.log_view import LogView
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

LONG_ERROR = "the number " + "+44 20 7946 0958 " * 12 + "is not valid: the end of the error is here"


def _seeded(tmp_path, **console):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    return running_console(settings, start_engine=False, engine=engine, **console)


def _slow_csv(tmp_path, rows: int = 2000):
    return write_csv(tmp_path / "slow.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(rows)])


# ---------------------------------------------------------------------------- 13.2 the indicator


async def test_the_engine_indicator_follows_the_engine_on_every_view(tmp_path):
    """13.2: after s, enter, x, q the jobs view still said "engine ● 1 running" (its top line was
    drawn while it was hidden, and never again)."""
    settings = ui_settings(tmp_path)
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job("skel", "id2", input=_slow_csv(tmp_path), wait_ms=50)
        await wait_for(pilot, lambda: app.screen.query_one(JobList).total == 1)
        await pilot.press("s")
        await wait_for(pilot, lambda: "engine ● 1 running" in screen_text(app), what="1 running")
        await pilot.press("enter")
        await shown(pilot, app, JobDetailScreen)
        await pilot.press("x")
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.STOPPED, what="stopped")
        await wait_for(pilot, lambda: "engine ● idle" in screen_text(app), what="idle on the job view")
        await pilot.press("q")
        await shown(pilot, app, JobsScreen)
        await wait_for(pilot, lambda: "engine ● idle" in screen_text(app), what="idle on the jobs view")
        assert "1 job" in screen_text(app) and "■ stopped" in screen_text(app)
        await pilot.press("q")  # nothing runs: quitting does not ask
        await wait_for(pilot, lambda: app.return_code == 0, what="the app to exit")


# ---------------------------------------------------------------------------- 13.3 errors readable


async def test_a_failed_rows_error_can_be_read_in_full(tmp_path):
    """13.3: errors were cut at ~60 characters; now the failed rows show their error first, and
    enter opens the row with every cell in full; right and $ move whole columns."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    engine.store.append_file(
        job_id(2),
        "output",
        offset=0,
        data=(
            "Col1,Col2,error\n" + "".join(f"a{i},b{i},{LONG_ERROR if i == 3 else ''}\n" for i in range(100))
        ).encode(),
    )
    async with running_console(settings, start_engine=False, engine=engine, size=(80, 24)) as (app, pilot):
        await pilot.press("G", "up", "enter")
        screen = await shown(pilot, app, JobDetailScreen)
        table = screen.query_one(CsvTable)
        await pilot.press("f")
        await wait_for(pilot, lambda: table.row_count == 1, what="the failed row")
        assert "# error" in screen_text(app)  # the error comes first
        await pilot.press("enter")
        modal = await shown(pilot, app, RowModal)
        whole = "".join(LONG_ERROR.split())
        await wait_for(
            pilot, lambda: whole in "".join(screen_text(app).replace("│", "").split()), what="the whole error"
        )
        assert "row 4" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("f")  # all rows again: the error is the last column
        await wait_for(pilot, lambda: table.row_count == 100)
        await pilot.press("$")
        assert table.hidden_columns()[1] == 0
        assert modal is not None


async def test_an_output_viewer_row_opens_in_full(tmp_path):
    async with _seeded(tmp_path, size=(80, 24)) as (app, pilot):
        await pilot.press("G", "up", "o")
        viewer = await shown(pilot, app, CsvViewScreen)
        await wait_for(pilot, lambda: len(viewer.data) == 100)
        for _ in range(3):
            await pilot.press("down")
        await pilot.press("enter")
        await shown(pilot, app, RowModal)
        assert "row 4" in screen_text(app) and "bad field(s): col2" in screen_text(app)
        await pilot.press("down")  # the next row
        await wait_for(pilot, lambda: "row 5" in screen_text(app) and "(empty)" in screen_text(app), what="row 5")


# ---------------------------------------------------------------------------- 13.4 save


async def test_saving_never_replaces_a_file_without_asking(tmp_path):
    """13.4: w overwrote an existing file without asking."""
    dest = tmp_path / "existing.csv"
    dest.write_text("precious\n")
    async with _seeded(tmp_path) as (app, pilot):
        await pilot.press("G", "o")
        await shown(pilot, app, CsvViewScreen)
        await pilot.press("w")
        modal = await shown(pilot, app, SaveFileModal)
        modal.query_one("#dest").value = str(dest)
        await pilot.press("enter")
        await shown(pilot, app, ConfirmModal)
        assert "exists" in screen_text(app) and "Replace it" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: "Not saved" in screen_text(app))
        assert dest.read_text() == "precious\n"
        await pilot.press("enter")
        await shown(pilot, app, ConfirmModal)
        await pilot.press("y")
        await wait_for(pilot, lambda: dest.read_text().startswith("Col1,Col2,error"), what="the replaced file")


# ---------------------------------------------------------------------------- 13.5 escape


async def test_one_escape_in_the_filter_box_clears_the_filter(tmp_path):
    """13.5: the first escape kept the filter (a second one cleared it)."""
    async with _seeded(tmp_path) as (app, pilot):
        job_list = app.screen.query_one(JobList)
        await pilot.press("slash", *"fail")
        await wait_for(pilot, lambda: job_list.total == 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: job_list.total == 8, what="the filter cleared")
        assert job_list.has_focus and "filter:" not in screen_text(app)


# ---------------------------------------------------------------------------- 13.6 logs


async def test_the_logs_view_shows_job_lines_wraps_and_colours_errors(tmp_path):
    """13.6: the logs view never showed job lines, did not wrap, and ERROR had no colour."""
    settings = ui_settings(tmp_path)
    async with running_console(settings, size=(80, 24)) as (app, pilot):
        job = app.engine.add_job("skel", "id2", input=write_csv(tmp_path / "in.csv", [["col1", "col2"], ["a", "b"]]))
        app.screen.query_one(JobList).reload()
        await pilot.press("s")
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.SUCCESS, what="the job")
        import logging

        logging.getLogger("kzconsole.engine").error("a long error " + "word " * 40 + "END")
        await pilot.press("5")
        screen = await shown(pilot, app, LogsScreen)
        lines = screen.shown_lines
        await wait_for(pilot, lambda: any("END" in line for line in lines()), what="the error line")
        await wait_for(pilot, lambda: any(f"job {job.id} skel/id2 started" in line for line in lines()), what="start")
        await wait_for(
            pilot, lambda: any(job.id[:8] in line and "finished: success" in line for line in lines()), what="the end"
        )
        view = screen.query_one(LogView)
        assert view.line_count > len(lines())  # the long line wrapped
        assert "END" in screen_text(app)  # its end is on screen, not cut at the edge
        error_style = view.get_component_rich_style("log-view--ERROR")
        info_style = view.get_component_rich_style("log-view--INFO")
        assert error_style.color != info_style.color


# ---------------------------------------------------------------------------- 13.7 j/k


async def test_j_and_k_move_in_every_list(tmp_path, monkeypatch):
    """13.7: in Triggers j j j then f fired minutely, not the row moved to."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    fired = []
    monkeypatch.setattr(engine, "fire_trigger", lambda name, wait=True: fired.append(name))
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        await pilot.press("3")
        screen = await shown(pilot, app, TriggersScreen)
        await wait_for(pilot, lambda: screen.selected_trigger() == "minutely", what="the schedule")
        await pilot.press("j", "j")
        assert screen.selected_trigger() == "daily"
        await pilot.press("f")
        await wait_for(pilot, lambda: fired == ["daily"])
        await pilot.press("k", "G")
        assert screen.selected_trigger() == "other"
        await pilot.press("g")
        assert screen.selected_trigger() == "minutely"
        await pilot.press("4")
        plugins = await shown(pilot, app, type(app.screen))
        await wait_for(pilot, lambda: plugins.selected_plugin() is not None)
        first = plugins.selected_plugin().source
        await pilot.press("j")
        assert plugins.selected_plugin().source != first


# ---------------------------------------------------------------------------- 13.8 and 13.9


async def test_nothing_is_cut_mid_value_at_80x24_and_the_footer_fits(tmp_path):
    """13.8 and 13.9: TIME showed "11" for "11s" (a hidden scrollbar took column 80), counts and
    STARTED were cut, the footer ended "Cm"; r, i, + and - were never shown, even at 160 columns."""
    async with _seeded(tmp_path, size=(80, 24)) as (app, pilot):
        text = screen_text(app)
        lines = text.splitlines()
        for value in ("2m00s", "1m40s", "✔55 ✖5 /200", "✔90 ✖10 /100", "50s"):
            assert value in text, value
        rows = [line for line in lines if "0000000" in line and "c0ffee" not in line]
        assert rows and not any("…" in row for row in rows)
        assert lines[-1].rstrip().endswith("? Help") and "more" in lines[-1]
        await pilot.press("G")
        await wait_for(pilot, lambda: "00000001c0ffee00c0ffee00c0ffee00" in screen_text(app), what="the full id")
    async with _seeded(tmp_path / "wide", size=(160, 40)) as (app, pilot):
        footer = screen_text(app).splitlines()[-1]
        for key in (" r Restart", " i Input", " + Slower", " - Faster", " q Quit", " ? Help"):
            assert key in footer, key


async def test_a_dimmed_key_says_why(tmp_path):
    """13.9: a dimmed key did nothing and said nothing."""
    async with _seeded(tmp_path) as (app, pilot):
        await pilot.press("G", "s")  # job 1 is finished
        await wait_for(pilot, lambda: said(app, "job 00000001", "it is finished (success)"))
        assert "it is finished (success)" in screen_text(app)  # on the message line
        await pilot.press("g", "i")  # job 8 has no input
        await wait_for(pilot, lambda: said(app, "job 00000008", "takes no input"))


# ---------------------------------------------------------------------------- 13.12 follow


GATED_PLUGIN = """
import threading
from kzconsole.plugin import task

GATE = threading.Semaphore(0)

@task("gated", "rows", description="each row waits until the test lets it through", mandatory=["col1"])
def rows(ctx, it, row):
    GATE.acquire(timeout=60)
    return None
"""


async def test_the_output_follows_a_running_job_and_the_log_says_what_it_keeps(tmp_path, plugin_dir):
    """13.12: G did not stay at the end as rows arrived; the log tab kept the last 5,000 lines
    without saying so; g did nothing there."""
    plugin_dir.write("gated.py", GATED_PLUGIN)
    # A checkpoint (the output stored) after every row: the rows let through are all readable.
    settings = ui_settings(tmp_path, plugin_dir.path, send_progress_after_processed=1)
    engine = Engine(settings)
    done = engine.add_job("skel", "id2", input=write_csv(tmp_path / "one.csv", [["col1", "col2"], ["a", "b"]]))
    engine.store.append_file(done.id, "log", "".join(f"line {n}\n" for n in range(6000)).encode())
    # The job's rows go through only when the test says: it is still running, rows still
    # arriving, whatever the machine's load.
    gate = engine.catalog.task("gated", "rows").function.__globals__["GATE"]
    try:
        async with running_console(settings, engine=engine) as (app, pilot):
            try:
                job = app.engine.add_job("gated", "rows", input=_slow_csv(tmp_path, 400), wait_ms=0, start=True)
                app.open_job(job.id)
                screen = await shown(pilot, app, JobDetailScreen)
                await pilot.press("t")
                table = screen.query_one(CsvTable)
                gate.release(10)
                await wait_for(pilot, lambda: table.row_count == 10, what="some output")
                await pilot.press("G")
                gate.release(30)
                # The rows are read in a worker thread (row_count moves there); the table takes them
                # in, and moves its cursor, in the UI thread a moment later.
                await wait_for(
                    pilot, lambda: table.row_count == 40 and table.cursor == 39, what="the cursor at the end"
                )
                assert "following (G)" in screen_text(app)
                await pilot.press("x")
                gate.release(400)
                await wait_for(pilot, lambda: app.engine.get_job(job.id).status.is_finished, what="the job stopped")
                await pilot.press("q")
                app.open_job(done.id)
                screen = await shown(pilot, app, JobDetailScreen)
                log = screen.query_one(LogTail)
                await wait_for(pilot, lambda: log.lines_read == 6000, what="the log")
                assert "the last 5,000 lines of 6,000" in screen_text(app)
                await pilot.press("g")
                await wait_for(pilot, lambda: log.scroll_offset.y == 0 and not log.following, what="the top")
                await pilot.press("G")
                await wait_for(pilot, lambda: log.following, what="following the log")
            finally:
                # Before the console and its engine stop: a job thread blocked at the gate would
                # hold the engine's stop a minute and hide why the test failed.
                gate.release(400)
    finally:
        gate.release(400)  # also when the console did not start; permits beyond the rows harm nothing


class _HeldReadsEngine(Engine):
    """An engine whose output reads wait until the test lets them go (``reads_go``)."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.read_waiting = threading.Event()
        self.reads_go = threading.Event()

    def open_output(self, job):
        if not self.reads_go.is_set():
            self.read_waiting.set()
            self.reads_go.wait(timeout=60)
        return super().open_output(job)

    def stored_rows(self, job_id: str) -> int:
        """The output rows stored so far, read past the hold."""
        stream = super().open_output(self.get_job(job_id))
        if stream is None:
            return 0
        with stream:
            return max(0, stream.read().count(b"\n") - 1)  # less the header


async def test_an_output_read_asked_while_one_runs_is_made_when_its_second_is_up(tmp_path, plugin_dir):
    """13.12 was flaky: a read asked while one ran, held back (once a second) when that one ended,
    was never made, and the output tab stopped taking rows in while the job ran. The view's clock
    stands still here, so every read that is not forced is held back."""
    plugin_dir.write("gated.py", GATED_PLUGIN)
    settings = ui_settings(tmp_path, plugin_dir.path, send_progress_after_processed=1)
    engine = _HeldReadsEngine(settings)
    gate = engine.catalog.task("gated", "rows").function.__globals__["GATE"]
    try:
        async with running_console(settings, engine=engine, clock=FakeClock()) as (app, pilot):
            try:
                job = app.engine.add_job("gated", "rows", input=_slow_csv(tmp_path, 400), wait_ms=0, start=True)
                app.open_job(job.id)
                screen = await shown(pilot, app, JobDetailScreen)
                # The view's first read waits in the engine.
                await wait_for(pilot, engine.read_waiting.is_set, what="the first read to wait")
                await pilot.press("t", "G")
                table = screen.query_one(CsvTable)
                seen = screen.job
                gate.release(2)
                # The view takes every newer record of the job, and asks for a read, on the UI
                # thread: that read is asked while the first one runs.
                await wait_for(
                    pilot,
                    lambda: screen.job is not seen and engine.stored_rows(job.id) == 2,
                    what="a read asked while the first runs",
                )
                engine.reads_go.set()
                # The first read ended (the cursor follows on the UI thread): the read asked
                # meanwhile is held back until the second is up.
                await wait_for(pilot, lambda: table.row_count == 2 and table.cursor == 1, what="the first read")
                gate.release(3)
                await wait_for(pilot, lambda: engine.stored_rows(job.id) == 5, what="5 rows stored")
                await wait_for(pilot, lambda: table.row_count == 5 and table.cursor == 4, what="every stored row shown")
                assert app.engine.get_job(job.id).status is JobStatus.EXECUTING  # no end read it
            finally:
                # Before the console and its engine stop: no job thread waits at the gate then.
                engine.reads_go.set()
                gate.release(400)
    finally:
        engine.reads_go.set()
        gate.release(400)


# ---------------------------------------------------------------------------- 13.13 messages


async def test_messages_take_one_line_and_cover_nothing(tmp_path):
    """13.13: five "stopped" toasts stacked over rows 4-24 and hid the highlighted job's id."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    for n in range(1, 6):
        engine.store.create_job(make_job(n))
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        for _ in range(5):
            await pilot.press("x", "down")
        await wait_for(pilot, lambda: sum("stopped" in m.text for m in app.message_log) == 5)
        assert not app.query("Toast")
        lines = screen_text(app).splitlines()
        assert sum("■ stopped" in line for line in lines) == 5  # every row shows
        assert sum("stopped" in line and "■" not in line and "·" not in line for line in lines) == 1  # one message
        assert all(any(job_id(n)[:8] in line for line in lines) for n in range(1, 6))


# ---------------------------------------------------------------------------- 13.14 small things


async def test_small_things(tmp_path):
    """13.14: "no jobs here" for a filter matching nothing; "output 1 rows"."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    engine.store.create_job(
        make_job(
            1,
            status=JobStatus.SUCCESS,
            output_rows=1,
            success_count=1,
            total_count=1,
            start_timestamp=1.0,
            end_timestamp=2.0,
        )
    )
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        await pilot.press("slash", *"zzzz", "enter")
        await wait_for(pilot, lambda: "the filter matched no job" in screen_text(app))
        await pilot.press("escape", "enter")
        await shown(pilot, app, JobDetailScreen)
        await wait_for(pilot, lambda: "output  1 row" in screen_text(app), what="the record")
        assert "1 rows" not in screen_text(app)


# ---------------------------------------------------------------------------- 13.15 ASCII


async def test_ascii_draws_plain_ascii(tmp_path):
    """13.15: the symbols had no fallback for a terminal that is not UTF-8."""
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    seed_jobs(engine)
    from kzconsole.app import KzConsoleApp
    from kzconsole.widgets import glyphs

    app = KzConsoleApp(settings, engine=engine, clock=engine.clock, start_engine=False, ascii=True)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            text = screen_text(app)
            assert "+ success" in text and "x failure" in text and "~ partial" in text and "> executing" in text
            assert "✔" not in text and "█" not in text  # the console's own symbols are ASCII already
            # What the terminal receives: every line in ASCII, cell for cell (the layout holds).
            sent = glyphs.to_ascii(text)
            assert sent.isascii()
            assert [len(line) for line in sent.splitlines()] == [cell_len(line) for line in text.splitlines()]
            assert app.get_driver_class().__name__ == "AsciiDriver"  # what a real terminal is written with
    finally:
        glyphs.use_ascii(False)
        engine.close()
    assert glyphs.to_ascii("╭─ ✔ ok ─╮ ░█ 日本") == "+- + ok -+ .# ????"


def test_the_locale_decides_the_default():
    from kzconsole.widgets.glyphs import locale_is_utf8

    assert locale_is_utf8({"LANG": "en_US.UTF-8"})
    assert not locale_is_utf8({"LANG": "C"})
    assert not locale_is_utf8({"LC_ALL": "C", "LANG": "en_US.UTF-8"})
    assert locale_is_utf8({"LC_ALL": "fr_FR.utf8"})
    assert not locale_is_utf8({})


# ---------------------------------------------------------------------------- bulk actions


async def test_marked_jobs_are_stopped_and_deleted_after_one_confirmation(tmp_path):
    """Bulk actions: space marks, * marks every job the filter matches; one confirmation says how many."""
    async with _seeded(tmp_path) as (app, pilot):
        screen = app.screen
        job_list = screen.query_one(JobList)
        await pilot.press("space", "space")  # jobs 8 and 7 (pending)
        assert set(screen.marked) == {job_id(8), job_id(7)} and job_list.cursor == 2
        assert "2 marked" in screen_text(app)
        await pilot.press("x")
        await shown(pilot, app, ConfirmModal)
        assert "Stop 2 marked jobs?" in screen_text(app) and "2 pending" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: said(app, "stopped 2 of 2 marked jobs"), what="the report")
        assert {app.engine.get_job(job_id(n)).status for n in (7, 8)} == {JobStatus.STOPPED}
        assert not screen.marked
        await pilot.press("slash", *"done", "enter")
        await wait_for(pilot, lambda: job_list.total == 7)  # 5 finished + the 2 just stopped
        await pilot.press("asterisk")
        await wait_for(pilot, lambda: len(screen.marked) == 7, what="all marked")
        await pilot.press("escape")  # the filter first
        await wait_for(pilot, lambda: job_list.total == 8)
        assert len(screen.marked) == 7
        await pilot.press("d")
        await shown(pilot, app, ConfirmModal)
        assert "Delete 7 marked jobs?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.engine.count_jobs() == 1, what="the deletes")
        await wait_for(pilot, lambda: said(app, "deleted 7 of 7 marked jobs"))


async def test_unmark_and_escape_clear_the_marks(tmp_path):
    async with _seeded(tmp_path) as (app, pilot):
        screen = app.screen
        await pilot.press("space", "space", "u")
        assert not screen.marked
        await pilot.press("space", "escape")
        assert not screen.marked


# ---------------------------------------------------------------------------- filters


async def test_regular_expressions_and_inverted_filters(tmp_path):
    async with _seeded(tmp_path) as (app, pilot):
        job_list = app.screen.query_one(JobList)
        box = app.screen.query_one("#filter")
        await pilot.press("slash")
        box.value = "re:numbers/e16."
        await wait_for(pilot, lambda: job_list.total == 1 and job_list.highlighted.id == job_id(3))
        box.value = "!skel"
        await wait_for(pilot, lambda: job_list.total == 1 and job_list.highlighted.id == job_id(3))
        box.value = "!done"
        await wait_for(pilot, lambda: job_list.total == 3)  # pending, queued, executing
        box.value = "/[unclosed/"
        await wait_for(pilot, lambda: said(app, "not a regular expression"), what="the error")
        assert job_list.total == 3  # the last good filter stays


# ---------------------------------------------------------------------------- history


async def test_back_and_forward_through_the_places_visited(tmp_path):
    async with _seeded(tmp_path) as (app, pilot):
        await pilot.press("enter")  # job 8
        await shown(pilot, app, JobDetailScreen)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "catalog")
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "triggers")
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: app.current_mode == "catalog")
        await pilot.press("left_square_bracket")
        screen = await shown(pilot, app, JobDetailScreen)
        assert screen.job.id == job_id(8)
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: app.current_mode == "catalog")
        await pilot.press("right_square_bracket", "right_square_bracket")
        await wait_for(pilot, lambda: said(app, "no later place"))
        assert app.current_mode == "triggers"


# ---------------------------------------------------------------------------- re-run the failed rows


async def test_F_re_runs_only_the_failed_rows_from_the_job_view_and_the_list(tmp_path, plugin_dir):
    plugin_dir.write(
        "flaky.py",
        """
        from kzconsole.plugin import task

        @task("flaky", "row", description="Fails every fourth row", mandatory=["n"])
        def row(ctx, it, row):
            if int(row["n"]) % 4 == 0:
                raise ValueError("a fourth row")
            return None
    """,
    )
    settings = ui_settings(tmp_path, plugin_dir.path)
    rows = [["n"]] + [[str(i)] for i in range(20)]
    async with running_console(settings) as (app, pilot):
        job = app.engine.add_job("flaky", "row", input=write_csv(tmp_path / "in.csv", rows), start=True)
        await wait_for(pilot, lambda: app.engine.get_job(job.id).status is JobStatus.PARTIAL, what="the job")
        assert app.engine.get_job(job.id).failure_count == 5
        app.open_job(job.id)
        await shown(pilot, app, JobDetailScreen)
        await pilot.press("F")
        await wait_for(pilot, lambda: said(app, job.id[:8], "5 failed rows re-run as job"), what="the re-run")
        again = next(j for j in app.engine.list_jobs() if j.id != job.id)
        assert again.total_count == 5 and again.task_name == "flaky/row"
        screen = await shown(pilot, app, JobDetailScreen)
        assert screen.job.id == again.id  # opened
        await pilot.press("q")
        await shown(pilot, app, JobsScreen)
        job_list = app.screen.query_one(JobList)
        await wait_for(pilot, lambda: job_list.total == 2)
        while job_list.highlighted.id != job.id:
            await pilot.press("down")
        await pilot.press("F")
        await wait_for(pilot, lambda: app.engine.count_jobs() == 3, what="the second re-run")


# ---------------------------------------------------------------------------- why is it waiting?


async def test_a_started_job_that_does_not_run_says_why(tmp_path):
    settings = ui_settings(tmp_path)
    engine = Engine(settings, clock=FakeClock())
    engine.store.create_job(make_job(1, queued_at=1.0))
    async with running_console(settings, start_engine=False, engine=engine) as (app, pilot):
        reason = app.engine.wait_reason(app.engine.get_job(job_id(1)))
        assert reason
        first = reason.split(":")[0]
        await wait_for(pilot, lambda: f"waiting: {first}" in screen_text(app), what="the list's line")
        await pilot.press("enter")
        await shown(pilot, app, JobDetailScreen)
        await wait_for(
            pilot,
            lambda: "waiting" in screen_text(app) and reason[:30] in screen_text(app),
            what="the job view's record",
        )
