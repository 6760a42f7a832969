"""The jobs view (``1``, the first screen): every job, newest first, live.

The list pages from the store (see :mod:`kzconsole.widgets.job_list`). A filter or a sort the store
can answer (status, an exact account id, newest/oldest first, running first) keeps paging from the
store; anything else (a piece of a task name, an id prefix, a word in a file name, sort by task)
scans the store once in a worker thread and lists the matches from memory.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from kzconsole.engine import EngineError, JobRecord, JobStatus
from kzconsole.messages import EngineUpdated
from kzconsole.widgets.job_list import GroupedSource, JobList, JobSource, MemorySource, StoreSource
from kzconsole.widgets.view_bar import ViewBar

STATUSES = [s.value for s in JobStatus]
STATUS_ALIASES = {
    "running": ["executing"], "run": ["executing"], "active": ["executing", "pending"],
    "failed": ["failure"], "fail": ["failure"], "ok": ["success"], "done": [s.value for s in JobStatus if s.is_finished],
    "finished": [s.value for s in JobStatus if s.is_finished], "error": ["internal_error"],
    "errors": ["internal_error"], "queued": ["pending"], "waiting": ["pending"],
}
# Sorted by status, the jobs that need attention come first.
STATUS_ORDER = ["executing", "pending", "internal_error", "failure", "partial", "stopped", "success"]
SORTS = ("newest", "oldest", "status", "task", "account")
SORT_LABELS = {"newest": "newest first", "oldest": "oldest first", "status": "running first",
               "task": "by task", "account": "by account"}
PAUSE_STEPS = [0, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000]
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
SCAN_PAGE = 2000
RELOAD_EVERY_S = 0.3  # at most this often a live list re-reads the store
# When only another connection wrote (mostly running jobs' checkpoints, at most one a second each),
# re-read this seldom: stored counts move no faster, and jobs run here are shown live by the bridge.
# Re-reading 100,000 jobs' count five times a second took a quarter of 8 running jobs' speed.
RELOAD_QUIET_S = 1.0
RESCAN_EVERY_S = 1.5
RESCAN_DUTY = 5  # a rescan waits at least this many times the last scan's duration (<= 20% of a core)
RESCAN_QUIET_S = 10.0  # when only counts moved (another connection wrote), rescan this seldom


@dataclass(frozen=True)
class JobFilter:
    """A parsed filter: every term must match (terms are separated by spaces).

    ``executing`` / ``status:exec,pend``: status (a prefix of a status name, or running, failed,
    done, ...); ``account:ID``; ``task:skel/id``; ``id:0f3a``; anything else matches a piece of the id,
    task, account or file name.
    """

    text: str = ""
    statuses: tuple[str, ...] | None = None
    account: str | None = None  # a whole account id: the store answers
    account_part: str | None = None
    task: str | None = None
    id_prefix: str | None = None
    words: tuple[str, ...] = field(default_factory=tuple)

    @property
    def store_only(self) -> bool:
        """The store answers it (status, whole account, task piece, id prefix): paged, no scan."""
        return self.account_part is None and not self.words

    def matches(self, job: Any) -> bool:
        if self.statuses is not None and job.status.value not in self.statuses:
            return False
        if self.account is not None and job.account_id != self.account:
            return False
        if self.account_part is not None and self.account_part not in job.account_id.lower():
            return False
        if self.task is not None and self.task not in job.task_name.lower():
            return False
        if self.id_prefix is not None and not job.id.startswith(self.id_prefix):
            return False
        for word in self.words:
            if not (word in job.id or word in job.task_name.lower() or word in job.account_id.lower()
                    or (job.file_name and word in job.file_name.lower())):
                return False
        return True

    def describe(self) -> str:
        return self.text.strip()


def _statuses_for(word: str) -> list[str] | None:
    if word in STATUS_ALIASES:
        return STATUS_ALIASES[word]
    found = [s for s in STATUSES if s.startswith(word)]
    return found or None


def parse_filter(text: str) -> JobFilter:
    statuses: set[str] | None = None
    account = account_part = task = id_prefix = None
    words: list[str] = []
    for raw in text.lower().split():
        key, sep, value = raw.partition(":")
        if sep and key in ("status", "s", "state"):
            found: set[str] = set()
            for part in value.split(","):
                found.update(_statuses_for(part) or [] if part else [])
            statuses = (statuses or set()) | found if found else (statuses or set())
        elif sep and key in ("account", "acct", "a"):
            if _HEX32.match(value):
                account = value
            else:
                account_part = value
        elif sep and key in ("task", "t"):
            task = value
        elif sep and key == "id":
            id_prefix = value
        elif raw in STATUSES or raw in STATUS_ALIASES or (len(raw) >= 3 and _statuses_for(raw)):
            # A status, an alias, or the start of one (so typing "stop" already finds "stopped").
            statuses = (statuses or set()) | set(_statuses_for(raw) or [])
        else:
            words.append(raw)
    return JobFilter(
        text=text,
        statuses=tuple(sorted(statuses)) if statuses is not None else None,
        account=account, account_part=account_part, task=task, id_prefix=id_prefix, words=tuple(words),
    )


def _sort_key(sort: str) -> Callable[[Any], Any]:
    if sort == "oldest":
        return lambda j: (j.created, j.id)
    if sort == "status":
        rank = {s: i for i, s in enumerate(STATUS_ORDER)}
        return lambda j: (rank.get(j.status.value, 99), -j.created, _neg(j.id))
    if sort == "task":
        return lambda j: (j.task_name, -j.created)
    if sort == "account":
        return lambda j: (j.account_id, -j.created)
    return lambda j: (-j.created, _neg(j.id))


def _neg(job_id: str) -> str:
    # Newest first ties on `created` are broken by id descending, as the store does.
    return "".join(chr(0x10FFFF - ord(c)) for c in job_id)


class JobsScreen(Screen):
    VIEW_NAME = "Jobs"

    DEFAULT_CSS = """
    JobsScreen #filter { display: none; background: $panel; }
    JobsScreen #filter.-shown { display: block; }
    JobsScreen #status { height: 1; padding: 0 1; background: $panel; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="open the job view: record, live progress, log, output"),
        Binding("n", "new", "New", tooltip="create a job: task, input file, checks, accounts, pause"),
        Binding("s", "start", "Start", tooltip="start a pending job (it waits for a free slot)"),
        Binding("x", "stop", "Stop", tooltip="stop: a pending job at once, a running one before its next row"),
        Binding("d", "delete", "Delete", tooltip="delete the job and its files (asks first)"),
        Binding("o", "output", "Output", tooltip="view the output (so far) as a table; w saves it"),
        Binding("r", "restart", "Restart", show=False, tooltip="a new job with the same task, input and accounts, queued"),
        Binding("i", "input", "Input", show=False, tooltip="view the stored input as a table"),
        Binding("plus", "pause(1)", "Longer pause", key_display="+", show=False, tooltip="longer pause after each row (0, 10, 25 ... 10000 ms)"),
        Binding("minus", "pause(-1)", "Shorter pause", key_display="-", show=False, tooltip="shorter pause after each row"),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="filter: a status, task:, account:, id:, or any text"),
        Binding("S", "sort", "Sort", tooltip="sort: newest, oldest, running first, by task, by account"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="clear the filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = JobFilter()
        self.sort = "newest"
        self._last_reload = 0.0
        self._reload_timer: Timer | None = None
        self._reload_due = 0.0
        self._filter_timer: Timer | None = None
        self._scan_generation = 0
        self._scanning = False
        self._scanned = 0
        self._last_scan = 0.0
        self._scan_seconds = 0.0
        self._rescan_pending = False
        self._rescan_timer: Timer | None = None
        self._status_text = ""
        self._binding_state: tuple[Any, ...] | None = None

    @property
    def engine(self) -> Any:
        return self.app.engine

    # ------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield ViewBar("jobs")
        yield Input(placeholder="filter: status (executing, failed, done...), task:, account:, id:, or any text",
                    id="filter", compact=True)
        yield JobList(self._make_source(), now=self.app.clock.time, live=self.app.bridge.live_progress,
                      id="jobs")
        yield Static("", id="status")
        yield Footer(compact=True, show_command_palette=False)

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
        f = self.filter
        if not f.store_only or self.sort in ("task", "account"):
            return MemorySource([])  # filled by the scan
        statuses = list(f.statuses) if f.statuses is not None else None
        if self.sort == "status":
            order = [s for s in STATUS_ORDER if statuses is None or s in statuses]
            return GroupedSource([StoreSource(self.engine, statuses=[s], account_id=f.account, task=f.task,
                                              id_prefix=f.id_prefix) for s in order])
        return StoreSource(self.engine, statuses=statuses, account_id=f.account, task=f.task,
                           id_prefix=f.id_prefix, oldest_first=self.sort == "oldest")

    def _apply_query(self) -> None:
        source = self._make_source()
        self.job_list.set_source(source)
        if isinstance(source, MemorySource):
            self._start_scan()
        self._update_status()

    def _start_scan(self) -> None:
        self._scan_generation += 1
        self._scanning = True
        self._scanned = 0
        self.job_list.empty_note = "  filtering…"
        self._last_scan = time.monotonic()
        self._scan(self._scan_generation, self.filter, self.sort)
        self._update_status()

    @work(thread=True, exclusive=True, group="jobs-scan")
    def _scan(self, generation: int, job_filter: JobFilter, sort: str) -> None:
        """Read every job the store narrows to, keep the matches (a worker thread)."""
        worker = get_current_worker()
        engine = self.engine
        statuses = list(job_filter.statuses) if job_filter.statuses is not None else None
        found: list[JobRecord] = []
        offset = 0
        started = last_shown = time.monotonic()
        # A first scan in the natural order shows what it found so far (newest first is a prefix of
        # the result); a rescan keeps the previous result on screen until the new one is complete.
        show_partial = sort == "newest" and not self._shown_records()
        while not worker.is_cancelled:
            page = engine.list_jobs(status=statuses, account_id=job_filter.account, limit=SCAN_PAGE, offset=offset)
            found.extend(job for job in page if job_filter.matches(job))
            offset += len(page)
            self._scanned = offset
            if len(page) < SCAN_PAGE:
                break
            if show_partial and time.monotonic() - last_shown > 0.3:
                last_shown = time.monotonic()
                self.app.call_from_thread(self._scan_partial, generation, list(found))
        if worker.is_cancelled:
            return
        if sort != "newest":
            found.sort(key=_sort_key(sort))
        self._scan_seconds = time.monotonic() - started
        self.app.call_from_thread(self._scan_done, generation, found)

    def _shown_records(self) -> bool:
        source = self.job_list.source
        return isinstance(source, MemorySource) and bool(source.records)

    def _scan_partial(self, generation: int, found: list[JobRecord]) -> None:
        source = self.job_list.source
        if generation == self._scan_generation and isinstance(source, MemorySource):
            source.records = found
            self.job_list.reload()
            self._update_status()

    def _scan_done(self, generation: int, found: list[JobRecord]) -> None:
        if generation != self._scan_generation:
            return
        self._scanning = False
        self.job_list.empty_note = None
        if self._rescan_pending:
            self._rescan_pending = False
            self.call_later(self._reload)
        source = self.job_list.source
        if isinstance(source, MemorySource):
            source.records = found
            self.job_list.reload()
        self._update_status()

    def _reload(self, force: bool = False, *, quiet: bool = False) -> None:
        """Re-read the list, at most every RELOAD_EVERY_S (events come in bursts).

        A scanned list is scanned again at most every RESCAN_EVERY_S, and never more often than
        RESCAN_DUTY times its own duration: with 100,000 jobs and a filter the store cannot answer,
        running jobs must not keep a core busy re-reading the store.
        """
        if isinstance(self.job_list.source, MemorySource):
            every = max(RESCAN_QUIET_S if quiet else RESCAN_EVERY_S, self._scan_seconds * RESCAN_DUTY)
            if self._scanning:
                self._rescan_pending = True
                return
            if force or time.monotonic() - self._last_scan >= every:
                self._start_scan()
            elif self._rescan_timer is None:
                delay = every - (time.monotonic() - self._last_scan)
                self._rescan_timer = self.set_timer(max(0.05, delay), self._rescan_now)
            return
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
        self._last_reload = time.monotonic()
        self.job_list.reload()
        self._update_status()
        self._refresh_bindings_if_needed()

    def _rescan_now(self) -> None:
        self._rescan_timer = None
        if self._scanning:
            self._rescan_pending = True
        else:
            self._start_scan()

    def on_engine_updated(self, message: EngineUpdated) -> None:
        batch = message.batch
        job_list = self.job_list
        if batch.jobs_touched:
            if isinstance(job_list.source, MemorySource):
                for job in batch.changed.values():
                    job_list.source.replace(job)
                    job_list.update_record(job)
                # Counts checkpointed by running jobs alone do not change who matches.
                self._reload(quiet=not (batch.changed or batch.deleted))
            else:
                self._reload(quiet=not (batch.changed or batch.deleted))
        if batch.progress:
            job_list.refresh_jobs(frozenset(batch.progress))
            highlighted = job_list.highlighted
            if highlighted is not None and highlighted.id in batch.progress:
                self._update_status()

    def _tick_running(self) -> None:
        # Durations and rates move every second even when no event arrives.
        job_list = self.job_list
        for index in job_list.visible_range():
            job = job_list.row(index)
            if job is not None and job.status is JobStatus.EXECUTING:
                job_list.refresh_row(index)
        if self._scanning:
            self._update_status()

    def _update_status(self) -> None:
        job_list = self.job_list
        parts = []
        if self._scanning:
            parts.append(f"filtering… {self._scanned:,} jobs read")
        else:
            n = job_list.total
            parts.append(f"{n:,} job{'s' if n != 1 else ''}")
        if self.filter.describe():
            parts.append(f"filter: {self.filter.describe()}")
        parts.append(f"sort: {SORT_LABELS[self.sort]}")
        job = job_list.highlighted
        if job is not None:
            live = self.app.bridge.live_progress(job.id)
            wait = live.wait_after_row_ms if live is not None and job.status is JobStatus.EXECUTING else job.wait_after_row_ms
            detail = f"{job.id[:12]} {job.task_name}"
            if not job.status.is_finished:
                detail += f" · pause {wait} ms"
            if job.error:
                detail += f" · {job.error}"
            parts.append(detail)
        text = " · ".join(parts)
        if text != self._status_text:
            self._status_text = text
            self.query_one("#status", Static).update(text)

    def on_job_list_highlighted(self, message: JobList.Highlighted) -> None:
        self._update_status()
        self._refresh_bindings_if_needed()

    def _refresh_bindings_if_needed(self) -> None:
        # The footer rebuilds its keys on refresh_bindings: only when what applies has changed.
        job = self._job()
        state = None if job is None else (job.status, job.queued_at is None, job.stop_requested,
                                          bool(job.input_path))
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def on_job_list_selected(self, message: JobList.Selected) -> None:
        self.app.open_job(message.job.id)

    # ------------------------------------------------------------- filter

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        # Incremental, debounced: a burst of keys costs one query.
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.15, lambda: self.set_filter(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.set_filter(event.value)
        if not event.value.strip():
            event.input.remove_class("-shown")
        self.job_list.focus()

    def set_filter(self, text: str) -> None:
        self._filter_timer = None
        new = parse_filter(text)
        if new == self.filter:
            return
        self.filter = new
        self._apply_query()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            # First escape leaves the filter box, keeping the filter.
            if not box.value.strip():
                box.remove_class("-shown")
            self.job_list.focus()
            return
        if self.filter.describe():
            box.value = ""
            box.remove_class("-shown")
            self.set_filter("")
        # Without a filter, escape does nothing here: a habit of pressing escape to "get back"
        # must never quit the console (q does).

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._apply_query()
        self.notify(f"Sorted {SORT_LABELS[self.sort]}", timeout=2)

    # ------------------------------------------------------------- actions

    def _job(self) -> JobRecord | None:
        return self.job_list.highlighted

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        job = self._job()
        needs_job = {"open", "start", "stop", "restart", "delete", "output", "input", "pause"}
        if action not in needs_job:
            return True
        if job is None:
            return None
        status = job.status
        if action == "start":
            return True if status is JobStatus.PENDING and job.queued_at is None else None
        if action == "stop":
            return True if not status.is_finished and not job.stop_requested else None
        if action == "delete":
            return True if status is not JobStatus.EXECUTING else None
        if action == "pause":
            return True if not status.is_finished else None
        if action == "input":
            return True if job.input_path else None
        return True

    def _engine_call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except EngineError as exc:
            self.notify(str(exc), title=f"Cannot {what}", severity="error")
        return None

    def action_open(self) -> None:
        job = self._job()
        if job is not None:
            self.app.open_job(job.id)

    def action_new(self) -> None:
        self.app.open_new_job()

    def action_start(self) -> None:
        job = self._job()
        if job is None:
            return
        if self._engine_call("start", lambda: self.engine.start_job(job.id)) is not None:
            self.notify(f"Job {job.id[:8]} queued to start", timeout=3)
            if not self.app.engine_running:
                self.notify("The engine is not running here: another engine on this store will run it.",
                            severity="warning")
        self._reload(force=True)

    def action_stop(self) -> None:
        job = self._job()
        if job is None:
            return
        updated = self._engine_call("stop", lambda: self.engine.stop_job(job.id))
        if updated is not None:
            verb = "stopped" if updated.status is JobStatus.STOPPED else "stopping before its next row"
            self.notify(f"Job {job.id[:8]} {verb}", timeout=3)
        self._reload(force=True)

    def action_restart(self) -> None:
        job = self._job()
        if job is not None:
            self.app.restart_job(job.id)

    def action_delete(self) -> None:
        job = self._job()
        if job is not None:
            self.app.delete_job(job)

    def action_output(self) -> None:
        job = self._job()
        if job is not None:
            self.app.view_output(job.id)

    def action_input(self) -> None:
        job = self._job()
        if job is not None:
            self.app.view_input(job.id)

    def action_pause(self, step: int) -> None:
        job = self._job()
        if job is None:
            return
        self.app.change_pause(job.id, step)
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


def next_pause(current: int, step: int) -> int:
    """The next pause on the PAUSE_STEPS scale, up (step > 0) or down."""
    if step > 0:
        return next((p for p in PAUSE_STEPS if p > current), max(current, PAUSE_STEPS[-1]) * 2)
    lower = [p for p in PAUSE_STEPS if p < current]
    return lower[-1] if lower else 0
