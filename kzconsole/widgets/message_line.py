"""The message line: the console's one line for what just happened, as k9s has.

Notifications as toasts stacked up over the list (five "stopped" toasts covered rows 4 to 24 and
the highlighted job's id). The console's ``notify`` instead sets the app's ``message``; every view
shows it on this line, above the footer, until it expires or the next one replaces it. Each
message also goes to the engine's log (the Logs view keeps the older ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from kzconsole.widgets.lines import Lines

SEVERITY_GLYPH = {"information": "", "warning": "warning: ", "error": "error: "}


@dataclass(frozen=True)
class ConsoleMessage:
    text: str
    severity: str = "information"  # information | warning | error
    title: str = ""
    serial: int = 0  # tells two equal messages apart (each one restarts its timeout)

    def line(self) -> str:
        head = f"{self.title}: " if self.title else ""
        return f"{SEVERITY_GLYPH.get(self.severity, '')}{head}{self.text}".replace("\n", " ")


class MessageLine(Lines):
    DEFAULT_CSS = """
    MessageLine { height: 1; padding: 0 1; background: $background; }
    MessageLine > .message-line--information { color: $text; }
    MessageLine > .message-line--warning { color: $warning; text-style: bold; }
    MessageLine > .message-line--error { color: $error; text-style: bold; }
    """

    COMPONENT_CLASSES = {"message-line--information", "message-line--warning", "message-line--error"}

    def on_mount(self) -> None:
        if hasattr(self.app, "message"):
            self.watch(self.app, "message", self._show, init=True)

    def _show(self, message: ConsoleMessage | None) -> None:
        if message is None:
            self.update(Text(""))
            return
        style = self.get_component_rich_style(f"message-line--{message.severity}", partial=True)
        self.update(Text(message.line(), style=style, no_wrap=True, overflow="ellipsis"))
