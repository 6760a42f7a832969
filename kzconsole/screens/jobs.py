"""The jobs view (``1``, the first screen): every job, newest first, live.

The list pages from the store (see :mod:`kzconsole.widgets.job_list`); what it lists is the filter
and the sort in force, as one store query (:mod:`kzconsole.screens.job_sources`): the store filters
and sorts 100,000 jobs with its indexes, and the list reads only the rows on screen.

Jobs can be marked (``space``; ``*`` marks every job the filter matches): start, stop, restart and
delete then act on the marked jobs, after one confirmation that says how many.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Input

from kzconsole.engine import JobRecord, JobStatus
from kzconsole.messages import EngineUpdated
from kzconsole.screens.base import ConsoleScreen
from kzconsole.screens.job_actions import PAUSE_BINDINGS, job_action_bindings, why_not
from kzconsole.screens.job_sources import SORT_COLUMNS, FilterError, JobFilter, QuerySource, Sort, parse_filter
from kzconsole.widgets import fmt, glyphs
from kzconsole.widgets.job_list import COLUMNS, JobList, JobSource
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.keys import box_key
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.view_bar import ViewBar

RELOAD_EVERY_S = 0.3  # at most this often a live list re-reads the store
# When only another process wrote (mostly running jobs' checkpoints, at most one a second each),
# re-read this seldom: stored counts move no faster, and jobs run here are shown live by the bridge.
RELOAD_QUIET_S = 1.0
MARK_PAGE = 5000

JOB_ACTIONS = {"open", "start", "stop", "restart", "restart_failed", "delete", "output", "input", "pause"}
BULK_ACTIONS = {"start", "stop", "restart", "restart_failed", "delete"}


def _sort_bindings() -> list[Binding]:
    out = []
    for col in COLUMNS:
        spec = SORT_COLUMNS[col.key]
        out.append(
            Binding(
                col.sort_key,
                f"sort('{col.key}')",
                "Sort" if col.key == "status" else f"Sort by {spec.label}",
                show=col.key == "status",
                tooltip=f"sort by {spec.label}; again: the other way"
                + (" (shift + the column's letter: I S T P X D R C A N)" if col.key == "status" else ""),
            )
        )
    return out


class JobsScreen(ConsoleScreen):
    VIEW_NAME = "Jobs"
    MODE = "jobs"

    DEFAULT_CSS = """
    JobsScreen #filter { display: none; background: $panel; }
    JobsScreen #filter.-shown { display: block; }
    JobsScreen #filter.-error { color: $error; }
    JobsScreen #status { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    """

    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="open the job view: record, live progress, log, output"),
        Binding("n", "new", "New", tooltip="create a job: task, input file, checks, accounts, pause"),
        *job_action_bindings(many=True),
        Binding("space", "mark", "Mark", tooltip="mark or unmark the highlighted job for start, stop, restart, delete"),
        Binding(
            "asterisk",
            "mark_all",
            "Mark all",
            key_display="*",
            tooltip="mark every job the filter matches (again: unmark them)",
        ),
        Binding("u", "unmark", "Unmark", show=False, tooltip="unmark every job"),
        Binding("o", "output", "Output", tooltip="view the output (so far) as a table; w saves it"),
        Binding("i", "input", "Input", tooltip="view the stored input as a table"),
        box_key(
            "filter", "Filter", "filter: a status, task:, account:, id:, file:, /regex/, any text; ! first inverts"
        ),
        *_sort_bindings(),
        *PAUSE_BINDINGS,
        Binding("escape", "clear", "Clear filter", show=False, tooltip="clear the filter; then the marks"),
        Binding("q", "app.back", "Quit", tooltip="quit the console (asks first while jobs run here)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = JobFilter()
        self.sort = Sort()
        self.marked: dict[str, str] = {}  # job id -> its status when marked (for the question)
        self._last_reload = 0.0
        self._reload_timer: Timer | None = None
        self._reload_due = 0.0
        self._filter_timer: Timer | None = None
        self._binding_state: tuple[Any, ...] | None = None
        self._marking = False
        self._wait: tuple[str, str | None] | None = None  # (job id, why the highlighted job waits)

    # ------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield ViewBar("jobs")
        yield Input(
            placeholder="filter: a status (failed, done...), task:, account:, id:, file:, /regex/, text; ! first: the others",
            id="filter",
            compact=True,
        )
        job_list = JobList(
            self._make_source(),
            now=self.app.clock.time,
            live=self.console.bridge.live_progress,
            marked=self.marked.__contains__,
            id="jobs",
        )
        job_list.set_sort(self.sort.column, self.sort.descending)
        yield job_list
        yield Lines("", id="status")
        yield MessageLine()
        yield KeyBar()

    @property
    def job_list(self) -> JobList:
        return self.query_one(JobList)

    def on_mount(self) -> None:
        self.job_list.reload()
        self.job_list.focus()
        self._update_status()
        self.set_interval(1.0, self._tick_running)

    def on_screen_resume(self) -> None:
        # A hidden screen missed events: read the state again instead of replaying them.
        if self.is_mounted:
            self._reload(force=True)

    # -------------------------------------------------------------- data

    def _make_source(self) -> JobSource:
        # Durations and rates of running jobs are measured to one moment, so pages stay in order.
        return QuerySource(self.engine, self.filter.query(self.sort, now=self.app.clock.time()))

    def _apply_query(self) -> None:
        job_list = self.job_list
        job_list.empty_note = None if self.filter.empty else "  the filter matched no job (escape clears it)"
        job_list.set_sort(self.sort.column, self.sort.descending)
        job_list.set_source(self._make_source())
        self._update_status()

    def _reload(self, force: bool = False, *, quiet: bool = False) -> None:
        """Re-read the list, at most every RELOAD_EVERY_S (events come in bursts)."""
        every = RELOAD_QUIET_S if quiet else RELOAD_EVERY_S
        elapsed = time.monotonic() - self._last_reload
        if force or elapsed >= every:
            self._reload_now()
            return
        due = self._last_reload + every
        if self._reload_timer is not None:
            if due >= self._reload_due:
                return
            self._reload_timer.stop()  # a local change should not wait for a quiet reload
        self._reload_due = due
        self._reload_timer = self.set_timer(every - elapsed, self._reload_now)

    def _reload_now(self) -> None:
        self._reload_timer = None
        if not self.shown:
            return  # on_screen_resume reloads
        self._last_reload = time.monotonic()
        self.job_list.reload()
        self._refresh_bindings_if_needed()

    def on_engine_updated(self, message: EngineUpdated) -> None:
        batch = message.batch
        job_list = self.job_list
        for job_id in batch.deleted:
            self.marked.pop(job_id, None)
        # Each job's row is painted once for the whole batch (its new record and its live counts
        # together): the rows of running jobs are most of what the console does while they run.
        repaint = set(batch.progress)
        if batch.jobs_touched:
            moved = bool(batch.deleted or batch.store_changed)
            new_job = False
            for job in batch.changed.values():
                before = job_list.update_record(job, repaint=False)
                if before is None:
                    moved = new_job = True  # not in the rows read: a new job, or one further down
                elif fmt.display_status(before) != fmt.display_status(job):
                    moved = True  # it may change place or leave the filter
                repaint.add(job.id)
            # A checkpoint of a job run here changes its counts, not its place: repainting its row
            # is enough (re-reading 100,000 jobs' count for it took a share of the jobs' speed).
            if moved:
                self._reload(quiet=not (batch.deleted or new_job))
        if repaint:
            job_list.refresh_jobs(repaint)
        if batch.progress:
            highlighted = job_list.highlighted
            if highlighted is not None and highlighted.id in batch.progress:
                self._update_status()

    def _tick_running(self) -> None:
        # Durations and rates move every second even when no event arrives.
        if not self.shown:
            return
        job_list = self.job_list
        for index in job_list.visible_range():
            job = job_list.row(index)
            if job is not None and job.status is JobStatus.EXECUTING:
                job_list.refresh_row(index)
        if self._wait is not None and self._wait[1]:
            self._refresh_wait()
            self._update_status()

    def _update_status(self) -> None:
        job_list = self.job_list
        parts: list[tuple[str, int]] = []
        n = job_list.total
        parts.append((f"{n:,} job{'s' if n != 1 else ''}", 9))
        if self.marked:
            parts.append((f"{len(self.marked):,} marked", 9))
        if not self.filter.empty:
            parts.append((f"filter: {self.filter.describe()}", 8))
        parts.append((f"sort: {self.sort.describe()}", 2))
        job = job_list.highlighted
        if job is not None:
            parts.append((job.id, 7))
            parts.append((job.task_name, 4))
            if not job.status.is_finished:
                parts.append((f"pause {job.wait_after_row_ms} ms", 5))  # the pause last set
            if job.error:
                parts.append((job.error, 3))
            if self._wait is not None and self._wait[0] == job.id and self._wait[1]:
                # The reason's first clause here; the job view says it all.
                parts.append((f"waiting: {self._wait[1].split(':')[0]}", 6))
        width = max(10, self.query_one("#status", Lines).size.width or self.app.size.width - 2)
        self.query_one("#status", Lines).update(Text(fmt.fit_parts(parts, width), no_wrap=True))

    def on_resize(self) -> None:
        self._update_status()

    def on_job_list_highlighted(self, message: JobList.Highlighted) -> None:
        self._refresh_wait()
        self._update_status()
        self._refresh_bindings_if_needed()

    def _refresh_wait(self) -> None:
        """Why the highlighted job waits, when it was started and has not run (read at most once a
        second: it asks the store about the engines)."""
        job = self._job()
        reason = None
        if job is not None and fmt.display_status(job) == "queued":
            try:
                reason = self.engine.wait_reason(job)
            except Exception:  # noqa: BLE001 - a store error must not break the list
                reason = None
        self._wait = (job.id, reason) if job is not None else None

    def on_job_list_reloaded(self, message: JobList.Reloaded) -> None:
        self._update_status()

    def _refresh_bindings_if_needed(self) -> None:
        # The footer rebuilds its keys on refresh_bindings: only when what applies has changed.
        job = self._job()
        state = (bool(self.marked),) + (
            ()
            if job is None
            else (job.status, job.queued_at is None, job.stop_requested, job.is_noinput, job.failure_count > 0)
        )
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def on_job_list_selected(self, message: JobList.Selected) -> None:
        self.console.open_job(message.job.id)

    # ------------------------------------------------------------- filter

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        self.set_focus(box)

    def _filter_typed(self, event: Input.Changed | Input.Submitted) -> bool:
        """Whether ``event`` is the filter box's (then it is handled here, and a pending debounced
        filter is dropped: this event's text is newer)."""
        if event.input.id != "filter":
            return False
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        # Incremental, debounced: a burst of keys costs one query.
        if self._filter_typed(event):
            self._filter_timer = self.set_timer(0.15, lambda: self.set_filter(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self._filter_typed(event):
            return
        self.set_filter(event.value)
        if not event.value.strip():
            event.input.remove_class("-shown")
        self.job_list.focus()

    def set_filter(self, text: str) -> None:
        self._filter_timer = None
        box = self.query_one("#filter", Input)
        try:
            new = parse_filter(text)
        except FilterError as exc:
            box.add_class("-error")
            self.notify(f"filter not applied: {exc}", severity="error")
            return
        box.remove_class("-error")
        if new == self.filter:
            return
        self.filter = new
        self._apply_query()

    def show(self, text: str = "", sort: Sort | None = None) -> None:
        """List what ``text`` (a filter as typed) matches in the order ``sort`` (default: newest
        first), at once (the benchmark's entry; typing debounces)."""
        self.filter = parse_filter(text)
        self.sort = sort or Sort()
        self._apply_query()

    def action_clear(self) -> None:
        """escape: in the filter box, clear the filter and go back to the list; on the list, clear
        the filter, else the marks. Never quits: a habit of pressing escape to get back is safe."""
        box = self.query_one("#filter", Input)
        if box.has_focus or not self.filter.empty:
            if self._filter_timer is not None:
                self._filter_timer.stop()
                self._filter_timer = None
            box.value = ""
            box.remove_class("-shown", "-error")
            self.set_filter("")
            self.job_list.focus()
            return
        if self.marked:
            self.action_unmark()

    def action_sort(self, column: str) -> None:
        spec = SORT_COLUMNS[column]
        if self.sort.column == column:
            self.sort = Sort(column, not self.sort.descending)
        else:
            self.sort = Sort(column, spec.descending)
        self._apply_query()
        self.notify(f"sorted by {self.sort.describe()}")

    # ------------------------------------------------------------- marks

    def action_mark(self) -> None:
        job = self._job()
        if job is None:
            return
        if self.marked.pop(job.id, None) is None:
            self.marked[job.id] = job.status.value
        self.job_list.refresh_row(self.job_list.cursor)
        self.job_list.action_cursor_down()
        self._marks_changed()

    def action_unmark(self) -> None:
        if not self.marked:
            self.notify("no job is marked (space marks the highlighted job, * every job the filter matches)")
            return
        n = len(self.marked)
        self.marked.clear()
        self.job_list.refresh()
        self.notify(f"unmarked {n:,} job{'s' if n != 1 else ''}")
        self._marks_changed()

    def action_mark_all(self) -> None:
        if self._marking:
            return
        job_list = self.job_list
        if job_list.total and len(self.marked) >= job_list.total and self._all_shown_marked():
            self.action_unmark()
            return
        self._marking = True
        source = job_list.source
        self.notify(f"marking the {job_list.total:,} jobs the filter matches{glyphs.G.ellipsis}")
        self.run_worker(lambda: self._mark_all(source), thread=True, group="jobs-mark", exclusive=True)

    def _all_shown_marked(self) -> bool:
        job_list = self.job_list
        return all(job.id in self.marked for job in (job_list.row(i) for i in range(min(job_list.total, 64))) if job)

    def _mark_all(self, source: JobSource) -> None:
        found: dict[str, str] = {}
        total = source.count()
        offset = 0
        while offset < total:
            page = source.page(offset, MARK_PAGE)
            if not page:
                break
            found.update((job.id, job.status.value) for job in page)
            offset += len(page)
        self.app.call_from_thread(self._marked_all, found)

    def _marked_all(self, found: dict[str, str]) -> None:
        self._marking = False
        self.marked.update(found)
        self.job_list.refresh()
        self.notify(
            f"marked {len(found):,} jobs matching the filter ({len(self.marked):,} marked in all; "
            "s x r d act on them, u unmarks)"
        )
        self._marks_changed()

    def _marks_changed(self) -> None:
        self._update_status()
        self._refresh_bindings_if_needed()

    # ------------------------------------------------------------- actions

    def _job(self) -> JobRecord | None:
        return self.job_list.highlighted

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter" and isinstance(self.focused, Input):
            return False  # "/" is typed into the box (a regular expression has them)
        if action not in JOB_ACTIONS:
            return True
        if self.marked and action in BULK_ACTIONS:
            return True
        return None if self.why_disabled(action, parameters) else True

    def why_disabled(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why a dimmed key does nothing here (said on the message line when it is pressed)."""
        if action not in JOB_ACTIONS:
            return None
        if self.marked and action in BULK_ACTIONS:
            return None
        job = self._job()
        if job is None:
            return "no job is highlighted" + ("" if self.filter.empty else " (the filter matches none)")
        reason = why_not(action, job)
        return None if reason is None else f"job {job.id[:8]}: {reason}"

    def _act(self, action: str) -> bool:
        """Act on the marked jobs if any (True), else leave it to the caller (False)."""
        if not self.marked:
            return False
        self.console.act_on_marked(action, dict(self.marked), done=self._bulk_done)
        return True

    def _bulk_done(self) -> None:
        self.marked.clear()
        self.job_list.refresh()
        self._marks_changed()
        self._reload(force=True)

    def action_open(self) -> None:
        job = self._job()
        if job is not None:
            self.console.open_job(job.id)

    def action_new(self) -> None:
        self.console.open_new_job()

    def _act_on(self, action: str, one: Callable[[JobRecord], object]) -> None:
        """``action`` on the marked jobs if any (after one confirmation), else ``one(job)`` on the
        highlighted job; the list is read again when ``one`` says it changed the job."""
        if self._act(action):
            return
        job = self._job()
        if job is not None and one(job) is not None:
            self._reload(force=True)

    def action_start(self) -> None:
        self._act_on("start", self.console.start_one)

    def action_stop(self) -> None:
        self._act_on("stop", self.console.stop_one)

    def action_restart(self) -> None:
        self._act_on("restart", lambda job: self.console.restart_job(job.id))

    def action_restart_failed(self) -> None:
        self._act_on("restart_failed", lambda job: self.console.restart_job(job.id, failed_only=True))

    def action_delete(self) -> None:
        self._act_on("delete", self.console.delete_job)

    def action_output(self) -> None:
        job = self._job()
        if job is not None:
            self.console.view_file(job.id, "output")

    def action_input(self) -> None:
        job = self._job()
        if job is not None:
            self.console.view_file(job.id, "input")

    def action_pause(self, step: int) -> None:
        job = self._job()
        if job is None:
            return
        self.console.change_pause(job.id, step)
        self._reload(force=True)
        self._update_status()

    def select_job(self, job_id: str) -> None:
        """Put the cursor on a job if it is near the top (a job just created)."""
        job_list = self.job_list
        job_list.reload()
        for index in range(min(job_list.total, 64)):
            job = job_list.row(index)
            if job is not None and job.id == job_id:
                job_list.move_to(index)
                return
