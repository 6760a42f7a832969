"""New job (``n``; from the catalog, pre-filled): pick the task and the input file, see the checks of
contract 3.3 and a preview *before* anything is created, set the accounts and the pause, then create
(or create and start).

The checks run ``Engine.check_input`` in a worker thread (it stores nothing), on every change
of the task or the file (debounced); the job itself is created by ``Engine.add_job``, which checks
again (the file may change in between) and stores the input. The other fields (accounts, pause)
are checked as they are typed, and a line about them goes away as soon as it is corrected. A path
being typed that names nothing yet is a hint, not an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, DirectoryTree, Input, Label, Select, Static

from kzconsole.engine import EngineError, JobRejected, describe_errors
from kzconsole.plugin import TaskSpec
from kzconsole.widgets import glyphs
from kzconsole.widgets.csv_table import CsvData, CsvTable
from kzconsole.widgets.path_input import PathInput, path_matches

if TYPE_CHECKING:
    from kzconsole.engine import Engine

Check = tuple[bool | None, str]  # (passed; None: a hint, neither), the sentence

_HEX32 = re.compile(r"[0-9a-f]{32}")
PREVIEW_ROWS = 5
INPUT_SUFFIXES = (".csv", ".json", ".txt")


def _not_a_file(path: str) -> str:
    # A device or a pipe (/dev/zero, a FIFO) never ends, or blocks its reader: checking it, or
    # storing it, ran for ever in a thread the dialog could not stop.
    return f"{path} is not a regular file (a device or a pipe): pick a CSV or JSON file"


@dataclass(frozen=True)
class NewJobResult:
    job_id: str
    started: bool


def check_lines(
    task: TaskSpec | None, path: str, errors: dict[str, Any], header: list[str] | None, total: int
) -> list[Check]:
    """The checks as (ok, sentence) lines, in the contract's order."""
    if task is None:
        return [(False, "pick a task")]
    lines: list[Check] = []
    if task.is_noinput:
        if path:
            lines.append((False, "this task takes no input: clear the file field"))
        else:
            lines.append((True, "this task takes no input"))
        return lines
    if not path:
        need = ", ".join(task.mandatory) or "any columns"
        return [(False, f"this task needs a CSV or JSON file (columns: {need})")]
    if "csv" in errors:
        err = errors["csv"]
        where = f"line {err['line']}: " if err.get("line") is not None else ""
        lines.append((False, f"not valid input: {where}{err['message']}"))
    if "missing_mandatory_fields" in errors:
        lines.append((False, "missing mandatory column(s): " + ", ".join(errors["missing_mandatory_fields"])))
    if "missing_mandatory_values" in errors:
        mv = errors["missing_mandatory_values"]
        shown = ", ".join(str(n) for n in mv["lines"][:15])
        more = f" … ({mv['count']} records)" if mv["count"] > 15 else ""
        lines.append((False, f"empty mandatory value(s) on line(s) {shown}{more}"))
    if header is None and not errors:
        lines.append((False, "the file holds no records (an empty JSON array): a CSV task needs rows"))
    if not errors and header is not None:
        lines.append((True, f"{total:,} data row{'s' if total != 1 else ''} · columns: {', '.join(header)}"))
        known = set(task.mandatory) | set(task.optional)
        if known:
            unused = [h for h in header if h not in known]
            if unused:
                lines.append((True, "columns the task does not declare (passed along): " + ", ".join(unused)))
    return lines


