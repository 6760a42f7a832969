"""The console's symbols, and their plain ASCII fallback.

With a UTF-8 locale the console draws ``✔ ✖ ◐ ◷ ⚠ ▶ ■`` and block bars; a terminal in another
locale (``LANG=C``, an old serial console) shows those as garbage, so the console then draws plain
ASCII, as it does with ``--ascii``. Two layers:

- the console's own symbols come from :data:`G`, switched by :func:`use_ascii` before the first
  paint (statuses keep their one-cell width, so columns line up in both modes);
- everything else on the screen (Textual's borders, scrollbars, tree guides, a plugin's text) goes
  through :func:`to_ascii` on its way to the terminal (see ``KzConsoleApp.get_driver_class``):
  box-drawing and block characters become ``+ - | #``, anything else not ASCII becomes ``?``,
  one per cell, so the layout never shifts.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from rich.cells import cell_len


@dataclass(frozen=True)
class Glyphs:
    ok: str
    failed: str
    partial: str
    queued: str
    pending: str
    executing: str
    stopped: str
    warning: str
    newline: str  # a line break inside a CSV cell
    ellipsis: str
    engine_on: str
    bar_done: str
    bar_failed: str
    bar_todo: str
    marked: str  # a job marked for a bulk action
    arrow: str  # "and then", in breadcrumbs
    sort_up: str
    sort_down: str
    more_left: str  # columns hidden to the left
    more_right: str  # columns hidden to the right


# Each symbol once, with its ASCII stand-in beside it: (UTF-8, ASCII).
_VARIANTS = {
    "ok": ("✔", "+"),
    "failed": ("✖", "x"),
    "partial": ("◐", "~"),
    "queued": ("◷", "o"),
    "pending": ("·", "."),
    "executing": ("▶", ">"),
    "stopped": ("■", "#"),
    "warning": ("⚠", "!"),
    "newline": ("⏎", "|"),
    "ellipsis": ("…", "~"),
    "engine_on": ("●", "*"),
    "bar_done": ("█", "="),
    "bar_failed": ("█", "x"),
    "bar_todo": ("░", "."),
    "marked": ("●", "*"),
    "arrow": ("›", ">"),
    "sort_up": ("▲", "^"),
    "sort_down": ("▼", "v"),
    "more_left": ("←", "<"),
    "more_right": ("→", ">"),
}
UNICODE = Glyphs(**{name: pair[0] for name, pair in _VARIANTS.items()})
ASCII = Glyphs(**{name: pair[1] for name, pair in _VARIANTS.items()})

G: Glyphs = UNICODE


def use_ascii(on: bool) -> None:
    """Switch the console's symbols (call before the first paint)."""
    global G
    G = ASCII if on else UNICODE


def ascii_mode() -> bool:
    return G is ASCII


def locale_is_utf8(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user's locale says the terminal takes UTF-8 (``LC_ALL``, else ``LC_CTYPE``,
    else ``LANG``). Python itself sets ``LC_CTYPE=C.UTF-8`` at start-up when the locale is C
    (PEP 538, which also turns on its UTF-8 mode): that value says nothing about the terminal."""
    env = os.environ if environ is None else environ
    coerced = bool(sys.flags.utf8_mode) and "PYTHONUTF8" not in env and "utf8" not in sys._xoptions
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(name)
        if not value:
            continue
        if name == "LC_CTYPE" and coerced and value.lower() in ("c.utf-8", "c.utf8"):
            continue
        value = value.lower()
        return "utf-8" in value or "utf8" in value
    return False


_BOX = {
    # light, heavy, double and rounded box drawing; the scrollbar's and the tabs' lines
    **dict.fromkeys("─━═╌╍┄┅┈┉╼╾", "-"),
    **dict.fromkeys("│┃║╎╏┆┇┊┋╽╿", "|"),
    **dict.fromkeys(
        "┌┐└┘├┤┬┴┼╭╮╯╰┏┓┗┛┣┫┳┻╋╔╗╚╝╠╣╦╩╬┍┎┑┒┕┖┙┚┝┞┟┠┡┢┥┦┧┨┩┪┭┮┯┰┱┲┵┶┷┸┹┺┽┾┿╀╁╂╃╄╅╆╇╈╉╊╒╓╕╖╘╙╛╜╞╟╡╢╤╥╧╨╪╫", "+"
    ),
    # blocks and shades
    **dict.fromkeys("█▉▊▋▌▍▎▏▐▀▄▖▗▘▙▚▛▜▝▞▟▓", "#"),
    **dict.fromkeys("▁▂▃▔", " "),
    **dict.fromkeys("▅▆▇", "#"),
    "▒": ":",
    "░": ".",
    # the console's symbols as the ASCII mode draws them (met in a plugin's text, say); not the
    # bars': their blocks are blocks like the others above
    **{u: a for name, (u, a) in _VARIANTS.items() if not name.startswith("bar_")},
    # Textual's, and other common ones
    "✓": "+",
    "✗": "x",
    "‹": "<",
    "▸": ">",
    "▾": "v",
    "◀": "<",
    "►": ">",
    "↑": "^",
    "↓": "v",
    "•": "*",
    "—": "-",
    "–": "-",
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "×": "x",
    "⌫": "<",
    "⏵": ">",
    "⏷": "v",
}
_TABLE = str.maketrans(_BOX)
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def _placeholder(match: re.Match[str]) -> str:
    return "?" * max(0, cell_len(match.group()))


def to_ascii(text: str) -> str:
    """``text`` with every character outside ASCII replaced, cell for cell (escape sequences
    are ASCII and pass through)."""
    if text.isascii():
        return text
    return _NOT_ASCII.sub(_placeholder, text.translate(_TABLE))
