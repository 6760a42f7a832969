"""What every view of the console shares: the engine (typed), its place in the history, and
whether it is on screen.

A view hidden behind another (the jobs list under a job view, a view of another mode) receives no
engine news and paints nothing: Textual repaints the whole visible screen for any change of a
screen under it, so a live list behind the job view cost 70 KiB/s of terminal output. A view
catches up when it is shown again (``on_screen_resume``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from kzconsole.app import KzConsoleApp
    from kzconsole.engine import Engine

Place = tuple[str, ...]  # ("view", mode) | ("job", id) | ("file", id, "input" | "output")


class ConsoleScreen(Screen[Any]):
    VIEW_NAME = ""
    MODE = "jobs"  # the view (Textual mode) the screen belongs to

    @property
    def console(self) -> "KzConsoleApp":
        return cast("KzConsoleApp", self.app)

    @property
    def engine(self) -> "Engine":
        return self.console.engine

    @property
    def shown(self) -> bool:
        """On screen now (the top screen, or under a dialog that lets it show through)."""
        visible = getattr(self.app, "visible_screens", None)
        return self.is_current if visible is None else self in visible()

    def place(self) -> Place:
        return ("view", self.MODE)

    def on_screen_resume(self) -> None:
        visited = getattr(self.app, "visited", None)
        if visited is not None:
            visited(self)
