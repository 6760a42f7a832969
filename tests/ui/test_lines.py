"""changed_span: the cells a repaint sends (issue 13.1: only what changed reaches the terminal)."""

from __future__ import annotations

import random

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from kzconsole.widgets.lines import changed_span

BOLD = Style(bold=True)
RED = Style(color="red")


def strip(*parts: tuple[str, Style | None]) -> Strip:
    return Strip([Segment(text, style) for text, style in parts])


def cells(line: Strip) -> list[tuple[str, Style | None]]:
    """Each cell as (character, style); the second cell of a wide character is ''."""
    return [(c, seg.style) for seg in line for ch in seg.text for c in ((ch, "") if cell_len(ch) == 2 else (ch,))]


def reference_span(old: Strip, new: Strip) -> tuple[int, int] | None:
    """The definition: the span outside which both strips show the same cells, widened to whole
    characters."""
    a, b = cells(old), cells(new)
    if a == b:
        return None
    shortest = min(len(a), len(b))
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), shortest)
    tails = zip(reversed(a[start:]), reversed(b[start:]), strict=False)
    same_end = next((i for i, (x, y) in enumerate(tails) if x != y), shortest - start)
    end = max(len(a), len(b)) - same_end
    if 0 < start < len(b) and b[start][0] == "":
        start -= 1
    if end < len(b) and b[end][0] == "":
        end += 1
    return (start, max(end, start + 1))


def test_the_same_cells_send_nothing_however_they_are_cut_into_segments() -> None:
    assert changed_span(strip(("ab", None), ("cd", BOLD)), strip(("a", None), ("b", None), ("cd", BOLD))) is None
    assert changed_span(strip(("✔ 12 日本", RED)), strip(("✔ 12 ", RED), ("日本", RED))) is None


def test_a_changed_count_sends_only_its_cells() -> None:
    old = strip(("abc1 ", None), ("✔1,234", RED), (" tail", None))
    new = strip(("abc1 ", None), ("✔1,299", RED), (" tail", None))
    assert changed_span(old, new) == (9, 11)


def test_a_style_change_alone_is_a_change() -> None:
    assert changed_span(strip(("abcdef", None)), strip(("ab", None), ("cd", BOLD), ("ef", None))) == (2, 4)


def test_a_shorter_line_clears_its_old_end() -> None:
    assert changed_span(strip(("abcdef", None)), strip(("abc", None))) == (3, 6)


def test_wide_characters_are_never_cut_in_half() -> None:
    assert changed_span(strip(("a日b", None)), strip(("a本b", None))) == (1, 3)


def test_any_change_matches_the_cell_by_cell_definition() -> None:
    rng = random.Random(13)
    styles = [None, BOLD, RED, Style(color="red")]  # two equal styles that are not one object

    def random_strip() -> Strip:
        return Strip(
            [
                Segment(
                    "".join(
                        rng.choice("ab c✔█░日" if rng.random() < 0.2 else "abc ") for _ in range(rng.randint(0, 8))
                    ),
                    rng.choice(styles),
                )
                for _ in range(rng.randint(0, 6))
            ]
        )

    for _ in range(5000):
        old = random_strip()
        segments = list(old)
        if segments and rng.random() < 0.7:  # a small edit, as a repaint of a live row makes
            k = rng.randrange(len(segments))
            text = segments[k].text
            j = rng.randint(0, len(text))
            edit = text[:j] + rng.choice(["", "x", "✔", "日", "  "]) + text[j + 1 :]
            segments[k] = Segment(edit, rng.choice(styles))
            new = Strip(segments)
        else:
            new = random_strip()
        assert changed_span(old, new) == reference_span(old, new), (list(old), list(new))
