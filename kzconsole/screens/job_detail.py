"""The job view: the record, live progress (throughput, ETA, the stop state), the log tail, and the
output so far as a table with a failed-rows-only toggle."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from kzconsole.engine import EngineError, JobNotFound, JobRecord, JobStatus
from kzconsole.messages import EngineUpdated
from kzconsole.widgets import fmt
from kzconsole.widgets.csv_table import CsvData, CsvTable
from kzconsole.widgets.log_tail import LogTail
from kzconsole.widgets.progress import JobProgress
from kzconsole.widgets.view_bar import ViewBar


class JobDetailScreen(Screen):
    VIEW_NAME = "Job"

    DEFAULT_CSS = """
    JobDetailScreen #record { height: auto; max-height: 8; padding: 0 1; }
    JobDetailScreen JobProgress { margin-bottom: 0; }
    JobDetailScreen TabbedContent { height: 1fr; }
    JobDetailScreen TabPane { padding: 0; }
    """

    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("l", "show_tab('log')", "Log", tooltip="the log tail: ctx.log lines, prints, the engine's lines"),
        Binding("t", "show_tab('output')", "Table", tooltip="the output so far, as a table"),
        Binding("f", "failed_only", "Failed only", tooltip="only the failed rows and their error (toggle)"),
        Binding("s", "start", "Start", tooltip="start the job if it is pending"),
        Binding("x", "stop", "Stop", tooltip="stop: a pending job at once, a running one before its next row"),
        Binding("r", "restart", "Restart", show=False, tooltip="a new job with the same task and input, queued; opens it"),
        Binding("d", "delete", "Delete", tooltip="delete the job and its files (asks first)"),
        Binding("plus", "pause(1)", "Longer pause", key_display="+", show=False, tooltip="longer pause after each row"),
        Binding("minus", "pause(-1)", "Shorter pause", key_display="-", show=False, tooltip="shorter pause after each row"),
        Binding("o", "output", "Output", show=False),
        Binding("i", "input", "Input", show=False, tooltip="view the stored input"),
        Binding("w", "save", "Save", tooltip="save a copy of the output to a file"),
    ]

    def __init__(self, job: JobRecord) -> None:
        super().__init__()
        self.job = job
        self.output = CsvData(None)
        self._reading = False
        self._seen_output_rows = -1
        self._record_key: Any = None
        self._binding_state: Any = None

    @property
    def engine(self) -> Any:
        return self.app.engine

    def compose(self) -> ComposeResult:
        yield ViewBar("jobs", detail=f"› job {self.job.id[:8]}")
        yield Static(id="record")
        yield JobProgress()
        with TabbedContent(initial="log"):
            with TabPane("Log (l)", id="log"):
                yield LogTail(self.engine.log_path(self.job), id="log-tail")
            with TabPane("Output (t)", id="output"):
                yield CsvTable(self.output, empty_note="no output yet", id="output-table")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._show()
        self.query_one(LogTail).poll()
        self._read_output()
        self.set_interval(1.0, self._tick)

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self._refresh_record()

    # --------------------------------------------------------------- state

    def _refresh_record(self) -> None:
        try:
            self.job = self.engine.get_job(self.job.id)
        except JobNotFound:
            self.notify(f"Job {self.job.id[:8]} no longer exists", severity="warning")
            self.app.action_back()
            return
        self._show()

    def _show(self) -> None:
        job = self.job
        live = self.app.bridge.live_progress(job.id) if job.status is JobStatus.EXECUTING else None
        now = self.app.clock.time()
        row_seconds = self.app.bridge.row_seconds(job.id) if job.stop_requested else None
        self.query_one(JobProgress).show(job, live, now, row_seconds)
        # The record changes a few times in a job's life, progress many times a second: repaint
        # the record, and rebuild the footer's keys, only when they changed.
        record_key = (job, int(now) if job.status is JobStatus.EXECUTING else None)
        if record_key != self._record_key:
            self._record_key = record_key
            self.query_one("#record", Static).update(self._record_table(job))
        state = (job.status, job.queued_at is None, job.stop_requested)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def _record_table(self, job: JobRecord) -> Table:
        now = self.app.clock.time()
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
        table.add_row("node", job.node or "-", "output", f"{job.output_rows:,} rows")
        if job.error:
            table.add_row("note", Text(job.error, style="bold"), "", "")
        return table

    def on_engine_updated(self, message: EngineUpdated) -> None:
        batch = message.batch
        job_id = self.job.id
        if job_id in batch.deleted:
            self.notify(f"Job {job_id[:8]} was deleted", severity="warning")
            self.app.action_back()
            return
        if job_id in batch.changed:
            self.job = batch.changed[job_id]
            self._show()
            self._read_output()
        elif batch.store_changed and not self.job.status.is_finished:
            self._refresh_record()
        elif job_id in batch.progress:
            self._show()
            live = batch.progress[job_id]
            if live.output_rows != self._seen_output_rows:
                self._seen_output_rows = live.output_rows
                self._read_output()
        if job_id in batch.logged:
            self.query_one(LogTail).poll()

    def _tick(self) -> None:
        # A job run by another process sends no events here: read its files and record every second.
        log = self.query_one(LogTail)
        log.poll()
        if not self.job.status.is_finished:
            self._refresh_record()
            self._read_output()

    @work(thread=True, exclusive=True, group="job-output")
    def _read_output_worker(self, data: CsvData) -> None:
        added = data.read_more()
        self.app.call_from_thread(self._output_read, data, added)

    def _read_output(self) -> None:
        if self._reading:
            return
        path = self.engine.output_path(self.job)
        if path is None:
            return
        if self.output.path != path:
            self.output = CsvData(path)
            self.query_one(CsvTable).set_data(self.output)
        self._reading = True
        self._read_output_worker(self.output)

    def _output_read(self, data: CsvData, added: bool) -> None:
        self._reading = False
        if added and data is self.output:
            self.query_one(CsvTable).appended()

    # ------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        status = self.job.status
        if action == "start":
            return True if status is JobStatus.PENDING and self.job.queued_at is None else None
        if action == "stop":
            return True if not status.is_finished and not self.job.stop_requested else None
        if action == "delete":
            return True if status is not JobStatus.EXECUTING else None
        if action == "pause":
            return True if not status.is_finished else None
        if action == "input":
            return True if self.job.input_path else None
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = self.query_one(LogTail) if tab == "log" else self.query_one(CsvTable)
        target.focus()

    def action_failed_only(self) -> None:
        table = self.query_one(CsvTable)
        table.failed_only = not table.failed_only
        self.action_show_tab("output")
        tab = self.query_one(TabbedContent).get_tab("output")
        tab.label = "Output (t) · failed only (f)" if table.failed_only else "Output (t)"

    def action_start(self) -> None:
        try:
            self.job = self.engine.start_job(self.job.id)
        except EngineError as exc:
            self.notify(str(exc), title="Cannot start", severity="error")
        self._show()

    def action_stop(self) -> None:
        try:
            self.job = self.engine.stop_job(self.job.id)
        except EngineError as exc:
            self.notify(str(exc), title="Cannot stop", severity="error")
        self._show()

    def action_restart(self) -> None:
        self.app.restart_job(self.job.id, open_it=True)

    def action_delete(self) -> None:
        self.app.delete_job(self.job)

    def action_pause(self, step: int) -> None:
        updated = self.app.change_pause(self.job.id, step)
        if updated is not None:
            self.job = updated
        self._show()

    def action_output(self) -> None:
        self.action_show_tab("output")

    def action_input(self) -> None:
        self.app.view_input(self.job.id)

    def action_save(self) -> None:
        self.app.save_output(self.job.id)


_STATUS_STYLE = {
    "executing": "bold", "stopping": "bold", "success": "green", "failure": "bold red", "partial": "yellow",
    "stopped": "yellow", "internal_error": "bold red reverse", "queued": "cyan",
}
