"""Text that repaints only the cells that changed.

Textual repaints a whole widget when its content is replaced (``Static.update`` also lays the
screen out again), and the terminal receives every cell of it: a job view that updated its record
and its progress five times a second sent 70 KiB/s over SSH for a few changed digits. A
:class:`Lines` widget keeps the strips it painted; :meth:`Lines.update` renders the new content at
the same width, compares it cell by cell with what is on screen, and marks dirty only the span of
each line that differs. Nothing changed: nothing is sent. The number of lines changed: one layout
and a full repaint, as a ``Static`` would.

:func:`changed_span` is also used by the job list to repaint only the changed cells of a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rich.cells import cell_len, get_character_cell_size
from rich.style import Style
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual.widget import Widget


def _cells(strip: Strip) -> Iterator[tuple[str, Style | None]]:
    """Each cell of a strip as (character, style); the second cell of a wide character is ''."""
    for segment in strip:
        if segment.control:
            continue
        style = segment.style
        for char in segment.text:
            yield char, style
            if cell_len(char) == 2:
                yield "", style


def _flat(strip: Strip) -> tuple[str, list[Style | None]] | None:
    """The strip's text and the style of each of its cells, when every character is one cell wide
    (then a cell is a character); None when one is wide."""
    texts: list[str] = []
    styles: list[Style | None] = []
    for segment in strip:
        if segment.control:
            continue
        text = segment.text
        texts.append(text)
        styles += [segment.style] * len(text)
    text = "".join(texts)
    if not text.isascii() and any(get_character_cell_size(c) == 2 for c in set(text) if not c.isascii()):
        return None
    return text, styles


def _common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    """How many leading items ``a`` and ``b`` share, by halving: slices compare in C, where a loop
    over the cells of every repainted row was most of the job list's repaint."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def changed_span(old: Strip | None, new: Strip) -> tuple[int, int] | None:
    """The cells ``[start, end)`` where ``new`` differs from ``old``, or None when they look the same."""
    if old is None:
        return (0, new.cell_length) if new.cell_length else None
    if old is new:
        return None
    flat_a, flat_b = _flat(old), _flat(new)
    if flat_a is not None and flat_b is not None:
        (text_a, styles_a), (text_b, styles_b) = flat_a, flat_b
        if text_a == text_b and styles_a == styles_b:
            return None
        start = min(_common_prefix(text_a, text_b), _common_prefix(styles_a, styles_b))
        room = min(len(text_a), len(text_b)) - start
        same_end = min(_common_prefix(text_a[::-1], text_b[::-1]), _common_prefix(styles_a[::-1], styles_b[::-1]), room)
        end = max(len(text_a), len(text_b)) - same_end
        return (start, max(end, start + 1))
    a = list(_cells(old))
    b = list(_cells(new))
    if a == b:
        return None
    n = min(len(a), len(b))
    start = 0
    while start < n and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    end = max(end_a, end_b)
    # A wide character cut in half would leave half a glyph on screen: widen to whole characters.
    if start > 0 and start < len(b) and b[start][0] == "":
        start -= 1
    if end < len(b) and b[end][0] == "":
        end += 1
    return (start, max(end, start + 1))


_KEEP: Any = object()


class Lines(Widget):
    """Like ``Static``, for content that changes often: :meth:`update` repaints only changed cells."""

    DEFAULT_CSS = """
    Lines { height: auto; }
    """

    def __init__(
        self,
        content: Any = "",
        *,
        markup: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._content = content
        self._markup = markup
        self._strips: list[Strip] = []
        self._built_width = -1
        self._height_cache: tuple[int, int] = (-1, 0)

    @property
    def content(self) -> Any:
        return self._content

    def content_for(self, width: int) -> Any:
        """What to draw at ``width`` cells (a subclass may lay its content out for the width)."""
        return self._content

    def _build(self, width: int) -> list[Strip]:
        if width <= 0:
            return []
        visual = visualize(self, self.content_for(width), markup=self._markup)
        strips = Visual.to_strips(self, visual, width, None, self.visual_style, pad=True)
        # Empty content is one blank line, not none: a message line that empties must not change
        # height (a new layout repaints the whole screen).
        return strips or [Strip.blank(width, self.visual_style.rich_style)]

    def _ensure(self) -> None:
        width = self.size.width
        if width != self._built_width:
            self._strips = self._build(width)
            self._built_width = width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self._height_cache[0] != width:
            self._height_cache = (width, len(self._build(width)))
        return self._height_cache[1]

    def render_line(self, y: int) -> Strip:
        self._ensure()
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.visual_style.rich_style)

    def update(self, content: Any = _KEEP) -> None:
        """Show ``content`` (a string, Rich ``Text`` or any renderable; by default the same content
        drawn again, for a subclass whose :meth:`content_for` changed); repaint what differs."""
        if content is not _KEEP:
            self._content = content
        self._height_cache = (-1, 0)
        width = self.size.width
        if not self.is_mounted or width <= 0 or self._built_width != width:
            self._built_width = -1
            self.refresh(layout=True)
            return
        new = self._build(width)
        old = self._strips
        self._strips = new
        if len(new) != len(old):
            self.refresh(layout=True)
            return
        for y, (before, after) in enumerate(zip(old, new, strict=False)):
            span = changed_span(before, after)
            if span is not None:
                self.refresh(Region(span[0], y, span[1] - span[0], 1))

    def notify_style_update(self) -> None:
        # Focus, hover or a theme change restyles every line: build them again when painted.
        self._built_width = -1
        super().notify_style_update()

    def on_resize(self) -> None:
        self._built_width = -1
