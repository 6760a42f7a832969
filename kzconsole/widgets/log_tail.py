"""A job's log tail: the end of its log file, then what is appended to it.

The file is the single source: it holds the plugin's ``ctx.log`` lines, its prints and the engine's
own lines about the job, including those written before the view opened or by another process.
``JobLogged`` events only tell *when* to read (the screen calls :meth:`LogTail.poll`), so a line is
never shown twice nor missed, however events and reads interleave.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Log

TAIL_BYTES = 256 * 1024  # how far back the first read goes
MAX_LINES = 5_000


class LogTail(Log):
    DEFAULT_CSS = """
    LogTail { height: 1fr; }
    """

    def __init__(self, path: Path | None = None, *, max_lines: int = MAX_LINES,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id, classes=classes)
        self.path = path
        self._offset = 0
        self._partial = b""
        self._inode: int | None = None
        self.lines_read = 0

    def set_path(self, path: Path | None) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._inode = None
        self.clear()
        self.poll()

    def poll(self) -> int:
        """Append whatever the file gained since the last call; return how many lines."""
        if self.path is None:
            return 0
        try:
            st = os.stat(self.path)
        except OSError:
            return 0
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self._offset):
            # Replaced or truncated (a restarted job writes a new file): start again.
            self._offset, self._partial = 0, b""
            self.clear()
        self._inode = st.st_ino
        if st.st_size == self._offset:
            return 0
        first = self._offset == 0 and not self.lines_read
        try:
            with open(self.path, "rb") as f:
                start = self._offset
                if first and st.st_size > TAIL_BYTES:
                    start = st.st_size - TAIL_BYTES
                f.seek(start)
                data = f.read(max(0, st.st_size - start))
        except OSError:
            return 0
        self._offset = start + len(data)
        if first and start > 0:
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # drop the cut first line
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        if not complete:
            return 0
        lines = [line.decode("utf-8", "replace").rstrip("\r") for line in complete]
        self.write_lines(lines)
        self.lines_read += len(lines)
        return len(lines)
