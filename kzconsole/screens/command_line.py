"""The k9s-style command line (``:``): ``:jobs``, ``:catalog``, ``:triggers``, ``:plugins``, ``:logs``,
``:job ID``, ``:new``, ``:help``, ``:q``. Completion is shown greyed; tab or → takes it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

# command -> what it does (also the list the completion offers)
COMMANDS: dict[str, str] = {
    "jobs": "the jobs view",
    "catalog": "the catalog of tasks",
    "triggers": "triggers and their firings",
    "plugins": "plugin files and load errors",
    "logs": "the engine's log",
    "job": "open a job: job ID (an id prefix of 6+ characters works)",
    "new": "create a job: new [CATEGORY/ACTION]",
    "help": "the keys of the current view",
    "quit": "quit the console",
}
ALIASES = {
    "j": "jobs",
    "job": "job",
    "tasks": "jobs",
    "c": "catalog",
    "cat": "catalog",
    "t": "triggers",
    "tr": "triggers",
    "trig": "triggers",
    "p": "plugins",
    "pl": "plugins",
    "plug": "plugins",
    "l": "logs",
    "log": "logs",
    "q": "quit",
    "q!": "quit",
    "quit": "quit",
    "exit": "quit",
    "h": "help",
    "?": "help",
    "n": "new",
}


def resolve(command: str) -> tuple[str | None, str]:
    """(canonical command or None, argument) for a typed line."""
    word, _, arg = command.strip().lstrip(":").partition(" ")
    word = word.lower()
    if word in COMMANDS:
        return word, arg.strip()
    if word in ALIASES:
        return ALIASES[word], arg.strip()
    matches = [c for c in COMMANDS if c.startswith(word)] if word else []
    if len(matches) == 1:
        return matches[0], arg.strip()
    return None, arg.strip()


class CommandLineModal(ModalScreen[str | None]):
    DEFAULT_CSS = """
    CommandLineModal { align: left bottom; background: transparent; }
    CommandLineModal > Horizontal { height: 1; width: 100%; background: $panel; dock: bottom; }
    CommandLineModal Label { width: 2; padding-left: 1; text-style: bold; }
    CommandLineModal Input { width: 1fr; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("tab", "complete", "Complete", show=False)]

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(":")
            yield Input(
                placeholder="jobs · catalog · triggers · plugins · logs · job ID · new · help · q",
                suggester=SuggestFromList(list(COMMANDS), case_sensitive=False),
                compact=True,
                id="command",
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_complete(self) -> None:
        box = self.query_one(Input)
        suggestion = box._suggestion
        if suggestion and len(suggestion) > len(box.value):
            box.value = suggestion + " " if suggestion in ("job", "new") else suggestion
            box.cursor_position = len(box.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
