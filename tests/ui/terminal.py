"""The console in a real terminal: a pseudo-terminal of a given size, the bytes it receives timed.

Pilot runs the console headless: nothing is rendered for a terminal, so what an SSH link would
carry cannot be seen there. :class:`Terminal` runs ``kzconsole`` on a pty with Textual's real
driver, as tmux would (``tmux pipe-pane`` records the same bytes), sends keys as a terminal does,
and records every byte the console writes with the time it arrived. Used by the tests of what the
console sends (tests/ui/test_terminal.py) and by bench/bench_console.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path

_ESCAPES = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMNOPZc])")

KEYS = {
    "enter": "\r",
    "escape": "\x1b",
    "tab": "\t",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "ctrl+q": "\x11",
    "ctrl+c": "\x03",
    "space": " ",
    "pagedown": "\x1b[6~",
}


def plain(data: bytes) -> str:
    """What the bytes say without escape sequences."""
    return _ESCAPES.sub(b"", data).decode("utf-8", "replace")


class Terminal:
    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: str | Path | None = None,
        size: tuple[int, int] = (100, 30),
        env: dict[str, str] | None = None,
    ) -> None:
        self.size = size
        environment = dict(os.environ if env is None else env)
        environment.setdefault("TERM", "xterm-256color")
        environment.pop("NO_COLOR", None)
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its terminal
            try:
                cols, rows = size
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                if cwd is not None:
                    os.chdir(cwd)
                os.execvpe(args[0], list(args), environment)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self._chunks: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="terminal-reader", daemon=True)
        self._reader.start()

    @classmethod
    def console(
        cls, data_dir: str | Path, *extra: str, size: tuple[int, int] = (100, 30), env: dict[str, str] | None = None
    ) -> Terminal:
        return cls([sys.executable, "-m", "kzconsole", "--data-dir", str(data_dir), *extra], size=size, env=env)

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._chunks.append((time.monotonic(), data))

    # ------------------------------------------------------------------ input

    def press(self, *keys: str) -> None:
        for key in keys:
            os.write(self.fd, KEYS.get(key, key).encode())
            # A person's typing; after a lone escape, more than the terminal's escape-sequence
            # timeout, or the next key reads as alt+key.
            time.sleep(0.3 if key == "escape" else 0.05)

    def resize(self, cols: int, rows: int) -> None:
        """Change the terminal's size, as a window resize does (the console repaints everything)."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)
        self.size = (cols, rows)

    # ----------------------------------------------------------------- output

    def received(self, since: float = 0.0, until: float | None = None) -> bytes:
        with self._lock:
            return b"".join(d for t, d in self._chunks if t >= since and (until is None or t < until))

    def text(self) -> str:
        return plain(self.received())

    def wait_for(self, words: str, timeout: float = 30.0, since: float = 0.0) -> None:
        """Wait until the console has written ``words`` (escape sequences left out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if words in plain(self.received(since)).replace("\r", "").replace("\n", ""):
                return
            time.sleep(0.05)
        raise AssertionError(f"the console never wrote {words!r}; it wrote: {plain(self.received(since))[-2000:]!r}")

    def quiet_for(self, seconds: float, timeout: float = 30.0) -> None:
        """Wait until nothing arrived for ``seconds`` (the screen settled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = self._chunks[-1][0] if self._chunks else 0.0
            if time.monotonic() - last >= seconds:
                return
            time.sleep(0.05)
        raise AssertionError(f"the console did not settle within {timeout} s")

    def measure(self, seconds: float) -> int:
        """Bytes received over the next ``seconds``."""
        start = time.monotonic()
        time.sleep(seconds)
        return len(self.received(start, start + seconds))

    def close(self) -> None:
        try:
            self.press("ctrl+q")
            for _ in range(100):
                done, _status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (OSError, ChildProcessError):
            pass
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self._reader.join(2)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
