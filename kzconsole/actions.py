"""What the console does to jobs, for the jobs list and the job view alike: open, create, start,
stop, restart (all rows or the failed ones), delete, change the pause, view and save files; and the
same on many marked jobs at once, after one confirmation that says how many.

Mixed into :class:`~kzconsole.app.KzConsoleApp`. Store work that may take long (a restart copies an
input, a bulk action touches thousands of jobs) runs in a thread worker and reports on the message
line; each job's outcome is the engine's to decide (a job that finished meanwhile is skipped, and
the message says why). Which action applies to a job, and the keys, are in
:mod:`kzconsole.screens.job_actions`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from kzconsole.engine import EngineError, JobRecord, JobStatus
from kzconsole.screens.job_actions import BULK_VERBS, next_pause, why_not
from kzconsole.widgets import glyphs

if TYPE_CHECKING:
    from kzconsole.app import KzConsoleApp

log = logging.getLogger("kzconsole.console")


class JobActions:
    """The console's operations on jobs (a mixin of the app)."""

    # ------------------------------------------------------------------- one job

    def open_job(self: KzConsoleApp, job_id: str) -> None:
        from kzconsole.screens.job_detail import JobDetailScreen

        job_id = job_id.strip().lower()
        if len(job_id) < 6:
            self.notify("give at least 6 characters of the job id", severity="warning")
            return
        job = self.find(job_id)
        if job is None:
            return
        if self.current_mode != "jobs":
            self.switch_mode("jobs")
        self.push_screen(JobDetailScreen(job))

    def open_new_job(self: KzConsoleApp, category: str | None = None, action: str | None = None) -> None:
        """The new-job dialog, pre-filled with a task (the catalog's ``n``)."""
        from kzconsole.screens.jobs import JobsScreen
        from kzconsole.screens.new_job import NewJobModal, NewJobResult

        def created(result: NewJobResult | None) -> None:
            if result is None:
                return
            how = "created and queued to start" if result.started else "created (pending: s starts it)"
            self.notify(f"job {result.job_id[:8]} {how}")
            if self.current_mode != "jobs":
                self.switch_mode("jobs")
            jobs = self.screen
            if isinstance(jobs, JobsScreen):
                jobs.select_job(result.job_id)

        self.push_screen(NewJobModal(category, action), created)

    def change_pause(self: KzConsoleApp, job_id: str, step: int) -> JobRecord | None:
        job = self.find(job_id)
        if job is None:
            return None
        reason = why_not("pause", job)
        if reason is not None:
            self.notify(f"job {job.id[:8]}: no pause to change: {reason}", severity="warning")
            return None
        # The record, read now, holds the pause last set (here or by any process); what a job
        # running here reported is its pause at its last row, before the presses since.
        current = job.wait_after_row_ms
        new = next_pause(current, step)
        try:
            updated = self.engine.set_wait(job.id, new)
        except EngineError as exc:
            self.notify(str(exc), title="cannot change the pause", severity="error")
            return None
        self.notify(f"job {job.id[:8]}: pause {current} {glyphs.G.arrow} {new} ms after each row")
        return updated

    def _checked_call(
        self: KzConsoleApp, action: str, job: JobRecord, call: Callable[[str], JobRecord]
    ) -> JobRecord | None:
        """``call(job.id)`` if ``action`` applies to the job now; otherwise, or when the engine
        refuses, None and the message line says why."""
        reason = why_not(action, job)
        if reason is not None:
            self.notify(f"job {job.id[:8]} not {BULK_VERBS[action][1]}: {reason}", severity="warning")
            return None
        try:
            return call(job.id)
        except EngineError as exc:
            self.notify(str(exc), title=f"cannot {action}", severity="error")
            return None

    def start_one(self: KzConsoleApp, job: JobRecord) -> JobRecord | None:
        updated = self._checked_call("start", job, self.engine.start_job)
        if updated is None:
            return None
        log.info("job %s %s started by the operator", job.id, job.task_name)
        if self.engine_running:
            self.notify(f"job {job.id[:8]} queued to start")
        else:
            self.notify(
                f"job {job.id[:8]} queued; the engine is not running here: another engine on this store will run it",
                severity="warning",
            )
        return updated

    def stop_one(self: KzConsoleApp, job: JobRecord) -> JobRecord | None:
        updated = self._checked_call("stop", job, self.engine.stop_job)
        if updated is None:
            return None
        if updated.status is JobStatus.STOPPED:
            self.already_told(updated)  # stopped at once: this message says it all
        verb = "stopped" if updated.status is JobStatus.STOPPED else "stopping before its next row"
        log.info("job %s %s stop asked by the operator", job.id, job.task_name)
        self.notify(f"job {job.id[:8]} {verb}")
        return updated

    def restart_job(self: KzConsoleApp, job_id: str, *, open_it: bool = False, failed_only: bool = False) -> None:
        job = self.find(job_id)
        if job is None:
            return
        if failed_only:
            reason = why_not("restart_failed", job)
            if reason is not None:
                self.notify(f"job {job.id[:8]}: nothing to re-run: {reason}", severity="warning")
                return

        def work() -> None:
            try:
                new = self._restart(job, failed_only)
            except EngineError as exc:
                self.notify(str(exc), title="cannot restart", severity="error")
                return
            self.call_from_thread(self._restarted, job, new, open_it, failed_only)

        self.run_worker(work, thread=True, group="job-restart")

    def _restart(self: KzConsoleApp, job: JobRecord, failed_only: bool) -> JobRecord:
        return self.engine.restart_job(job.id, failed_only=failed_only)

    def _restarted(self: KzConsoleApp, old: JobRecord, job: JobRecord, open_it: bool, failed_only: bool) -> None:
        from kzconsole.screens.job_detail import JobDetailScreen

        what = f"its {old.failure_count:,} failed rows re-run" if failed_only else "restarted"
        log.info("job %s %s %s as job %s", old.id, old.task_name, what, job.id)
        self.notify(f"job {old.id[:8]} {what} as job {job.id[:8]} (queued)")
        if open_it and isinstance(self.screen, JobDetailScreen):
            self.pop_screen()
            self.push_screen(JobDetailScreen(job))

    def delete_job(self: KzConsoleApp, job: JobRecord) -> None:
        from kzconsole.screens.confirm import ConfirmModal

        reason = why_not("delete", job)
        if reason is not None:
            self.notify(f"job {job.id[:8]} not deleted: {reason}", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(lambda: self._delete(job), thread=True, group="job-delete")

        self.push_screen(
            ConfirmModal(
                f"Delete job {job.id[:8]} ({job.task_name}, {job.status.value})?\n"
                "Its record, input, output and log are removed for good.",
                title="Delete job",
                yes="Delete",
                no="Keep",
            ),
            answered,
        )

    def _delete(self: KzConsoleApp, job: JobRecord) -> None:
        try:
            self.engine.remove_job(job.id)
        except EngineError as exc:
            self.notify(str(exc), title="cannot delete", severity="error")
            return
        log.info("job %s %s deleted by the operator", job.id, job.task_name)
        self.call_from_thread(self._deleted, job.id)

    def _deleted(self: KzConsoleApp, job_id: str) -> None:
        from kzconsole.screens.job_detail import JobDetailScreen

        self.notify(f"job {job_id[:8]} deleted")
        screen = self.screen
        if isinstance(screen, JobDetailScreen) and screen.job.id == job_id:
            self.pop_screen()

    # ------------------------------------------------------------- many jobs

    def act_on_marked(
        self: KzConsoleApp, action: str, marked: Mapping[str, str], done: Callable[[], None] | None = None
    ) -> None:
        """``action`` on every marked job (id -> status when marked), after one confirmation."""
        from kzconsole.screens.confirm import ConfirmModal

        verb, _ = BULK_VERBS[action]
        n = len(marked)
        by_status = Counter(marked.values())
        breakdown = ", ".join(f"{count:,} {status}" for status, count in by_status.most_common())
        notes = {
            "start": "Only pending jobs start; the others are skipped.",
            "stop": "Pending jobs stop at once, running ones before their next row; finished ones are skipped.",
            "restart": "Each becomes a new job with the same task, input and accounts, queued to run.",
            "restart_failed": "Each finished job with failed rows gets a new job of those rows only, queued.",
            "delete": "Records, inputs, outputs and logs are removed for good; running jobs are skipped.",
        }
        question = f"{verb} {n:,} marked job{'s' if n != 1 else ''}?\n({breakdown})\n{notes[action]}"

        def answered(yes: bool | None) -> None:
            if yes:
                ids = list(marked)
                self.run_worker(lambda: self._bulk(action, ids, done), thread=True, group="jobs-bulk")

        self.push_screen(ConfirmModal(question, title=f"{verb} {n:,} jobs", yes=verb.split()[0], no="Cancel"), answered)

    def _bulk(self: KzConsoleApp, action: str, ids: Sequence[str], done: Callable[[], None] | None) -> None:
        _, past = BULK_VERBS[action]
        engine = self.engine
        ok = 0
        skipped: Counter[str] = Counter()
        last_report = self.clock.monotonic()
        for n, job_id in enumerate(ids, 1):
            try:
                job = engine.get_job(job_id)
                reason = why_not(action, job)
                if reason is not None:
                    skipped[reason.split(":")[0]] += 1
                    continue
                if action == "start":
                    engine.start_job(job_id)
                elif action == "stop":
                    engine.stop_job(job_id)
                elif action == "restart":
                    engine.restart_job(job_id)
                elif action == "restart_failed":
                    self._restart(job, True)
                elif action == "delete":
                    engine.remove_job(job_id)
                ok += 1
            except EngineError as exc:
                skipped[str(exc).split(":")[0]] += 1
            now = self.clock.monotonic()
            if now - last_report >= 1.0:
                last_report = now
                self.notify(f"{past} {ok:,} of {len(ids):,} marked jobs{glyphs.G.ellipsis} ({n:,} done)")
        log.info("bulk %s: %d of %d marked jobs %s", action, ok, len(ids), past)
        text = f"{past} {ok:,} of {len(ids):,} marked job{'s' if len(ids) != 1 else ''}"
        if skipped:
            text += "; skipped: " + ", ".join(f"{count:,} ({why})" for why, count in skipped.most_common(3))
        self.notify(text, severity="warning" if skipped else "information")
        if done is not None:
            self.call_from_thread(done)

    # ------------------------------------------------------------------ files

    def view_file(self: KzConsoleApp, job_id: str, kind: str) -> None:
        """The job's output (so far) or its stored input, as a table."""
        from kzconsole.screens.csv_view import CsvViewScreen

        job = self.find(job_id)
        if job is None:
            return
        engine = self.engine
        if kind == "input":
            reason = why_not("input", job)
            stream = None if reason else engine.open_input(job)
            if stream is None:
                self.notify(f"job {job.id[:8]} has no input: {reason or 'it is gone'}", severity="warning")
                return
        else:
            stream = engine.open_output(job)
            if stream is None:
                self.notify(f"job {job.id[:8]} has no output yet", severity="warning")
                return
        stream.close()
        self.push_screen(CsvViewScreen(job, kind))

    def save_output(self: KzConsoleApp, job_id: str) -> None:
        from kzconsole.screens.csv_view import SaveFileModal

        job = self.find(job_id)
        if job is None:
            return
        stream = self.engine.open_output(job)
        if stream is None:
            self.notify(f"job {job.id[:8]} has no output yet", severity="warning")
            return
        stream.close()
        self.push_screen(SaveFileModal(job, "output"))