class NewJobModal(ModalScreen[NewJobResult | None]):
    VIEW_NAME = "New job"

    DEFAULT_CSS = """
    NewJobModal { align: center middle; }
    NewJobModal > #box {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    NewJobModal .row { height: 1; }
    NewJobModal .row Label { width: 13; }
    NewJobModal .row Input, NewJobModal .row Select { width: 1fr; }
    NewJobModal #account, NewJobModal #auth { width: 34; }
    NewJobModal #file-row Button { margin-left: 1; }
    NewJobModal #pause { width: 10; }
    NewJobModal .hint { color: $text-muted; width: 1fr; }
    NewJobModal #task-fields { height: 1; color: $text-muted; padding-left: 13; }
    NewJobModal #checks { height: auto; max-height: 6; margin-top: 1; }
    NewJobModal #preview { height: auto; max-height: 7; margin-top: 1; display: none; }
    NewJobModal #preview.-shown { display: block; }
    NewJobModal #buttons { height: 1; margin-top: 1; align-horizontal: right; }
    NewJobModal #buttons Button { margin-left: 2; }
    NewJobModal #task > SelectOverlay {
        border: round $primary !important; max-height: 14; text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+o,f2", "browse", "Browse files"),
        Binding("ctrl+s", "create(True)", "Create & start"),
        Binding("ctrl+n", "create(False)", "Create"),
    ]

    def __init__(self, category: str | None = None, action: str | None = None, *, path: str | None = None) -> None:
        super().__init__()
        self.initial = (category, action) if category and action else None
        self.initial_path = path or ""
        self.tasks: list[TaskSpec] = []
        self.task_info: TaskSpec | None = None
        self._generation = 0
        self._check_timer: Timer | None = None
        self._checked: tuple[int, bool] = (0, False)  # (generation, passed)
        self._busy = False
        self._file_lines: list[Check] = []

    @property
    def engine(self) -> Engine:
        return self.app.engine  # type: ignore[attr-defined, no-any-return]

    def compose(self) -> ComposeResult:
        settings = self.engine.settings
        with Vertical(id="box") as box:
            box.border_title = "New job"
            box.border_subtitle = "ctrl+s create & start · ctrl+n create · escape cancel"
            with Horizontal(classes="row"):
                yield Label("Task")
                yield Select([], prompt="loading the catalog…", id="task", compact=True, allow_blank=True)
            yield Static("", id="task-fields")
            with Horizontal(classes="row", id="file-row"):
                yield Label("Input file")
                yield PathInput(
                    value=self.initial_path,
                    suffixes=INPUT_SUFFIXES,
                    id="file",
                    placeholder="path of a CSV or JSON file (tab completes; ctrl+o browses)",
                )
                yield Button("Browse", id="browse", compact=True)
            with Horizontal(classes="row"):
                yield Label("Account")
                yield Input(value=settings.accounts.account_id, id="account", compact=True, max_length=32)
                yield Static("  the job's account", classes="hint")
            with Horizontal(classes="row"):
                yield Label("Auth account")
                yield Input(value=settings.accounts.auth_account_id, id="auth", compact=True, max_length=32)
                yield Static("  whose credentials it uses", classes="hint")
            with Horizontal(classes="row"):
                yield Label("Pause ms")
                yield Input(value=str(settings.tasks.wait_after_row_ms), id="pause", type="integer", compact=True)
                yield Static("  after each row (0: full speed)", classes="hint")
            yield Static("", id="checks")
            yield CsvTable(CsvData(None), empty_note="", id="preview")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Create", id="create", compact=True)
                yield Button("Create & start", id="create-start", variant="primary", compact=True)

    def on_mount(self) -> None:
        self._load_catalog()
        self.query_one("#task", Select).focus()

    # ------------------------------------------------------------ catalog

    @work(thread=True, group="new-job-catalog")
    def _load_catalog(self) -> None:
        try:
            tasks = self.engine.catalog.tasks()
            error = None
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            tasks, error = [], f"cannot read the catalog: {exc}"
        self.app.call_from_thread(self._catalog_loaded, tasks, error)

    def _catalog_loaded(self, tasks: list[TaskSpec], error: str | None) -> None:
        self.tasks = tasks
        select = self.query_one("#task", Select)
        select.set_options(
            [(Text(f"{t.name} — {t.description}", no_wrap=True, overflow="ellipsis"), t.name) for t in tasks]
        )
        select.prompt = "pick a task" if tasks else "no tasks: the catalog is empty"
        if error:
            self._show_checks([(False, error)])
        if self.initial is not None:
            name = f"{self.initial[0]}/{self.initial[1]}"
            if any(t.name == name for t in tasks):
                select.value = name
                self.query_one("#file", Input).focus()
            else:
                # Said until a task is picked (the checks of the empty form said "pick a task"
                # over it at once).
                self._show_checks([(False, f"unknown task {name}: pick one from the list")])
                return
        self._schedule_check(0)

    @on(Select.Changed, "#task")
    def _task_changed(self, event: Select.Changed) -> None:
        value = event.value
        self.task_info = next((t for t in self.tasks if t.name == value), None)
        fields = self.query_one("#task-fields", Static)
        info = self.task_info
        if info is None:
            fields.update("")
        elif info.is_noinput:
            fields.update("no input: leave the file empty")
        else:
            fields.update(
                f"mandatory: {', '.join(info.mandatory) or '-'} · optional: {', '.join(info.optional) or '-'}"
            )
        self._schedule_check(0)

    # ------------------------------------------------------------- checks

    @on(Input.Changed, "#file")
    def _file_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._schedule_check(0.3)

    @on(Input.Changed, "#account, #auth, #pause")
    def _field_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._render_checks()

    def on_path_input_matches(self, event: PathInput.Matches) -> None:
        shown = ", ".join(event.matches[:6]) + (
            f", ... ({len(event.matches)} in all)" if len(event.matches) > 6 else ""
        )
        self._file_lines = [(None, f"several names match: {shown}; type more, then tab")]
        self._render_checks()

    def _schedule_check(self, delay: float) -> None:
        self._generation += 1
        self._checked = (self._generation, False)
        if self._check_timer is not None:
            self._check_timer.stop()
        generation = self._generation
        if delay <= 0:
            self._run_check(generation)
        else:
            self._check_timer = self.set_timer(delay, lambda: self._run_check(generation))

    def _path(self) -> str:
        raw = self.query_one("#file", Input).value.strip()
        return os.path.expanduser(raw) if raw else ""

    def _run_check(self, generation: int) -> None:
        self._check_timer = None
        if generation != self._generation:
            return
        task, path = self.task_info, self._path()
        if task is None or task.is_noinput or not path:
            self._show_checks(check_lines(task, path, {}, None, 0))
            self._show_preview([])
            self._checked = (generation, task is not None and (task.is_noinput != bool(path)))
            return
        if os.path.isdir(path):
            self._show_checks([(None, f"{path} is a folder: pick a file in it (tab completes, ctrl+o browses)")])
            self._show_preview([])
            return
        if not os.path.exists(path):
            # Probably still being typed: say what would match, not that it is wrong.
            raw = self.query_one("#file", Input).value.strip()
            matches = path_matches(raw, suffixes=INPUT_SUFFIXES)
            if matches:
                shown = ", ".join(matches[:4]) + (", ..." if len(matches) > 4 else "")
                hint = f"{len(matches)} name{'s' if len(matches) != 1 else ''} start{'s' if len(matches) == 1 else ''} so: {shown} (tab completes)"
            else:
                hint = f"nothing named {raw} (yet); tab completes a path, ctrl+o browses"
            self._show_checks([(None, hint)])
            self._show_preview([])
            return
        if not os.path.isfile(path):
            self._show_checks([(False, _not_a_file(path))])
            self._show_preview([])
            return
        self._show_checks([(None, f"checking{glyphs.G.ellipsis}")])
        self._check_file(generation, task, path)

    @work(thread=True, exclusive=True, group="new-job-check")
    def _check_file(self, generation: int, task: TaskSpec, path: str) -> None:
        errors: dict[str, Any]
        header: list[str] | None = None
        total = 0
        preview: list[list[str]] = []
        try:
            report = self.engine.check_input(task.category, task.action, path, preview=PREVIEW_ROWS)
            errors, header, total, preview = report.errors, report.header, report.total_rows or 0, report.preview
        except JobRejected as exc:
            errors = {"csv": {"line": None, "message": describe_errors(exc.errors)}}
        except OSError as exc:
            errors = {"csv": {"line": None, "message": f"cannot read {path}: {exc.strerror or exc}"}}
        except Exception as exc:  # noqa: BLE001 - a check must never kill the modal
            errors = {"csv": {"line": None, "message": f"{type(exc).__name__}: {exc}"}}
        lines = check_lines(task, path, errors, header, total)
        passed = not errors and header is not None
        self.app.call_from_thread(self._checked_file, generation, lines, preview, passed)

    def _checked_file(self, generation: int, lines: list[Check], preview: list[list[str]], passed: bool) -> None:
        if generation != self._generation:
            return  # the task or the file changed meanwhile
        self._checked = (generation, passed)
        self._show_checks(lines)
        self._show_preview(preview)

    def _show_checks(self, lines: Iterable[Check]) -> None:
        """The file's checks (kept until the task or the file changes)."""
        self._file_lines = list(lines)
        self._render_checks()

    def _render_checks(self, extra: Iterable[Check] = ()) -> None:
        g = glyphs.G
        text = Text()
        lines = self._file_lines + [(False, problem) for problem in self._field_problems()] + list(extra)
        for n, (ok, sentence) in enumerate(lines):
            if n:
                text.append("\n")
            if ok is None:
                text.append(f"{g.pending} ", style="dim")
                text.append(sentence, style="dim")
                continue
            text.append(f"{g.ok} " if ok else f"{g.failed} ", style="green" if ok else "bold red")
            text.append(sentence)
        self.query_one("#checks", Static).update(text)

    def _field_problems(self) -> list[str]:
        """What is wrong with the accounts and the pause as typed now."""
        if not self.is_mounted:
            return []
        problems = []
        for label, field_id in (("account", "#account"), ("auth account", "#auth")):
            if not _HEX32.fullmatch(self.query_one(field_id, Input).value.strip()):
                problems.append(f"the {label} must be an account id: 32 lowercase hex characters")
        raw_pause = self.query_one("#pause", Input).value.strip()
        try:
            if int(raw_pause) < 0:
                problems.append("the pause must be >= 0 ms")
        except ValueError:
            problems.append("the pause must be a whole number of milliseconds")
        return problems

    def _show_preview(self, rows: list[list[str]]) -> None:
        table = self.query_one("#preview", CsvTable)
        data = CsvData.from_rows(rows[0], rows[1:]) if rows else CsvData(None)
        table.set_data(data)
        table.set_class(bool(rows), "-shown")

    # ------------------------------------------------------------- files

    def action_browse(self) -> None:
        start = self._path()
        folder = start if os.path.isdir(start) else (os.path.dirname(start) or os.getcwd())
        if not os.path.isdir(folder):
            folder = os.getcwd()

        def picked(path: Path | None) -> None:
            if path is not None:
                box = self.query_one("#file", Input)
                box.value = str(path)
                box.cursor_position = len(box.value)
                box.focus()

        self.app.push_screen(FilePickerModal(Path(folder)), picked)

    # ------------------------------------------------------------- create

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button.id
        if button == "cancel":
            self.dismiss(None)
        elif button == "browse":
            self.action_browse()
        elif button in ("create", "create-start"):
            self.action_create(button == "create-start")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _form(self) -> dict[str, Any] | None:
        """The fields as the engine takes them; None while one is wrong (the checks say which)."""
        task = self.task_info
        if task is None or self._field_problems():
            return None
        return {
            "task": task,
            "path": self._path(),
            "account": self.query_one("#account", Input).value.strip(),
            "auth": self.query_one("#auth", Input).value.strip(),
            "pause": int(self.query_one("#pause", Input).value.strip()),
        }

    def action_create(self, start: bool) -> None:
        if self._busy:
            return
        form = self._form()
        if form is None:
            self._render_checks(
                [
                    (
                        False,
                        "not created: pick a task first"
                        if self.task_info is None
                        else "not created: correct the line(s) above",
                    )
                ]
            )
            return
        if form["path"] and os.path.exists(form["path"]) and not os.path.isfile(form["path"]):
            self._render_checks([(False, f"not created: {_not_a_file(form['path'])}")])
            return
        self._busy = True
        self._render_checks([(None, f"creating{glyphs.G.ellipsis}")])
        self._create(form, start)

    @work(thread=True, exclusive=True, group="new-job-create")
    def _create(self, form: dict[str, Any], start: bool) -> None:
        task: TaskSpec = form["task"]
        try:
            job = self.engine.add_job(
                task.category,
                task.action,
                input=form["path"] or None,
                account_id=form["account"],
                auth_account_id=form["auth"],
                wait_ms=form["pause"],
                start=start,
            )
        except JobRejected as exc:
            lines = check_lines(task, form["path"], exc.errors, None, 0)
            if "unknown_task" in exc.errors or "expected_content" in exc.errors:
                lines = [(False, describe_errors(exc.errors))]
            self.app.call_from_thread(self._create_failed, lines)
            return
        except EngineError as exc:
            self.app.call_from_thread(self._create_failed, [(False, str(exc))])
            return
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the UI
            self.app.call_from_thread(self._create_failed, [(False, f"{type(exc).__name__}: {exc}")])
            return
        self.app.call_from_thread(self.dismiss, NewJobResult(job.id, start))

    def _create_failed(self, lines: list[Check]) -> None:
        self._busy = False
        self._show_checks([(False, "not created:")] + lines)


