"""Viewing a job's input or output file as a table (``i`` / ``o``), and saving it to a path (``w``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Static

from kzconsole.widgets.csv_table import CsvData, CsvTable
from kzconsole.widgets.path_input import PathInput
from kzconsole.widgets.view_bar import ViewBar


class CsvViewScreen(Screen):
    """A CSV file, scrollable both ways; re-read while it grows (a running job's output)."""

    VIEW_NAME = "File"

    DEFAULT_CSS = """
    CsvViewScreen #about { height: 1; padding: 0 1; background: $panel; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("f", "failed_only", "Failed only"),
        Binding("w", "save", "Save to…"),
    ]

    def __init__(self, path: Path, *, title: str, save_name: str, is_output: bool, growing: bool = False) -> None:
        super().__init__()
        self.path = path
        self.title_text = title
        self.save_name = save_name
        self.is_output = is_output
        self.growing = growing
        self.data = CsvData(path)
        self._reading = False

    def compose(self) -> ComposeResult:
        yield ViewBar("jobs", detail=f"› {self.title_text}")
        yield Static("", id="about")
        yield CsvTable(self.data, empty_note="(empty)")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(CsvTable).focus()
        self._read()
        if self.growing:
            self.set_interval(1.0, self._read)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "failed_only":
            return True if self.is_output else False
        return True

    def _read(self) -> None:
        if not self._reading:
            self._reading = True
            self._read_worker()

    @work(thread=True, exclusive=True, group="csv-view")
    def _read_worker(self) -> None:
        added = self.data.read_more()
        self.app.call_from_thread(self._read_done, added)

    def _read_done(self, added: bool) -> None:
        self._reading = False
        if added:
            self.query_one(CsvTable).appended()
        self._update_about()

    def _update_about(self) -> None:
        data = self.data
        table = self.query_one(CsvTable)
        parts = [f"{len(data.rows):,} rows"]
        if data.error_col is not None:
            parts.append(f"{len(data.failed):,} failed")
        if table.failed_only:
            parts.append("showing failed rows only")
        if data.problem:
            parts.append(data.problem)
        parts.append(str(self.path))
        self.query_one("#about", Static).update(Text(" · ".join(parts), no_wrap=True, overflow="ellipsis"))

    def action_failed_only(self) -> None:
        table = self.query_one(CsvTable)
        table.failed_only = not table.failed_only
        self._update_about()

    def action_save(self) -> None:
        self.app.push_screen(SaveFileModal(self.path, self.save_name))


class SaveFileModal(ModalScreen[Path | None]):
    """Asks for a path and copies the file there (completion on tab, like a shell)."""

    DEFAULT_CSS = """
    SaveFileModal { align: center middle; }
    SaveFileModal > Vertical {
        width: 76; max-width: 100%; height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    SaveFileModal #message { height: auto; margin: 1 0 0 0; }
    SaveFileModal #message.-error { color: $error; }
    SaveFileModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    SaveFileModal Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, source: Path, default_name: str) -> None:
        super().__init__()
        self.source = source
        self.default = os.path.join(os.getcwd(), default_name)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Save a copy"
            yield Static(f"Copy {self.source.name} to (tab completes):")
            yield PathInput(value=self.default, id="dest")
            yield Static("", id="message")
            with Horizontal():
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#dest", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._save()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _save(self) -> None:
        raw = self.query_one("#dest", Input).value.strip()
        if not raw:
            self._message("Type a path.", error=True)
            return
        dest = Path(os.path.expanduser(raw))
        if dest.is_dir():
            dest = dest / os.path.basename(self.default)
        self._message(f"Saving to {dest}…")
        self._copy(dest)

    @work(thread=True, exclusive=True, group="save-file")
    def _copy(self, dest: Path) -> None:
        try:
            shutil.copyfile(self.source, dest)
        except OSError as exc:
            self.app.call_from_thread(self._message, f"Cannot write {dest}: {exc.strerror or exc}", True)
            return
        self.app.call_from_thread(self._saved, dest)

    def _saved(self, dest: Path) -> None:
        self.app.notify(f"Saved {dest}", timeout=4)
        self.dismiss(dest)

    def _message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#message", Static)
        message.update(text)
        message.set_class(error, "-error")
