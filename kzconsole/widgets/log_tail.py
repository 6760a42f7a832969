"""A job's log tail: the end of its log, then what is appended to it (``tail -f``).

The log is read through the engine (``Engine.read_log(job, start)``, which gives the bytes from an
offset and the offset to ask next time), never by path. It is the single source: it holds the
plugin's ``ctx.log`` lines, its prints and the engine's own lines about the job, including those
written before the view opened or by another process. ``JobLogged`` events only tell *when* to read,
so a line is never shown twice nor missed, however events and reads interleave.

The view keeps the last ``max_lines`` lines and says so (``dropped``); ``g`` goes to the first line
kept, ``G`` to the end, following again.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.binding import Binding
from textual.widgets import Log

MAX_LINES = 5_000

LogReader = Callable[[int], tuple[bytes, int]]  # offset -> (bytes from it, next offset)


class LogTail(Log):
    DEFAULT_CSS = """
    LogTail { height: 1fr; }
    """

    BINDINGS = [
        Binding("home,g", "top", "First line", show=False, tooltip="the first line kept (stops following)"),
        Binding("end,G", "follow", "Follow", show=False, tooltip="the last line, and follow new ones (tail -f)"),
    ]

    def __init__(
        self,
        reader: LogReader | None = None,
        *,
        max_lines: int = MAX_LINES,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, highlight=False, id=id, classes=classes)
        self.reader = reader
        self.keep = max_lines
        self._offset = 0
        self._partial = b""
        self.lines_read = 0

    @property
    def dropped(self) -> int:
        """Lines read but no longer kept (the log is longer than ``max_lines``)."""
        return max(0, self.lines_read - self.keep)

    @property
    def following(self) -> bool:
        return self.auto_scroll

    def poll(self) -> int:
        """Append whatever the log gained since the last call; return how many lines."""
        if self.reader is None:
            return 0
        try:
            data, self._offset = self.reader(self._offset)
        except OSError:
            return 0
        if not data:
            return 0
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        if not complete:
            return 0
        if len(complete) > self.keep:
            self.lines_read += len(complete) - self.keep
            complete = complete[-self.keep :]
        lines = [line.decode("utf-8", "replace").rstrip("\r") for line in complete]
        self.write_lines(lines)
        self.lines_read += len(lines)
        return len(lines)

    def action_top(self) -> None:
        self.auto_scroll = False
        self.scroll_home(animate=False)

    def action_follow(self) -> None:
        self.auto_scroll = True
        self.scroll_end(animate=False)

    def action_scroll_up(self) -> None:
        self.auto_scroll = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.auto_scroll = False
        super().action_page_up()
