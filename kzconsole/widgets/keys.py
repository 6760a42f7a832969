"""The movement keys the console's lists, tables and logs share, bound to each widget's own actions:
arrows and vi's k/j, pages (less's ctrl+b/ctrl+f too), and home/end as g/G."""

from __future__ import annotations

from textual.binding import Binding


def line_keys(up: str, down: str) -> list[Binding]:
    return [Binding("up,k", up, "Up", show=False), Binding("down,j", down, "Down", show=False)]


def page_keys(up: str, down: str) -> list[Binding]:
    return [
        Binding("pageup,ctrl+b", up, "Page up", show=False),
        Binding("pagedown,ctrl+f", down, "Page down", show=False),
    ]


def end_keys(
    first: str, last: str, labels: tuple[str, str] = ("Top", "Bottom; follow"), last_tooltip: str | None = None
) -> list[Binding]:
    return [
        Binding("home,g", first, labels[0], show=False),
        Binding("end,G", last, labels[1], show=False, tooltip=last_tooltip),
    ]
