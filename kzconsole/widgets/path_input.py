"""A path field that completes like a shell: the completion shows greyed, tab (or →) takes it."""

from __future__ import annotations

import os

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input


def complete_path(value: str, *, suffixes: tuple[str, ...] = ()) -> str | None:
    """The completion of ``value`` as a path, or None.

    Several matches complete to their longest common prefix when it is longer than what was typed,
    else to the first match. Directories end with ``/``; ``suffixes`` (e.g. ``(".csv", ".json")``)
    narrows the files offered, never the directories.
    """
    if not value:
        return None
    expanded = os.path.expanduser(value)
    folder, prefix = os.path.split(expanded)
    try:
        with os.scandir(folder or ".") as it:
            entries = []
            for entry in it:
                if not entry.name.startswith(prefix):
                    continue
                if entry.name.startswith(".") and not prefix.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir and suffixes and not entry.name.lower().endswith(suffixes):
                    continue
                entries.append(entry.name + ("/" if is_dir else ""))
    except OSError:
        return None
    if not entries:
        return None
    entries.sort()
    common = os.path.commonprefix(entries)
    name = common if len(common) > len(prefix) else entries[0]
    if name == prefix:
        return None
    # Keep what the operator typed (a leading ~ stays a ~).
    return value[: len(value) - len(prefix)] + name


class PathSuggester(Suggester):
    def __init__(self, suffixes: tuple[str, ...] = ()) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = suffixes

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, suffixes=self.suffixes)


class PathInput(Input):
    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, value: str | None = None, *, suffixes: tuple[str, ...] = (), placeholder: str = "",
                 id: str | None = None, compact: bool = True) -> None:
        # No select-all on focus: tabbing into a path is mostly to extend or complete it.
        super().__init__(value=value, placeholder=placeholder, suggester=PathSuggester(suffixes), id=id,
                         compact=compact, select_on_focus=False)

    def action_complete(self) -> None:
        suggestion = self._suggestion
        if suggestion and len(suggestion) > len(self.value) and self.cursor_at_end:
            self.value = suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()
