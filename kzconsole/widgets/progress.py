"""A job's live progress: a bar with success and failure parts, throughput, ETA, and the stop state.

Shown a few times a second while a job runs; as a :class:`~kzconsole.widgets.lines.Lines` it sends
the terminal only the digits and bar cells that moved.
"""

from __future__ import annotations

from rich.text import Text

from kzconsole.engine import JobProgressed, JobRecord
from kzconsole.widgets import fmt, glyphs
from kzconsole.widgets.lines import Lines


class JobProgress(Lines):
    """Two lines: the bar with its percentage, then counts, rows/s, ETA and the pause.

    The screen calls :meth:`show`; nothing here reads the engine.
    """

    DEFAULT_CSS = """
    JobProgress { height: 2; padding: 0 1; }
    JobProgress > .job-progress--done { color: $success; }
    JobProgress > .job-progress--failed { color: $error; }
    JobProgress > .job-progress--todo { color: $text-muted; }
    JobProgress > .job-progress--stopping { color: $warning; text-style: bold; }
    """

    COMPONENT_CLASSES = {"job-progress--done", "job-progress--failed", "job-progress--todo", "job-progress--stopping"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.job: JobRecord | None = None
        self.live: JobProgressed | None = None
        self.now: float = 0.0
        self.row_seconds: float | None = None

    def show(self, job: JobRecord, live: JobProgressed | None, now: float, row_seconds: float | None = None) -> None:
        self.job, self.live, self.now, self.row_seconds = job, live, now, row_seconds
        self.update()

    def stats_parts(self) -> list[tuple[str, int]]:
        """The second line's parts, with how much each matters when the line is narrow: a pending
        stop first (never left out), then the counts, rows, ETA, rate and the pause."""
        job = self.job
        if job is None:
            return []
        g = glyphs.G
        success, failure, total, done = fmt.live_counts(job, self.live)
        state = fmt.display_status(job)
        parts: list[tuple[str, int]] = []
        if state == "stopping":
            row = self.row_seconds
            if row is not None:
                parts.append((f"STOPPING: the current row has run {row:.1f}s", 10))
            else:
                parts.append(("STOPPING before the next row", 10))
        parts += [(f"{g.ok} {success:,} ok", 9), (f"{g.failed} {failure:,} failed", 9)]
        parts.append(
            (
                f"{done:,} of {fmt.plural(total, 'row')}"
                if total is not None
                else f"{fmt.plural(done, 'call')} (no input)",
                8,
            )
        )
        rate = fmt.job_rate(job, self.live, self.now)
        running = state in ("executing", "stopping")
        if running and total and rate:
            parts.append((f"ETA {fmt.duration(max(0, total - done) / rate)}", 6))
        if job.start_timestamp is not None and rate:
            parts.append((fmt.rate(rate), 5))
        if running or state in ("pending", "queued"):
            # The record's: the pause last set (what the job reported is its pause at its last row).
            parts.append((f"pause {job.wait_after_row_ms} ms", 3))
        return parts

    def stats(self, width: int = 10_000) -> str:
        """The second line as plain text (also used by tests)."""
        return fmt.fit_parts(self.stats_parts(), width)

    def content_for(self, width: int) -> Text:
        job = self.job
        if job is None:
            return Text("")
        g = glyphs.G
        success, failure, total, done = fmt.live_counts(job, self.live)
        label_w = 6
        bar_w = max(1, width - label_w)
        text = Text(no_wrap=True, overflow="crop")
        if total:
            label = f" {min(1.0, done / total) * 100:4.0f}%"
        elif job.status.is_finished:
            label = "  done"
        else:
            label = "   ..."
        cells = fmt.bar_cells(success, failure, total, done, job.status.is_finished, bar_w)
        if cells is None:
            text.append(g.bar_todo * bar_w, self.get_component_rich_style("job-progress--todo"))
        else:
            good, bad, todo = cells
            text.append(g.bar_done * good, self.get_component_rich_style("job-progress--done"))
            text.append(g.bar_failed * bad, self.get_component_rich_style("job-progress--failed"))
            text.append(g.bar_todo * todo, self.get_component_rich_style("job-progress--todo"))
        text.append(label)
        text.append("\n")
        stats = self.stats(width)
        if fmt.display_status(job) == "stopping" and stats.startswith("STOPPING"):
            head, sep, tail = stats.partition(" · ")
            text.append(head, self.get_component_rich_style("job-progress--stopping"))
            text.append(sep + tail)
        else:
            text.append(stats)
        return text
