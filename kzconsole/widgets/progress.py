"""A job's live progress: a bar with success and failure parts, throughput, ETA, and the stop state."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from kzconsole.widgets import fmt


class JobProgress(Widget):
    """Two lines: the bar with its percentage, then counts, rows/s, ETA and the pause.

    The screen sets :meth:`show` on each tick; nothing here reads the engine.
    """

    DEFAULT_CSS = """
    JobProgress { height: 2; padding: 0 1; }
    JobProgress > .job-progress--done { color: $success; }
    JobProgress > .job-progress--failed { color: $error; }
    JobProgress > .job-progress--todo { color: $text-muted; }
    JobProgress > .job-progress--stopping { color: $warning; text-style: bold; }
    """

    COMPONENT_CLASSES = {"job-progress--done", "job-progress--failed", "job-progress--todo",
                         "job-progress--stopping"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.job: Any | None = None
        self.live: Any | None = None
        self.now: float = 0.0
        self.row_seconds: float | None = None

    def show(self, job: Any, live: Any | None, now: float, row_seconds: float | None = None) -> None:
        self.job, self.live, self.now, self.row_seconds = job, live, now, row_seconds
        self.refresh()

    def stats(self) -> str:
        """The second line as plain text (also used by tests). A pending stop comes first, so a
        narrow terminal never cuts it off."""
        job = self.job
        if job is None:
            return ""
        success, failure, total, done = fmt.live_counts(job, self.live)
        state = fmt.display_status(job)
        parts = []
        if state == "stopping":
            row = self.row_seconds
            if row is None and self.live is not None and self.live.stopping:
                row = self.live.row_seconds or None
            if row is not None:
                parts.append(f"STOPPING: the current row has run {row:.1f}s")
            else:
                parts.append("STOPPING before the next row")
        parts += [f"✔ {success:,} ok", f"✖ {failure:,} failed"]
        parts.append(f"{done:,} of {total:,} rows" if total is not None else f"{done:,} calls (no input)")
        rate = fmt.job_rate(job, self.live, self.now)
        if job.start_timestamp is not None and rate:
            parts.append(fmt.rate(rate))
        if state in ("executing", "stopping"):
            if total and rate:
                parts.append(f"ETA {fmt.duration(max(0, total - done) / rate)}")
            wait = self.live.wait_after_row_ms if self.live is not None else job.wait_after_row_ms
            parts.append(f"pause {wait} ms")
        elif state in ("pending", "queued"):
            parts.append(f"pause {job.wait_after_row_ms} ms")
        return " · ".join(parts)

    def render(self) -> Text:
        job = self.job
        if job is None:
            return Text("")
        width = max(10, self.content_size.width)
        success, failure, total, done = fmt.live_counts(job, self.live)
        label_w = 6
        bar_w = max(1, width - label_w)
        text = Text(no_wrap=True, overflow="ellipsis")
        if total:
            fraction = min(1.0, done / total)
            label = f" {fraction * 100:4.0f}%"
        elif job.status.is_finished:
            fraction, label = 1.0, "  done"
        else:
            fraction, label = None, "   ..."
        if fraction is None:
            text.append("░" * bar_w, self.get_component_rich_style("job-progress--todo"))
        else:
            full = int(round(fraction * bar_w))
            bad = min(full, max(1, int(round(full * failure / done)))) if done and failure else 0
            text.append("█" * (full - bad), self.get_component_rich_style("job-progress--done"))
            text.append("█" * bad, self.get_component_rich_style("job-progress--failed"))
            text.append("░" * (bar_w - full), self.get_component_rich_style("job-progress--todo"))
        text.append(label)
        text.append("\n")
        stats = self.stats()
        if fmt.display_status(job) == "stopping":
            head, sep, tail = stats.partition(" · ")
            text.append(head, self.get_component_rich_style("job-progress--stopping"))
            text.append(sep + tail)
        else:
            text.append(stats)
        return text
