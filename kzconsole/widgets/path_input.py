"""A path field that completes like a shell: the completion shows greyed, tab (or →) takes it.

Like a shell, completion never picks one of several matches: it extends what was typed to what they
all share, and tab again lists them (``PathInput.Matches``, shown by the dialog). Picking the first
match made ``inp`` + tab a script's name when the operator meant the ``inputs/`` folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input


def path_matches(value: str, *, suffixes: tuple[str, ...] = ()) -> list[str]:
    """The names in ``value``'s folder that start with its last part (folders end with ``/``);
    ``suffixes`` (e.g. ``(".csv", ".json")``) narrows the files offered, never the folders."""
    if not value:
        return []
    expanded = os.path.expanduser(value)
    folder, prefix = os.path.split(expanded)
    entries = []
    try:
        with os.scandir(folder or ".") as it:
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
        return []
    return sorted(entries)


def complete_path(value: str, *, suffixes: tuple[str, ...] = ()) -> str | None:
    """The completion of ``value`` as a path, or None: the one match, or what several share
    when that is longer than what was typed."""
    entries = path_matches(value, suffixes=suffixes)
    if not entries:
        return None
    prefix = os.path.split(os.path.expanduser(value))[1]
    name = entries[0] if len(entries) == 1 else os.path.commonprefix(entries)  # noqa: RUF071 - characters, not path parts: completion
    if len(name) <= len(prefix):
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

    @dataclass
    class Matches(Message):
        """Tab found several matches and nothing more they all share: say which."""

        path_input: PathInput
        matches: list[str]

    def __init__(
        self,
        value: str | None = None,
        *,
        suffixes: tuple[str, ...] = (),
        placeholder: str = "",
        id: str | None = None,
        compact: bool = True,
    ) -> None:
        # No select-all on focus: tabbing into a path is mostly to extend or complete it.
        super().__init__(
            value=value,
            placeholder=placeholder,
            suggester=PathSuggester(suffixes),
            id=id,
            compact=compact,
            select_on_focus=False,
        )
        self.suffixes = suffixes

    def action_complete(self) -> None:
        if self.cursor_at_end:
            completion = complete_path(self.value, suffixes=self.suffixes)
            if completion is not None:
                self.value = completion
                self.cursor_position = len(self.value)
                return
            matches = path_matches(self.value, suffixes=self.suffixes)
            if len(matches) > 1:
                self.post_message(self.Matches(self, matches))
                return
        self.screen.focus_next()
