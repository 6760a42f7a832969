"""Viewing a job's input or output as a table (``i`` / ``o``), a row in full (``enter``), and saving
the output to a file (``w``), never over an existing file without asking.

The file is read through the engine's streams (``open_input`` / ``open_output``), never by path: a
store may keep it in its database.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from kzconsole.engine import EngineError, JobRecord
from kzconsole.messages import EngineBatch
from kzconsole.screens.base import ConsoleScreen, Place
from kzconsole.screens.confirm import ConfirmModal
from kzconsole.screens.job_actions import open_stream
from kzconsole.widgets import glyphs
from kzconsole.widgets.csv_table import CsvData, CsvTable, cell_text
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.path_input import PathInput
from kzconsole.widgets.view_bar import ViewBar

if TYPE_CHECKING:
    from kzconsole.engine import Engine


def file_opener(engine: Engine, job_id: str, kind: str):
    def opener():
        try:
            return open_stream(engine, job_id, kind)
        except EngineError:
            return None  # deleted meanwhile: nothing more to read

    return opener


class CsvViewScreen(ConsoleScreen):
    """A job's input or output, scrollable; read again while the job runs."""

    VIEW_NAME = "File"

    DEFAULT_CSS = """
    CsvViewScreen #about { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("f", "failed_only", "Failed only", tooltip="only the failed rows and their error (toggle)"),
        Binding("w", "save", "Save to…", tooltip="save a copy of the output to a file"),
    ]

    def __init__(self, job: JobRecord, kind: str) -> None:
        super().__init__()
        self.job = job
        self.kind = kind
        self.is_output = kind == "output"
        self.data = CsvData(None)
        self._reading = False

    def place(self) -> Place:
        return ("file", self.job.id, self.kind)

    def compose(self) -> ComposeResult:
        self.data = CsvData(file_opener(self.engine, self.job.id, self.kind))
        yield ViewBar("jobs", detail=f"{glyphs.G.arrow} {self.kind} of job {self.job.id[:8]}")
        yield Lines("", id="about")
        yield CsvTable(self.data, empty_note="(empty)")
        yield MessageLine()
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(CsvTable).focus()
        self._read()

    def wants(self, batch: EngineBatch) -> bool:
        # A running job's output grows: read what it added when the job progressed or changed,
        # here or in another process (its last rows come with its final record).
        job_id = self.job.id
        return self.is_output and (job_id in batch.progress or job_id in batch.changed or batch.store_touched(job_id))

    def catch_up(self) -> None:
        self._read()

    def on_unmount(self) -> None:
        self.data.close()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("failed_only", "save"):
            return True if self.is_output else None
        return True

    def _read(self) -> None:
        if not self._reading and self.shown:
            self._reading = True
            self.run_worker(self._read_worker, thread=True, group="csv-view", exclusive=True)

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
        n = len(data)
        parts = [f"{n:,} row{'s' if n != 1 else ''}"]
        if data.error_col is not None:
            parts.append(f"{len(data.failed):,} failed")
        if table.failed_only:
            parts.append("showing the failed rows only")
        if table.follow:
            parts.append("following the end (G)")
        if data.problem:
            parts.append(data.problem)
        parts.append("enter: the whole row · ← →: columns")
        self.query_one("#about", Lines).update(Text(" · ".join(parts), no_wrap=True, overflow="ellipsis"))

    def on_csv_table_row_opened(self, message: CsvTable.RowOpened) -> None:
        self.app.push_screen(RowModal(message.table, message.position, title=f"{self.kind} of job {self.job.id[:8]}"))

    def action_failed_only(self) -> None:
        table = self.query_one(CsvTable)
        table.failed_only = not table.failed_only
        self._update_about()

    def action_save(self) -> None:
        self.console.save_output(self.job.id)


class RowModal(ModalScreen[None]):
    """One row of a table with every cell in full, wrapped; up / down show the next rows."""

    DEFAULT_CSS = """
    RowModal { align: center middle; }
    RowModal > VerticalScroll {
        width: 100%; height: 100%; border: round $primary; background: $surface; padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape,q,enter", "close", "Close"),
        Binding("down,j", "step(1)", "Next row"),
        Binding("up,k", "step(-1)", "Previous row"),
        Binding("pagedown,space", "scroll(1)", "Scroll", show=False),
        Binding("pageup", "scroll(-1)", "Scroll up", show=False),
    ]

    def __init__(self, table: CsvTable, position: int, *, title: str) -> None:
        super().__init__()
        self.table = table
        self.position = position
        self.title_text = title

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_subtitle = "down/up: next/previous row · escape: close"
            yield Static(id="row")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        table = self.table
        data = table.data
        index = table.index_at(self.position)
        box = self.query_one(VerticalScroll)
        if index is None:
            self.query_one("#row", Static).update("")
            return
        of = "failed rows" if table.failed_only else "rows"
        box.border_title = f"{self.title_text}: row {index + 1:,} ({self.position + 1:,} of {table.row_count:,} {of})"
        header = data.header or []
        row = data.row(index)
        # Each column's name, then its value in full, wrapped to the width (a Rich table cut long
        # values here).
        text = Text()
        for i in range(max(len(header), len(row))):
            name = header[i] if i < len(header) else f"(column {i + 1})"
            value = row[i] if i < len(row) else ""
            text.append(f"{name}\n", style="bold")
            if not value:
                text.append("(empty)\n", style="dim")
            else:
                text.append(value + "\n", style="bold red" if i == data.error_col else "")
        self.query_one("#row", Static).update(text)
        box.scroll_home(animate=False)

    def action_step(self, step: int) -> None:
        target = self.position + step
        if self.table.index_at(target) is None:
            self.notify("no more rows that way", severity="warning")
            return
        self.position = target
        self.table.move_cursor(target)
        self._show()

    def action_scroll(self, step: int) -> None:
        box = self.query_one(VerticalScroll)
        box.scroll_page_down() if step > 0 else box.scroll_page_up()

    def action_close(self) -> None:
        self.dismiss(None)


