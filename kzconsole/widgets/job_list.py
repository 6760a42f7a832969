"""The job list: a virtual list that pages its rows from the store and paints only visible lines.

A ``DataTable`` measures every cell before its first paint (15 s at 100,000 jobs here), so this is
a line-API :class:`~textual.scroll_view.ScrollView`: it knows how many jobs there are, fetches the
blocks of rows it is about to paint, and keeps a few blocks cached. Live progress is painted over
the cached records without touching the store, and only the cells that changed are sent to the
terminal: each row painted is kept, and a repaint of a row compares the new one with it.

Where the rows come from is a :class:`JobSource`; the jobs screen picks one for the filter and the
sort in force.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kzconsole.engine import JobProgressed, JobRecord
from kzconsole.widgets import fmt, glyphs
from kzconsole.widgets.csv_table import fit
from kzconsole.widgets.keys import end_keys, line_keys, page_keys
from kzconsole.widgets.lines import changed_span

BLOCK = 64  # rows fetched per store query
MAX_BLOCKS = 48  # cached blocks (about 3,000 records) before the cache is emptied


class JobSource(Protocol):
    """Rows for the list, in display order."""

    def count(self) -> int: ...

    def page(self, offset: int, limit: int) -> Sequence[JobRecord]: ...


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # minimum width
    priority: int  # higher stays longer when the terminal is narrow
    grow: int = 0  # extra cells it may take when there is room
    right: bool = False
    sort_key: str = ""  # the key (shift+letter) that sorts by it


def counts_title() -> str:
    g = glyphs.G
    return f"{g.ok} {g.failed} /TOTAL"


COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", 8, 100, sort_key="I"),
    Column("status", "STATUS", 11, 90, sort_key="S"),
    Column("task", "TASK", 17, 80, grow=13, sort_key="T"),
    Column("bar", "PROGRESS", 10, 70, grow=4, sort_key="P"),
    Column("counts", "", 17, 60, sort_key="X"),
    Column("duration", "TIME", 7, 50, right=True, sort_key="D"),
    Column("rate", "RATE", 7, 40, right=True, sort_key="R"),
    Column("start", "STARTED", 11, 30, sort_key="C"),
    Column("account", "ACCOUNT", 8, 20, sort_key="A"),
    Column("file", "FILE", 10, 10, grow=20, sort_key="N"),
)
MARK_WIDTH = 1  # the mark of a job marked for a bulk action, before its id


def layout_columns(width: int) -> list[tuple[Column, int]]:
    """The columns that fit in ``width`` (one space between them, the mark cell first), in display
    order, with widths."""
    chosen: list[Column] = []
    used = MARK_WIDTH
    for col in sorted(COLUMNS, key=lambda c: -c.priority):
        if used + 1 + col.width <= width:
            chosen.append(col)
            used += 1 + col.width
    spare = max(0, width - used)
    widths = {}
    for col in COLUMNS:
        if col in chosen:
            extra = min(col.grow, spare)
            spare -= extra
            widths[col.key] = col.width + extra
    return [(col, widths[col.key]) for col in COLUMNS if col in chosen]


class JobList(ScrollView, can_focus=True):
    """The jobs, one per line, with a header line; a cursor row; pages rows on demand."""

    HELP_NAME = "The list"

    BINDINGS: ClassVar[list[BindingType]] = [
        *line_keys("cursor_up", "cursor_down"),
        *page_keys("page_up", "page_down"),
        *end_keys("first", "last", ("First", "Last")),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "job-list--header",
        "job-list--sorted",
        "job-list--cursor",
        "job-list--cursor-blurred",
        "job-list--marked",
        "job-list--dim",
        "job-list--plain",
        "job-list--bar-done",
        "job-list--bar-failed",
        "job-list--bar-todo",
        "job-list--pending",
        "job-list--queued",
        "job-list--executing",
        "job-list--stopping",
        "job-list--success",
        "job-list--failure",
        "job-list--partial",
        "job-list--stopped",
        "job-list--internal_error",
    }

    DEFAULT_CSS = """
    JobList {
        height: 1fr;
        overflow: hidden hidden;
        scrollbar-size: 0 0;
    }
    JobList > .job-list--header { text-style: bold underline; }
    JobList > .job-list--sorted { text-style: bold underline reverse; }
    JobList > .job-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    JobList > .job-list--cursor-blurred { text-style: reverse; }
    JobList > .job-list--marked { color: $accent; text-style: bold; }
    JobList > .job-list--dim { color: $text-muted; }
    JobList > .job-list--plain { color: $foreground; }
    JobList > .job-list--bar-done { color: $success; }
    JobList > .job-list--bar-failed { color: $error; }
    JobList > .job-list--bar-todo { color: $text-muted; }
    JobList > .job-list--pending { color: $text-muted; }
    JobList > .job-list--queued { color: $secondary; }
    JobList > .job-list--executing { color: $primary; text-style: bold; }
    JobList > .job-list--stopping { color: $warning; text-style: bold; }
    JobList > .job-list--success { color: $success; }
    JobList > .job-list--failure { color: $error; text-style: bold; }
    JobList > .job-list--partial { color: $warning; }
    JobList > .job-list--stopped { color: $warning; }
    JobList > .job-list--internal_error { color: $error; text-style: bold reverse; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    @dataclass
    class Highlighted(Message):
        job_list: JobList
        job: JobRecord | None

    @dataclass
    class Selected(Message):
        job_list: JobList
        job: JobRecord

    @dataclass
    class Reloaded(Message):
        """The list read its source again: ``total`` rows (what the count line says)."""

        job_list: JobList
        total: int

    def __init__(
        self,
        source: JobSource,
        *,
        now: Callable[[], float],
        live: Callable[[str], JobProgressed | None] = lambda job_id: None,
        marked: Callable[[str], bool] = lambda job_id: False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.source = source
        self.now = now
        self.live = live
        self.marked = marked
        self.total = 0
        self.sort_column: str | None = None  # the column key the list is sorted by (header mark)
        self.sort_descending = False
        self._blocks: dict[int, list[JobRecord]] = {}
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        self._highlighted_id: str | None = None
        self._painted: dict[int, Strip] = {}  # row index -> what its line shows now
        self._pending: dict[int, Strip] = {}  # row index -> what its next paint shows
        # (on the cursor, focused) -> (the row's base style, component -> its style). Textual
        # drops its own cache of component styles at every refresh(), and the rows of running jobs
        # are refreshed several times a second: working the styles out again for each cell was
        # the larger part of painting a row. Styles change only through CSS (a theme, focus), which
        # calls notify_style_update: the cache is emptied there.
        self._styles: dict[tuple[bool, bool], tuple[Style, dict[str, Style]]] = {}
        self.loaded = False
        self.empty_note: str | None = None  # what an empty list says (None: the default)

    # ------------------------------------------------------------- data

    def set_source(self, source: JobSource, *, keep_cursor: bool = False) -> None:
        self.source = source
        if not keep_cursor:
            self.set_reactive(JobList.cursor, 0)
            self.scroll_to(y=0, animate=False)
        self.reload()

    def set_sort(self, column: str | None, descending: bool) -> None:
        if (column, descending) != (self.sort_column, self.sort_descending):
            self.sort_column, self.sort_descending = column, descending
            self.refresh(Region(0, 0, self.size.width, 1))

    def reload(self) -> None:
        """Re-read the count and the visible rows; repaint only the cells that changed.

        The cursor stays on the same job when it is still near where it was, else on the same line.
        """
        previous = self._highlighted_id
        old_total = self.total
        self.total = self.source.count()
        self._blocks.clear()
        self.loaded = True
        if self.virtual_size.height != self.total + 1:
            self.virtual_size = Size(self.size.width, self.total + 1)
        cursor = min(self.cursor, max(0, self.total - 1))
        if previous is not None and self.total:
            lo = max(0, cursor - BLOCK)
            for i, job in enumerate(self._rows(lo, min(self.total, cursor + BLOCK) - lo), start=lo):
                if job.id == previous:
                    cursor = i
                    break
        self.set_reactive(JobList.cursor, cursor)
        top = int(self.scroll_offset.y)
        self._scroll_cursor_into_view()
        if int(self.scroll_offset.y) != top:
            self.refresh()
        else:
            for index in range(top, top + max(0, self.size.height - 1)):
                self.refresh_row(index)
            if self.total != old_total and (self.total == 0 or old_total == 0):
                self.refresh()  # the empty list's note comes or goes
        self._announce()
        self.post_message(self.Reloaded(self, self.total))

    def _rows(self, start: int, count: int) -> list[JobRecord]:
        out = []
        for i in range(start, start + count):
            job = self.row(i)
            if job is not None:
                out.append(job)
        return out

    def row(self, index: int) -> JobRecord | None:
        if index < 0 or index >= self.total:
            return None
        block_no, pos = divmod(index, BLOCK)
        block = self._blocks.get(block_no)
        if block is None:
            if len(self._blocks) >= MAX_BLOCKS:
                self._blocks.clear()
            block = list(self.source.page(block_no * BLOCK, BLOCK))
            self._blocks[block_no] = block
        return block[pos] if pos < len(block) else None

    def cached(self, job_id: str) -> JobRecord | None:
        """The record of a job in the rows read, if it is there."""
        for block in self._blocks.values():
            for record in block:
                if record.id == job_id:
                    return record
        return None

    def update_record(self, job: JobRecord, *, repaint: bool = True) -> JobRecord | None:
        """Replace a cached record in place (same position); the record it replaced, or None if
        the job is not cached. ``repaint=False``: the caller repaints (once for all its changes,
        see :meth:`refresh_jobs`)."""
        for block_no, block in self._blocks.items():
            for pos, cached in enumerate(block):
                if cached.id == job.id:
                    block[pos] = job
                    if repaint:
                        self.refresh_row(block_no * BLOCK + pos)
                    return cached
        return None

    def visible_range(self) -> range:
        top = int(self.scroll_offset.y)
        return range(top, min(self.total, top + max(0, self.size.height - 1)))

    def refresh_jobs(self, job_ids: set[str] | frozenset[str]) -> None:
        """Repaint the lines of these jobs if they are on screen (live progress)."""
        for index in self.visible_range():
            job = self.row(index)
            if job is not None and job.id in job_ids:
                self.refresh_row(index)

    def refresh_row(self, index: int) -> None:
        """Repaint the cells of a row that changed (nothing when it looks the same)."""
        top = int(self.scroll_offset.y)
        y = index - top + 1
        if not 1 <= y < self.size.height or self._layout_width != self.size.width:
            return
        strip = self._line(index, self.size.width)
        span = changed_span(self._painted.get(index), strip)
        if span is None:
            return
        self._pending[index] = strip
        self.refresh(Region(span[0], y, span[1] - span[0], 1))

    @property
    def highlighted(self) -> JobRecord | None:
        return self.row(self.cursor)

    # ---------------------------------------------------------- cursor

    def _scroll_cursor_into_view(self) -> None:
        rows = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def watch_cursor(self, old: int, new: int) -> None:
        top = int(self.scroll_offset.y)
        self._scroll_cursor_into_view()
        if int(self.scroll_offset.y) != top:
            self.refresh()
        else:
            self.refresh_row(old)
            self.refresh_row(new)
        self._announce()

    def _announce(self) -> None:
        job = self.highlighted
        job_id = job.id if job is not None else None
        if job_id != self._highlighted_id:
            self._highlighted_id = job_id
            self.post_message(self.Highlighted(self, job))

    def move_to(self, index: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, index))

    def action_cursor_up(self) -> None:
        self.move_to(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1)

    def action_page_up(self) -> None:
        self.move_to(self.cursor - max(1, self.size.height - 2))

    def action_page_down(self) -> None:
        self.move_to(self.cursor + max(1, self.size.height - 2))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(self.total - 1)

    def action_select(self) -> None:
        job = self.highlighted
        if job is not None:
            self.post_message(self.Selected(self, job))

    def _on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_to(int(self.scroll_offset.y) + event.y - 1)

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.move_to(self.cursor + 3)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.move_to(self.cursor - 3)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.total + 1)
        self._painted.clear()
        self._pending.clear()
        self._scroll_cursor_into_view()

    def on_focus(self) -> None:
        self._styles.clear()
        self.refresh_row(self.cursor)

    def on_blur(self) -> None:
        self._styles.clear()
        self.refresh_row(self.cursor)

    def notify_style_update(self) -> None:
        self._painted.clear()
        self._pending.clear()
        self._styles.clear()
        super().notify_style_update()

    def _row_styles(self, on_cursor: bool) -> tuple[Style, dict[str, Style]]:
        """The base style of a row and its cache of component styles (see ``_styles``)."""
        key = (on_cursor, on_cursor and self.has_focus)
        styles = self._styles.get(key)
        if styles is None:
            base = self.rich_style
            if on_cursor:
                base = base + self.get_component_rich_style(
                    "job-list--cursor" if self.has_focus else "job-list--cursor-blurred"
                )
            styles = self._styles[key] = (base, {})
        return styles

    # ------------------------------------------------------------ paint

    def _ensure_layout(self, width: int) -> None:
        if width != self._layout_width:
            self._layout = layout_columns(width)
            self._layout_width = width
            self._painted.clear()
            self._pending.clear()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        self._ensure_layout(width)
        if y == 0:
            return self._header_strip(width)
        index = int(self.scroll_offset.y) + y - 1
        strip = self._pending.pop(index, None)
        if strip is None:
            strip = self._line(index, width)
        self._painted[index] = strip
        return strip

    def _line(self, index: int, width: int) -> Strip:
        job = self.row(index)
        if job is None:
            base = self._row_styles(False)[0]
            if index == 0 and self.loaded and self.total == 0:
                note = self.empty_note or "  no jobs yet (n creates one)"
                return Strip([Segment(fit(note, width), base + self.get_component_rich_style("job-list--dim"))], width)
            return Strip.blank(width, base)
        return self._row_strip(job, index, width)

    def _header_strip(self, width: int) -> Strip:
        style = self.rich_style + self.get_component_rich_style("job-list--header")
        sorted_style = self.rich_style + self.get_component_rich_style("job-list--sorted")
        g = glyphs.G
        segments = [Segment(" " * MARK_WIDTH, style)]
        for col, w in self._layout:
            segments.append(Segment(" ", style))
            title = col.title or counts_title()
            if col.key == self.sort_column:
                title = f"{title}{g.sort_down if self.sort_descending else g.sort_up}"
                segments.append(Segment(fit(title, w) if not col.right else title.rjust(w)[-w:], sorted_style))
            else:
                segments.append(Segment(fit(title, w) if not col.right else title.rjust(w)[-w:], style))
        return Strip(segments).crop_extend(0, width, style)

    def _row_strip(self, job: JobRecord, index: int, width: int) -> Strip:
        on_cursor = index == self.cursor
        base, tints = self._row_styles(on_cursor)

        def tint(component: str) -> Style:
            style = tints.get(component)
            if style is None:
                # Colours stay off the cursor line: on its inverted background they would be unreadable.
                style = base if on_cursor else base + self.get_component_rich_style(component, partial=True)
                tints[component] = style
            return style

        g = glyphs.G
        marked = self.marked(job.id)
        live = self.live(job.id)
        now = self.now()
        success, failure, total, done = fmt.live_counts(job, live)
        state = fmt.display_status(job)
        segments: list[Segment] = [Segment(g.marked if marked else " ", tint("job-list--marked"))]
        for col, w in self._layout:
            segments.append(Segment(" ", base))
            key = col.key
            if key == "bar":
                segments.extend(self._bar_segments(success, failure, total, done, job.status.is_finished, w, tint))
                continue
            style = base
            if key == "id":
                text = job.id[:8]
                if marked:
                    style = tint("job-list--marked")
            elif key == "status":
                text = fmt.status_label(state)
                style = tint(f"job-list--{state}")
            elif key == "task":
                text = job.task_name
            elif key == "counts":
                tot = "" if total is None else f" /{fmt.compact_number(total)}"
                text = f"{g.ok}{fmt.compact_number(success)} {g.failed}{fmt.compact_number(failure)}{tot}"
                if failure:
                    style = tint("job-list--failure")
            elif key == "duration":
                text = fmt.duration(fmt.job_elapsed(job, now))
                if job.start_timestamp is None:
                    style = tint("job-list--dim")
            elif key == "rate":
                text = fmt.rate(fmt.job_rate(job, live, now)) if job.start_timestamp else "-"
                if job.start_timestamp is None:
                    style = tint("job-list--dim")
            elif key == "start":
                text = fmt.short_time(job.start_timestamp or job.created, now)
                if job.start_timestamp is None:
                    style = tint("job-list--dim")
            elif key == "account":
                text = job.account_id[:8]
            elif key == "file":
                text = job.file_name or "-"
            else:  # pragma: no cover - every column is handled above
                text = ""
            segments.append(Segment(text.rjust(w)[-w:] if col.right else fit(text, w), style))
        return Strip(segments).crop_extend(0, width, base)

    def _bar_segments(
        self,
        success: int,
        failure: int,
        total: int | None,
        done: int,
        finished: bool,
        width: int,
        tint: Callable[[str], Style],
    ) -> list[Segment]:
        g = glyphs.G
        bar_w = max(1, width - 5)
        cells = fmt.bar_cells(success, failure, total, done, finished, bar_w)
        label = f"{int(min(1.0, done / total) * 100):>3}%" if total else "    "
        if cells is None:
            return [
                Segment(g.bar_todo * bar_w, tint("job-list--bar-todo")),
                Segment(" " + label, tint("job-list--plain")),
            ]
        good, bad, todo = cells
        return [
            Segment(g.bar_done * good, tint("job-list--bar-done")),
            Segment(g.bar_failed * bad, tint("job-list--bar-failed")),
            Segment(g.bar_todo * todo, tint("job-list--bar-todo")),
            Segment(" " + label, tint("job-list--plain")),
        ]
