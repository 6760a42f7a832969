"""The movement keys the console's lists, tables and logs share, bound to each widget's own actions:
arrows and vi's k/j, pages (less's ctrl+b/ctrl+f too), and home/end as g/G; and the "/" that opens
a view's text box."""

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


def box_key(action: str, description: str, tooltip: str) -> Binding:
    """ "/" for a view's text box (the jobs' filter, the logs' search). A priority binding, and the
    action moves the focus at once (``set_focus``, not the deferred ``focus()``): the keys typed
    right after "/" (already queued: a fast typist, a paste over SSH) must land in the box, not run
    the view's own keys (``n`` once opened the new-job dialog). The screen's ``check_action``
    refuses the action while an Input has the focus, so that "/" is typed there (the box itself: a
    regular expression has them; or another input the app shows)."""
    return Binding("slash", action, description, key_display="/", priority=True, tooltip=tooltip)
