"""The job view: the record, live progress (throughput, ETA, the stop state), the log tail, and the
output so far as a table with a failed-rows-only toggle.

It follows the job from engine events (its own record changes, progress, log lines, another
process's writes); once a second it redraws the times that move (elapsed, rate) and, for a job
another process runs that sends no events here, reads the record again. A finished job's view
sends nothing to the terminal. Every part repaints only the cells that changed.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import TabbedContent, TabPane

from kzconsole.engine import JobNotFound, JobRecord, JobStatus
from kzconsole.messages import EngineUpdated
from kzconsole.screens.base import ConsoleScreen, Place
from kzconsole.screens.csv_view import RowModal, file_opener
from kzconsole.screens.job_actions import PAUSE_BINDINGS, job_action_bindings, why_not
from kzconsole.widgets import fmt, glyphs
from kzconsole.widgets.csv_table import CsvData, CsvTable
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.log_tail import LogTail
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.progress import JobProgress
from kzconsole.widgets.view_bar import ViewBar

TICK_SECONDS = 1.0
OUTPUT_EVERY_S = 1.0  # a running job's output is read at most this often while its tab shows

JOB_ACTIONS = {"start", "stop", "restart", "restart_failed", "delete", "pause", "input", "output", "save"}

_STATUS_STYLE = {
    "executing": "bold",
    "stopping": "bold",
    "success": "green",
    "failure": "bold red",
    "partial": "yellow",
    "stopped": "yellow",
    "internal_error": "bold red reverse",
    "queued": "cyan",
}


class OutputTable(CsvTable, inherit_bindings=False):
    """The output tab's table: ``l`` is the view's key for the log tab (the tabs say "Log (l)"),
    so here only ``right`` moves a column right."""

    BINDINGS = [
        Binding("right", "column(1)", b.description, show=False, tooltip=b.tooltip)
        if isinstance(b, Binding) and b.action == "column(1)"
        else b
        for b in CsvTable.BINDINGS
    ]


class JobDetailScreen(ConsoleScreen):
    VIEW_NAME = "Job"

    DEFAULT_CSS = """
    JobDetailScreen #record { height: auto; max-height: 9; padding: 0 1; }
    JobDetailScreen TabbedContent { height: 1fr; }
    JobDetailScreen TabPane { padding: 0; }
    """

    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("l", "show_tab('log')", "Log", tooltip="the log tail: ctx.log lines, prints, the engine's lines"),
        Binding("t", "show_tab('output')", "Table", tooltip="the output so far, as a table (enter: a row in full)"),
        Binding("f", "failed_only", "Failed only", tooltip="only the failed rows and their error (toggle)"),
        *job_action_bindings(many=False),
        Binding("w", "save", "Save", tooltip="save a copy of the output to a file"),
        Binding("i", "input", "Input", tooltip="view the stored input"),
        Binding("o", "output", "Output", show=False, tooltip="the output tab"),
        *PAUSE_BINDINGS,
    ]

    def __init__(self, job: JobRecord) -> None:
        super().__init__()
        self.job = job
        self.output = CsvData(None)
        self._reading = False
        self._read_again = False
        self._read_timer: Timer | None = None  # a held-back read's, until it is made
        self._last_output_read = -1e9
        self._seen_output_rows = -1
        self._binding_state: Any = None
        self._wait_reason: str | None = None

    def place(self) -> Place:
        return ("job", self.job.id)

    def compose(self) -> ComposeResult:
        engine = self.engine
        job_id = self.job.id
        self.output = CsvData(file_opener(engine, job_id, "output"))
        yield ViewBar("jobs", detail=f"{glyphs.G.arrow} job {job_id[:8]}")
        yield Lines(id="record")
        yield JobProgress()
        with TabbedContent(initial="log"):
            with TabPane("Log (l)", id="log"):
                yield LogTail(lambda start: engine.read_log(self.job, start), id="log-tail")
            with TabPane("Output (t)", id="output"):
                yield OutputTable(self.output, empty_note="no output yet", id="output-table")
        yield MessageLine()
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.query_one(CsvTable), "follow", lambda _follow: self._label_tabs(), init=False)
        self.query_one(LogTail).focus()  # the log tab shows first: its keys (g, G, scrolling) work at once
        self._refresh_wait()
        self._show()
        self._poll_log()
        self._read_output(force=True)
        self.set_interval(TICK_SECONDS, self._tick)

    def on_unmount(self) -> None:
        self.output.close()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self._refresh_record()
            self._poll_log()
            self._read_output(force=True)

    # --------------------------------------------------------------- state

    def _refresh_record(self) -> None:
        try:
            self.job = self.engine.get_job(self.job.id)
        except JobNotFound:
            self.notify(f"job {self.job.id[:8]} no longer exists", severity="warning")
            self.app.pop_screen()
            return
        self._show()

    def _refresh_wait(self) -> None:
        """Why a started job has not run yet (every slot taken, no engine, its task nowhere)."""
        job = self.job
        reason = None
        if fmt.display_status(job) == "queued":
            try:
                reason = self.engine.wait_reason(job)
            except Exception:  # noqa: BLE001 - a store error must not break the view
                reason = None
        self._wait_reason = reason

    def _show(self) -> None:
        job = self.job
        if self._wait_reason is not None and fmt.display_status(job) != "queued":
            self._wait_reason = None  # it runs (or ended): why it waited is over
        bridge = self.console.bridge
        live = bridge.live_progress(job.id) if job.status is JobStatus.EXECUTING else None
        now = self.app.clock.time()
        row_seconds = self.engine.row_seconds(job.id) if job.stop_requested else None
        self.query_one(JobProgress).show(job, live, now, row_seconds)
        self.query_one("#record", Lines).update(self._record_table(job, now))
        state = (job.status, job.queued_at is None, job.stop_requested, job.failure_count > 0)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def _record_table(self, job: JobRecord, now: float) -> Table:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=3, no_wrap=True, overflow="ellipsis", min_width=32)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=2, no_wrap=True, overflow="ellipsis")
        state = fmt.display_status(job)
        status = Text(fmt.status_label(state), style=_STATUS_STYLE.get(state, ""))
        table.add_row("id", job.id, "status", status)
        table.add_row("task", job.task_name, "file", job.file_name or "(no input)")
        auth = "(same)" if job.auth_account_id == job.account_id else job.auth_account_id
        table.add_row("account", job.account_id, "auth", auth)
        table.add_row("created", fmt.full_time(job.created), "started", fmt.full_time(job.start_timestamp))
        ended = fmt.full_time(job.end_timestamp)
        table.add_row("ended", ended, "time", fmt.duration(fmt.job_elapsed(job, now)))
        table.add_row("node", job.node or "-", "output", fmt.plural(job.output_rows, "row"))
        if self._wait_reason:
            table.add_row("waiting", Text(self._wait_reason, style="bold"), "", "")
        if job.error:
            table.add_row("note", Text(job.error, style="bold"), "", "")
        return table

    def on_engine_updated(self, message: EngineUpdated) -> None:
        batch = message.batch
        job_id = self.job.id
        if job_id in batch.deleted:
            self.notify(f"job {job_id[:8]} was deleted", severity="warning")
            self.app.pop_screen()
            return
        if job_id in batch.changed:
            self.job = batch.changed[job_id]
            self._show()
            self._read_output()
        elif batch.store_touched(job_id) and (not self.job.status.is_finished or "deleted" in batch.store_kinds):
            # A finished job changes no more, but another process may remove it: then the view closes.
            self._refresh_record()
            self._read_output()
        elif job_id in batch.progress:
            self._show()
            live = batch.progress[job_id]
            if live.output_rows != self._seen_output_rows:
                self._seen_output_rows = live.output_rows
                self._read_output()
        if job_id in batch.logged or batch.store_touched(job_id):
            self._poll_log()

    def _tick(self) -> None:
        if not self.shown or self.job.status.is_finished:
            return  # a finished job's view has nothing that moves
        if not self.console.bridge.live_progress(self.job.id):
            # Run by another process (or not started): no progress events come here.
            self._refresh_wait()
            self._refresh_record()
            self._poll_log()
            self._read_output()
        else:
            self._show()  # the elapsed time and the rate move every second

    # ------------------------------------------------------------------ log

    def _poll_log(self) -> None:
        log = self.query_one(LogTail)
        if log.poll() and log.dropped:
            self._label_tabs()

    def _label_tabs(self) -> None:
        tabs = self.query_one(TabbedContent)
        log = self.query_one(LogTail)
        label = "Log (l)"
        if log.dropped:
            label += f" {glyphs.G.arrow} the last {fmt.plural(log.keep, 'line')} of {log.lines_read:,}"
        tabs.get_tab("log").label = label
        table = self.query_one(CsvTable)
        out = "Output (t)"
        if table.failed_only:
            out += f" {glyphs.G.arrow} failed rows only (f)"
        if table.follow and not self.job.status.is_finished:
            out += f" {glyphs.G.arrow} following (G)"
        tabs.get_tab("output").label = out

    # --------------------------------------------------------------- output

    def _output_shown(self) -> bool:
        return self.query_one(TabbedContent).active == "output"

    def _read_output(self, force: bool = False, *, due: bool = False) -> None:
        """Read what the output gained, when its tab shows (at most once a second while it runs).
        ``due``: a held-back read whose second is up (its timer said so)."""
        if not force and (not self._output_shown() or not self.shown):
            return
        if self._reading:
            self._read_again = True
            return
        now = self.app.clock.monotonic()
        wait = OUTPUT_EVERY_S - (now - self._last_output_read)
        if not (force or due) and wait > 0 and not self.job.status.is_finished:
            # Held back: one timer makes the read for every ask until then. It is kept apart from
            # _read_again, which is set when a read asked during another lands here as that one
            # ends (a flag for both left no timer then, and the read was never made).
            if self._read_timer is None:
                self._read_timer = self.set_timer(wait, self._read_due)
            return
        if self._read_timer is not None:
            self._read_timer.stop()  # this read takes in what the held-back asks wanted
            self._read_timer = None
        self._read_again = False
        self._last_output_read = now
        self._reading = True
        data = self.output
        self.run_worker(lambda: self._read_worker(data), thread=True, group="job-output")

    def _read_due(self) -> None:
        self._read_timer = None
        self._read_output(due=True)

    def _read_worker(self, data: CsvData) -> None:
        added = data.read_more()
        self.app.call_from_thread(self._output_read, data, added)

    def _output_read(self, data: CsvData, added: bool) -> None:
        self._reading = False
        if added and data is self.output:
            self.query_one(CsvTable).appended()
        if self._read_again:
            self._read_output()

    def on_csv_table_row_opened(self, message: CsvTable.RowOpened) -> None:
        self.app.push_screen(RowModal(message.table, message.position, title=f"output of job {self.job.id[:8]}"))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "output":
            self._read_output(force=True)

    # ------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in JOB_ACTIONS:
            return True
        return None if self.why_disabled(action, parameters) else True

    def why_disabled(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if action in ("save", "output"):
            return None
        reason = why_not(action, self.job)
        return None if reason is None else f"job {self.job.id[:8]}: {reason}"

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = self.query_one(LogTail) if tab == "log" else self.query_one(CsvTable)
        target.focus()
        self._label_tabs()

    def action_failed_only(self) -> None:
        table = self.query_one(CsvTable)
        table.failed_only = not table.failed_only
        self.action_show_tab("output")
        self._label_tabs()

    def action_start(self) -> None:
        updated = self.console.start_one(self.job)
        if updated is not None:
            self.job = updated
            self._show()

    def action_stop(self) -> None:
        updated = self.console.stop_one(self.job)
        if updated is not None:
            self.job = updated
            self._show()

    def action_restart(self) -> None:
        self.console.restart_job(self.job.id, open_it=True)

    def action_restart_failed(self) -> None:
        self.console.restart_job(self.job.id, open_it=True, failed_only=True)

    def action_delete(self) -> None:
        self.console.delete_job(self.job)

    def action_pause(self, step: int) -> None:
        updated = self.console.change_pause(self.job.id, step)
        if updated is not None:
            self.job = updated
        self._show()

    def action_output(self) -> None:
        self.action_show_tab("output")

    def action_input(self) -> None:
        self.console.view_file(self.job.id, "input")

    def action_save(self) -> None:
        self.console.save_output(self.job.id)