class InputFileTree(DirectoryTree):
    """Folders, and the files a job can take (CSV, JSON); hidden entries are left out."""

    # Plain symbols instead of emoji: the Linux console's font has no emoji.
    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "
    ICON_FILE = "  "

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        out = []
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                if path.is_dir() or path.suffix.lower() in INPUT_SUFFIXES:
                    out.append(path)
            except OSError:
                continue
        return out


class FilePickerModal(ModalScreen[Path | None]):
    """A simple file browser: enter opens a folder or picks a file; backspace goes up."""

    DEFAULT_CSS = """
    FilePickerModal { align: center middle; }
    FilePickerModal > Vertical {
        width: 90; max-width: 100%; height: 90%; border: round $primary; background: $surface;
    }
    FilePickerModal #where { height: 1; padding: 0 1; color: $text-muted; }
    FilePickerModal DirectoryTree { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("backspace,u", "up", "Parent folder"),
        Binding("tilde", "home", "Home", key_display="~"),
    ]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder.resolve()

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Pick the input file"
            box.border_subtitle = "enter: open/pick · backspace: up · ~: home · escape: cancel"
            yield Static(str(self.folder), id="where")
            yield InputFileTree(self.folder, id="tree")

    def on_mount(self) -> None:
        self.query_one(InputFileTree).focus()

    def _go(self, folder: Path) -> None:
        self.folder = folder
        tree = self.query_one(InputFileTree)
        tree.path = folder
        self.query_one("#where", Static).update(str(folder))

    def action_up(self) -> None:
        if self.folder.parent != self.folder:
            self._go(self.folder.parent)

    def action_home(self) -> None:
        self._go(Path.home())

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(event.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
