"""The job list: a virtual list that pages its rows from the store and paints only visible lines.

A ``DataTable`` measures every cell before its first paint (15 s at 100,000 jobs here), so this is
a line-API :class:`~textual.scroll_view.ScrollView`: it knows how many jobs there are
(``count_jobs``), fetches the blocks of rows it is about to paint (``list_jobs`` with
``limit``/``offset``), and keeps a few blocks cached. Live progress is painted over the cached
records without touching the store, one line at a time.

Where the rows come from is a :class:`JobSource`; the jobs screen picks one for the filter and the
sort in force (the store itself when it can answer, a scan otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kzconsole.widgets import fmt

BLOCK = 64  # rows fetched per store query
MAX_BLOCKS = 48  # cached blocks (about 3,000 records) before the cache is emptied


class JobSource(Protocol):
    """Rows for the list, in display order."""

    def count(self) -> int: ...

    def page(self, offset: int, limit: int) -> Sequence[Any]: ...


class StoreSource:
    """Jobs straight from the store, newest (or oldest) first, narrowed by status, account, a piece
    of the task name and an id prefix."""

    def __init__(self, engine: Any, *, statuses: Sequence[str] | None = None,
                 account_id: str | None = None, task: str | None = None, id_prefix: str | None = None,
                 oldest_first: bool = False) -> None:
        self.engine = engine
        self.statuses = list(statuses) if statuses else None
        self.narrowing = {"account_id": account_id, "task": task, "id_prefix": id_prefix}
        self.oldest_first = oldest_first
        self._total = 0

    def count(self) -> int:
        self._total = self.engine.count_jobs(status=self.statuses, **self.narrowing)
        return self._total

    def page(self, offset: int, limit: int) -> Sequence[Any]:
        if not self.oldest_first:
            return self.engine.list_jobs(status=self.statuses, limit=limit, offset=offset, **self.narrowing)
        # Oldest first is the newest-first order read from its end.
        start = max(0, self._total - offset - limit)
        size = max(0, min(limit, self._total - offset))
        rows = self.engine.list_jobs(status=self.statuses, limit=size, offset=start, **self.narrowing)
        return list(reversed(rows))


class GroupedSource:
    """Several store sources one after the other (the sort by status: running jobs first)."""

    def __init__(self, parts: Sequence[StoreSource]) -> None:
        self.parts = list(parts)
        self._counts: list[int] = [0] * len(self.parts)

    def count(self) -> int:
        self._counts = [part.count() for part in self.parts]
        return sum(self._counts)

    def page(self, offset: int, limit: int) -> Sequence[Any]:
        out: list[Any] = []
        for part, size in zip(self.parts, self._counts):
            if limit <= 0:
                break
            if offset >= size:
                offset -= size
                continue
            rows = part.page(offset, min(limit, size - offset))
            out.extend(rows)
            limit -= len(rows)
            offset = 0
        return out


class MemorySource:
    """Records already in memory (the result of a filter the store cannot answer)."""

    def __init__(self, records: Sequence[Any]) -> None:
        self.records = list(records)

    def count(self) -> int:
        return len(self.records)

    def page(self, offset: int, limit: int) -> Sequence[Any]:
        return self.records[offset:offset + limit]

    def replace(self, record: Any) -> None:
        for i, r in enumerate(self.records):
            if r.id == record.id:
                self.records[i] = record
                return


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # minimum width
    priority: int  # higher stays longer when the terminal is narrow
    grow: int = 0  # extra cells it may take when there is room
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", 8, 100),
    Column("status", "STATUS", 11, 90),
    Column("task", "TASK", 12, 80, grow=18),
    Column("bar", "PROGRESS", 14, 70),
    Column("counts", "✔ ✖ /TOTAL", 16, 60),
    Column("duration", "TIME", 7, 50, right=True),
    Column("rate", "RATE", 7, 40, right=True),
    Column("start", "STARTED", 11, 30),
    Column("account", "ACCOUNT", 8, 20),
    Column("file", "FILE", 10, 10, grow=20),
)


def layout_columns(width: int) -> list[tuple[Column, int]]:
    """The columns that fit in ``width`` (one space between them), in display order, with widths."""
    chosen: list[Column] = []
    used = -1
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


def _fit(text: str, width: int, right: bool = False) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…" if width > 1 else text[:width]
    return text.rjust(width) if right else text.ljust(width)


class JobList(ScrollView, can_focus=True):
    """The jobs, one per line, with a header line; a cursor row; pages rows on demand."""

    HELP_NAME = "The list"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "job-list--header",
        "job-list--cursor",
        "job-list--cursor-blurred",
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
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    JobList > .job-list--header { text-style: bold underline; }
    JobList > .job-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    JobList > .job-list--cursor-blurred { text-style: reverse; }
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

    class Highlighted(Message):
        def __init__(self, job_list: "JobList", job: Any | None) -> None:
            super().__init__()
            self.job_list = job_list
            self.job = job

    class Selected(Message):
        def __init__(self, job_list: "JobList", job: Any) -> None:
            super().__init__()
            self.job_list = job_list
            self.job = job

    def __init__(
        self,
        source: JobSource,
        *,
        now: Callable[[], float],
        live: Callable[[str], Any | None] = lambda job_id: None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.source = source
        self.now = now
        self.live = live
        self.total = 0
        self._blocks: dict[int, list[Any]] = {}
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        self._highlighted_id: str | None = None
        self.loaded = False
        self.empty_note: str | None = None  # what an empty list says (None: the default)

    # ------------------------------------------------------------- data

    def set_source(self, source: JobSource, *, keep_cursor: bool = False) -> None:
        self.source = source
        if not keep_cursor:
            self.set_reactive(JobList.cursor, 0)
            self.scroll_to(y=0, animate=False)
        self.reload()

    def reload(self) -> None:
        """Re-read the count and the visible rows; repaint only the lines that changed.

        The cursor stays on the same job when it is still near where it was, else on the same line.
        A live list reloads a few times a second while jobs run: repainting 40 unchanged lines each
        time would cost the UI thread (and a slow SSH link) for nothing.
        """
        previous = self._highlighted_id
        before = {i: self._cached(i) for i in self.visible_range()}
        old_total = self.total
        self.total = self.source.count()
        self._blocks.clear()
        self.loaded = True
        if self.total != old_total or self.virtual_size.height != self.total + 1:
            self.virtual_size = Size(self.size.width, self.total + 1)
        cursor = min(self.cursor, max(0, self.total - 1))
        if previous is not None and self.total:
            lo = max(0, cursor - BLOCK)
            for i, job in enumerate(self._rows(lo, min(self.total, cursor + BLOCK) - lo), start=lo):
                if job.id == previous:
                    cursor = i
                    break
        moved = cursor != self.cursor
        self.set_reactive(JobList.cursor, cursor)
        self._scroll_cursor_into_view()
        if moved or self.total != old_total or not before:
            self.refresh()
        else:
            for index in self.visible_range():
                if self.row(index) != before.get(index):
                    self.refresh_row(index)
        self._announce()

    def _cached(self, index: int) -> Any | None:
        block = self._blocks.get(index // BLOCK)
        pos = index % BLOCK
        return block[pos] if block is not None and pos < len(block) else None

    def _rows(self, start: int, count: int) -> list[Any]:
        out = []
        for i in range(start, start + count):
            job = self.row(i)
            if job is not None:
                out.append(job)
        return out

    def row(self, index: int) -> Any | None:
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

    def update_record(self, job: Any) -> bool:
        """Replace a cached record in place (same position); True if it is cached."""
        for block_no, block in self._blocks.items():
            for pos, cached in enumerate(block):
                if cached.id == job.id:
                    block[pos] = job
                    self.refresh_row(block_no * BLOCK + pos)
                    return True
        return False

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
        top = int(self.scroll_offset.y)
        y = index - top + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    @property
    def highlighted(self) -> Any | None:
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
        self._scroll_cursor_into_view()
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

    def _on_click(self, event: Any) -> None:
        y = event.y
        if y >= 1:
            self.move_to(int(self.scroll_offset.y) + y - 1)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.total + 1)
        self._scroll_cursor_into_view()

    def on_focus(self) -> None:
        self.refresh_row(self.cursor)

    def on_blur(self) -> None:
        self.refresh_row(self.cursor)

    # ------------------------------------------------------------ paint

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._layout_width:
            self._layout = layout_columns(width)
            self._layout_width = width
        if y == 0:
            return self._header_strip(width)
        index = int(self.scroll_offset.y) + y - 1
        job = self.row(index)
        if job is None:
            if index == 0 and self.loaded and self.total == 0:
                note = self.empty_note or "  no jobs here (n creates one, / filters)"
                return Strip([Segment(_fit(note, width),
                                      self.get_component_rich_style("job-list--dim"))], width)
            return Strip.blank(width, self.rich_style)
        return self._row_strip(job, index, width)

    def _header_strip(self, width: int) -> Strip:
        style = self.rich_style + self.get_component_rich_style("job-list--header")
        text = " ".join(_fit(col.title, w, col.right) for col, w in self._layout)
        return Strip([Segment(_fit(text, width), style)], width)

    def _row_strip(self, job: Any, index: int, width: int) -> Strip:
        base = self.rich_style
        on_cursor = index == self.cursor
        if on_cursor:
            cls = "job-list--cursor" if self.has_focus else "job-list--cursor-blurred"
            base = base + self.get_component_rich_style(cls)

        def tint(component: str) -> Style:
            # Colours stay off the cursor line: on its inverted background they would be unreadable.
            return base if on_cursor else base + self.get_component_rich_style(component, partial=True)

        live = self.live(job.id)
        now = self.now()
        success, failure, total, done = fmt.live_counts(job, live)
        state = fmt.display_status(job)
        segments: list[Segment] = []
        for n, (col, w) in enumerate(self._layout):
            if n:
                segments.append(Segment(" ", base))
            key = col.key
            if key == "bar":
                segments.extend(self._bar_segments(success, failure, total, done, state, w, tint))
                continue
            style = base
            if key == "id":
                text = job.id[:8]
            elif key == "status":
                text = fmt.status_label(state)
                style = tint(f"job-list--{state}")
            elif key == "task":
                text = job.task_name
            elif key == "counts":
                tot = "" if total is None else f" /{fmt.compact_number(total)}"
                text = f"✔{fmt.compact_number(success)} ✖{fmt.compact_number(failure)}{tot}"
                if failure:
                    style = tint("job-list--failure")
            elif key == "duration":
                text = fmt.duration(fmt.job_elapsed(job, now))
            elif key == "rate":
                text = fmt.rate(fmt.job_rate(job, live, now)) if job.start_timestamp else "-"
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
            segments.append(Segment(_fit(text, w, col.right), style))
        used = sum(seg.cell_length for seg in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        return Strip(segments, width)

    def _bar_segments(self, success: int, failure: int, total: int | None, done: int, state: str,
                      width: int, tint: Callable[[str], Style]) -> list[Segment]:
        label_w = 4
        bar_w = max(1, width - label_w - 1)
        if total:
            fraction = min(1.0, done / total)
            label = f"{int(fraction * 100):>3}%"
        elif state in ("success", "failure", "partial") or total == 0:
            fraction, label = 1.0, "    "
        else:
            fraction, label = None, "    "
        if fraction is None:
            return [Segment("░" * bar_w, tint("job-list--bar-todo")), Segment(" " + label, tint("job-list--plain"))]
        full = int(round(fraction * bar_w))
        bad = 0
        if done and failure:
            bad = min(full, max(1, int(round(full * failure / done))))
        good = full - bad
        return [
            Segment("█" * good, tint("job-list--bar-done")),
            Segment("█" * bad, tint("job-list--bar-failed")),
            Segment("░" * (bar_w - full), tint("job-list--bar-todo")),
            Segment(" " + label, tint("job-list--plain")),
        ]
