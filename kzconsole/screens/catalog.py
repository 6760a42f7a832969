"""The Catalog view: every task the loaded plugins offer, and what each one expects.

Left, categories and their actions as a tree; right, the selected task's description, doc,
input, fields, output header, verifiers and the plugin file:line that declares it. ``n`` opens
the new-job dialog for the selected task.

The catalog is read through the engine facade only. Building the view calls plugin code
(``output_header`` may be a callable) and the very first read may load every plugin, so it runs in
a thread worker; afterwards the view rebuilds when the engine says the catalog changed (a plugin was
loaded, reloaded or removed), or, hidden meanwhile, when it is shown again with a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, Tree

from kzconsole.plugin import TaskNaming, TaskSpec
from kzconsole.screens.base import CatalogView
from kzconsole.widgets.key_bar import KeyBar
from kzconsole.widgets.lines import Lines
from kzconsole.widgets.message_line import MessageLine
from kzconsole.widgets.row_table import KeyTree
from kzconsole.widgets.view_bar import ViewBar

__all__ = ["CatalogScreen", "TaskView", "describe_task", "effective_header"]


@dataclass(frozen=True)
class TaskView(TaskNaming):
    """What the view shows of one task; built off the UI thread, never mutated."""

    category: str
    action: str
    description: str
    doc: str
    expected_content: str | None
    mandatory: tuple[str, ...]
    optional: tuple[str, ...]
    header: tuple[str, ...]
    header_note: str
    verified: tuple[str, ...]  # fields of this category that have a verifier
    where: str


def effective_header(spec: TaskSpec) -> tuple[tuple[str, ...], str]:
    """The output header a job of ``spec`` will write (contract 2.5), and a note on where it
    came from. Calls a callable ``output_header``; anything it raises is reported, not raised."""
    declared = spec.output_header
    note = ""
    header: tuple[str, ...] | None = None
    if callable(declared):
        try:
            value = declared()
        except Exception as exc:  # noqa: BLE001 - plugin code: show what went wrong
            value = None
            note = f"output_header() raised {type(exc).__name__}: {exc}; the default is used"
        else:
            if isinstance(value, (list, tuple)) and value and all(isinstance(c, str) for c in value):
                header = tuple(value)
                note = "from output_header()"
            else:
                note = f"output_header() returned {value!r:.80}, not a list of names; the default is used"
    elif declared:
        header = tuple(declared)
    if header is None:
        if spec.expected_content is None:
            header = ("error",)
            note = note or "default for a task without input"
        elif not (spec.mandatory or spec.optional):
            header = ("<the input's columns>", "error")
            note = note or "default: the input's columns"
        else:
            header = tuple(spec.mandatory) + tuple(spec.optional) + ("error",)
            note = note or "default: mandatory + optional + error"
    if "error" not in header:
        header = header + ("error",)
        note = (note + "; " if note else "") + "error added by the engine"
    return header, note


def describe_task(spec: TaskSpec, verifiers: dict[str, Any]) -> TaskView:
    header, note = effective_header(spec)
    return TaskView(
        category=spec.category,
        action=spec.action,
        description=spec.description,
        doc=spec.doc or "",
        expected_content=spec.expected_content,
        mandatory=tuple(spec.mandatory),
        optional=tuple(spec.optional),
        header=header,
        header_note=note,
        verified=tuple(sorted(verifiers)),
        where=str(spec.where),
    )


def _join(items: tuple[str, ...], empty: str = "(none)") -> str:
    return ", ".join(items) if items else empty


class CatalogScreen(CatalogView):
    """Categories and actions, and the details of the selected task."""

    VIEW_NAME = "Catalog"
    MODE = "catalog"

    BINDINGS = [
        Binding("n", "new_job", "New job", tooltip="a new job for the highlighted task (the dialog, pre-filled)"),
        Binding("e", "expand_all", "Expand all", tooltip="open every category"),
        Binding("c", "collapse_all", "Collapse all", tooltip="close every category"),
    ]

    DEFAULT_CSS = """
    CatalogScreen #catalog-body {
        height: 1fr;
    }
    CatalogScreen #catalog-tree {
        width: 30%;
        min-width: 22;
        max-width: 44;
        border-right: solid $primary-darken-2;
    }
    /* The tree's guides in the theme's muted text colour: ANSI black vanished on a black terminal. */
    CatalogScreen #catalog-tree > .tree--guides { color: $text-muted; }
    CatalogScreen #catalog-tree > .tree--guides-hover { color: $text-muted; }
    CatalogScreen #catalog-tree > .tree--guides-selected { color: $accent; }
    CatalogScreen #catalog-details-pane {
        width: 1fr;
        padding: 0 1;
    }
    CatalogScreen #catalog-details {
        width: 1fr;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._tasks: dict[tuple[str, str], TaskView] = {}
        self._selected: tuple[str, str | None] | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield ViewBar("catalog")
        yield Lines("Catalog  (loading plugins...)", id="catalog-title", classes="view-title")
        with Horizontal(id="catalog-body"):
            tree = KeyTree("catalog", id="catalog-tree")
            tree.show_root = False
            tree.guide_depth = 2
            yield tree
            with VerticalScroll(id="catalog-details-pane"):
                yield Static("", id="catalog-details")
        yield MessageLine()
        yield KeyBar()

    def on_mount(self) -> None:
        self._load()

    # ------------------------------------------------------------------ data

    def _read(self) -> tuple[TaskView, ...]:
        catalog = self.engine.catalog
        verifiers: dict[str, dict[str, Any]] = {}
        views = []
        for spec in catalog.tasks():
            if spec.category not in verifiers:
                verifiers[spec.category] = catalog.verifiers(spec.category)
            views.append(describe_task(spec, verifiers[spec.category]))
        return tuple(views)

    def _show(self, items: tuple[TaskView, ...] | None) -> None:
        if items is None:
            self._update_title()
            self._show_details()
            return
        self._tasks = {(t.category, t.action): t for t in items}
        self._rebuild_tree()

    # ------------------------------------------------------------------ tree

    def _rebuild_tree(self) -> None:
        tree = self.query_one("#catalog-tree", Tree)
        collapsed = {node.data[0] for node in tree.root.children if node.data is not None and not node.is_expanded}
        keep = self._selected
        tree.clear()
        categories: dict[str, list[TaskView]] = {}
        for view in self._tasks.values():
            categories.setdefault(view.category, []).append(view)
        target = None
        first_task = None
        for category in sorted(categories):
            views = sorted(categories[category], key=lambda v: v.action)
            cat_node = tree.root.add(
                Text(f"{category} ({len(views)})", style="bold"),
                data=(category, None),
                expand=category not in collapsed,
            )
            if keep == (category, None):
                target = cat_node
            for view in views:
                label = Text(view.action)
                if view.is_noinput:
                    label.append("  no input", style="dim")
                leaf = cat_node.add_leaf(label, data=(category, view.action))
                if first_task is None:
                    first_task = leaf
                if keep == (category, view.action):
                    target = leaf
        target = target or first_task
        if target is not None:
            self._selected = target.data
            if target.parent is not None and target.parent.data is not None:
                target.parent.expand()
            tree.call_after_refresh(self._move_cursor, target)
        else:
            self._selected = None
        self._update_title()
        self._show_details()

    def _move_cursor(self, node: Any) -> None:
        tree = self.query_one("#catalog-tree", KeyTree)
        tree.move_cursor(node, animate=False)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data is not None:
            self._selected = event.node.data
            self._show_details()

    def _update_title(self) -> None:
        title = self.query_one("#catalog-title", Lines)
        if self._error is not None:
            title.update(Text(f"Catalog  (cannot read the catalog: {self._error})"))
            return
        categories = {c for c, _ in self._tasks}
        title.update(
            Text(
                f"Catalog  {len(self._tasks)} task{'s' if len(self._tasks) != 1 else ''} "
                f"in {len(categories)} categor{'ies' if len(categories) != 1 else 'y'}"
            )
        )

    # ------------------------------------------------------------------ details

    @property
    def tasks(self) -> Mapping[tuple[str, str], TaskView]:
        """The tasks the view shows, by (category, action), as of its last load."""
        return self._tasks

    def selected_task(self) -> TaskView | None:
        """The highlighted task (None when a category, or nothing, is highlighted)."""
        if self._selected is None or self._selected[1] is None:
            return None
        return self._tasks.get((self._selected[0], self._selected[1]))

    def _show_details(self) -> None:
        details = self.query_one("#catalog-details", Static)
        if self._error is not None:
            details.update(Text(f"The catalog could not be read:\n\n{self._error}"))
            return
        if not self._tasks:
            details.update(
                Text(
                    "No tasks are loaded.\n\nPlugin files go in the configured plugin directories "
                    "(plugins.paths); see the Plugins view (4) for load errors."
                )
            )
            return
        view = self.selected_task()
        if view is None and self._selected is not None:
            details.update(self._category_details(self._selected[0]))
            return
        if view is None:
            details.update("")
            return
        details.update(self._task_details(view))

    def _category_details(self, category: str) -> Any:
        views = sorted((v for v in self._tasks.values() if v.category == category), key=lambda v: v.action)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for v in views:
            grid.add_row(Text(v.action, style="bold"), Text(v.description))
        verified = views[0].verified if views else ()
        out = Table.grid()
        out.add_row(Text(f"Category {category}", style="bold underline"))
        out.add_row(Text(f"{len(views)} task{'s' if len(views) != 1 else ''}; verified columns: {_join(verified)}"))
        out.add_row(Text(""))
        out.add_row(grid)
        out.add_row(Text(""))
        out.add_row(Text("Select an action (down arrow) to see its details.", style="dim"))
        return out

    def _task_details(self, view: TaskView) -> Any:
        out = Table.grid()
        out.add_row(Text(view.name, style="bold underline"))
        out.add_row(Text(view.description))
        out.add_row(Text(""))
        if view.doc.strip():
            out.add_row(Text(view.doc.strip()))
            out.add_row(Text(""))
        fields = Table.grid(padding=(0, 2))
        fields.add_column(no_wrap=True, style="bold")
        fields.add_column(overflow="fold")  # a long path folds instead of being cut off
        fields.add_row("Input", Text("no input" if view.is_noinput else str(view.expected_content)))
        if not view.is_noinput:
            if not (view.mandatory or view.optional):
                fields.add_row("Columns", Text("any (no fields declared)"))
            fields.add_row("Mandatory", Text(_join(view.mandatory)))
            fields.add_row("Optional", Text(_join(view.optional)))
            checked = tuple(f for f in view.verified)
            fields.add_row("Verified", Text(_join(checked)))
        header = Text(", ".join(view.header))
        if view.header_note:
            header.append(f"\n({view.header_note})", style="dim")
        fields.add_row("Output", header)
        fields.add_row("Plugin", Text(view.where))
        out.add_row(fields)
        out.add_row(Text(""))
        out.add_row(Text("Press n to start a new job for this task.", style="dim"))
        return out

    # ------------------------------------------------------------------ actions

    def action_new_job(self) -> None:
        view = self.selected_task()
        if view is None:
            self.notify("Select a task (an action under a category) first.", severity="warning")
            return
        self.console.open_new_job(view.category, view.action)

    def action_expand_all(self) -> None:
        tree = self.query_one("#catalog-tree", Tree)
        keep = tree.cursor_node
        tree.root.expand_all()
        self._keep_cursor_on(keep)

    def action_collapse_all(self) -> None:
        tree = self.query_one("#catalog-tree", Tree)
        keep = tree.cursor_node
        for node in tree.root.children:
            node.collapse()
        if keep is not None and keep.parent is not None and keep.parent is not tree.root:
            keep = keep.parent  # a task's line is gone: its category takes the cursor
        self._keep_cursor_on(keep)

    def _keep_cursor_on(self, node: Any) -> None:
        """After lines came or went above it: the cursor stays on ``node``, with its details
        (the tree kept the cursor's line number, on whatever line then had it)."""
        if node is None or node.data is None:
            return
        self._selected = node.data
        self._show_details()
        self.query_one("#catalog-tree", Tree).call_after_refresh(self._move_cursor, node)