def _describe(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return str(path)
    return f"{path} ({st.st_size:,} bytes)"


class SaveFileModal(ModalScreen[Path | None]):
    """Asks for a path and copies a job's output there; asks again before replacing a file."""

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

    def __init__(self, job: JobRecord, kind: str = "output") -> None:
        super().__init__()
        self.job = job
        self.kind = kind
        name = f"task_out.{job.id}.csv" if kind == "output" else f"task_in.{job.id}.csv"
        self.default_name = name
        self.default = os.path.join(os.getcwd(), name)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Save a copy"
            yield Static(f"Copy the {self.kind} of job {self.job.id[:8]} to (tab completes):")
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

    def on_path_input_matches(self, event: PathInput.Matches) -> None:
        shown = ", ".join(event.matches[:6]) + (f", … ({len(event.matches)} in all)" if len(event.matches) > 6 else "")
        self._message(f"Several matches: {shown}. Type more, then tab.")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._message("")

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
            dest = dest / self.default_name
        if not dest.parent.is_dir():
            self._message(f"No such folder: {dest.parent}", error=True)
            return
        if dest.exists():

            def answered(yes: bool | None) -> None:
                if yes:
                    self._start_copy(dest, replace=True)
                else:
                    self._message("Not saved: choose another name.")

            self.app.push_screen(
                ConfirmModal(
                    f"{_describe(dest)} exists.\nReplace it with the {self.kind} of job {self.job.id[:8]}?",
                    title="Replace the file?",
                    yes="Replace",
                    no="Keep it",
                ),
                answered,
            )
            return
        self._start_copy(dest, replace=False)

    def _start_copy(self, dest: Path, *, replace: bool) -> None:
        self._message(f"Saving to {dest}…")
        self.run_worker(lambda: self._copy(dest, replace), thread=True, exclusive=True, group="save-file")

    def _copy(self, dest: Path, replace: bool) -> None:
        engine = self.app.engine  # type: ignore[attr-defined]
        try:
            stream = open_stream(engine, self.job.id, self.kind)
        except EngineError as exc:
            self.app.call_from_thread(self._message, str(exc), True)
            return
        if stream is None:
            self.app.call_from_thread(self._message, f"job {self.job.id[:8]} has no {self.kind}", True)
            return
        try:
            # "x": a file that appeared since the question is not overwritten without asking.
            with stream, open(dest, "wb" if replace else "xb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
        except FileExistsError:
            self.app.call_from_thread(
                self._message, f"{dest} appeared meanwhile: not replaced; save again to be asked", True
            )
            return
        except OSError as exc:
            self.app.call_from_thread(self._message, f"Cannot write {dest}: {exc.strerror or exc}", True)
            return
        self.app.call_from_thread(self._saved, dest)

    def _saved(self, dest: Path) -> None:
        self.app.notify(f"saved {_describe(dest)}")
        self.dismiss(dest)

    def _message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#message", Static)
        message.update(text)
        message.set_class(error, "-error")


__all__ = ["CsvViewScreen", "RowModal", "SaveFileModal", "cell_text", "file_opener"]
