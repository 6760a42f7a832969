"""The footer: the keys that apply here, as many as the width holds, and always ``?`` for the rest.

Textual's footer cut its list at the right edge ("... : Cm" at 80 columns) and never showed keys
marked hidden, even at 160 columns. This one lists the view's own keys first, in the order the view
declares them, then the keys of the focused part, then the console's; it drops what does not fit
and says so (``? 5 more``). A key that does not apply to the highlighted job is shown dimmed
(pressing it says why, on the message line). It repaints only the cells that changed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.keys import key_to_character

from kzconsole.widgets import glyphs
from kzconsole.widgets.lines import Lines

HELP_KEY = "question_mark"


def key_label(app: Any, binding: Binding) -> str:
    if binding.key == "enter":
        return "enter" if glyphs.ascii_mode() else "⏎"
    return binding.key_display or app.get_key_display(binding)


def own_actions(node: Any) -> frozenset[str]:
    """Actions bound by the console's own classes (not Textual's generic focus/copy/scroll keys)."""
    return _own_actions(type(node))


@cache
def _own_actions(node_class: type) -> frozenset[str]:
    # Per class (bindings are class attributes): the footer asks for every key at every key press.
    actions: set[str] = set()
    for cls in node_class.__mro__:
        if cls.__module__.startswith("kzconsole"):
            for binding in cls.__dict__.get("BINDINGS", ()):
                if isinstance(binding, Binding):
                    actions.add(binding.action)
    return frozenset(actions)


def _typed_by(widget: Any, key: str, binding: Binding) -> bool:
    """Whether ``widget`` (a text box) takes ``key`` as a character typed, not as the binding.
    Textual leaves out of the active bindings the keys a focused text box consumes, but it knows
    no character for the keys ``plus`` and ``minus``: their bindings stayed listed."""
    character = key_to_character(key)
    if character is None and binding.key_display and len(binding.key_display) == 1:
        character = binding.key_display
    return character is not None and bool(widget.check_consume_key(key, character))


class KeyBar(Lines):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; }
    KeyBar > .key-bar--key { text-style: bold; color: $accent; }
    KeyBar > .key-bar--dim { color: $text-disabled; }
    KeyBar > .key-bar--more { color: $text-muted; }
    """

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--dim", "key-bar--more"}

    _keys: list[tuple[str, str, bool]] | None = None  # what the bar was last built from

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self._changed())
        self.watch(self.screen, "focused", lambda _focused: self._changed(), init=False)

    def _changed(self) -> None:
        if not (self.is_attached and self.app.screen_stack):  # not while the app shuts down
            return
        # The bindings are announced as updated at most key presses (another job highlighted):
        # the bar is built again only when the keys it shows, or whether they apply, changed.
        keys = self.keys()
        if keys != self._keys:
            self._keys = keys
            self.update()

    def notify_style_update(self) -> None:
        self._keys = None
        super().notify_style_update()

    def keys(self) -> list[tuple[str, str, bool]]:
        """(key, description, applies) in the order shown, without duplicates."""
        screen = self.screen
        app = self.app
        groups: dict[int, list[tuple[str, str, bool]]] = {0: [], 1: [], 2: []}
        seen: set[tuple[str, str]] = set()
        help_entry = None
        focused = screen.focused
        for key, active in screen.active_bindings.items():
            binding = active.binding
            node = active.node
            if not binding.description or binding.system:
                continue
            if focused is not None and node is not focused and _typed_by(focused, key, binding):
                continue  # a text box takes this key as a character (Textual misses "+" and "-")
            if binding.action not in own_actions(node):
                continue
            ident = (binding.action, binding.description)
            if ident in seen:
                continue
            seen.add(ident)
            entry = (key_label(app, binding), binding.description, active.enabled)
            if key == HELP_KEY:
                help_entry = entry
                continue
            if not binding.show:
                continue  # listed by ? (the view's number keys: the top line shows them)
            group = 0 if node is screen else (2 if node is app else 1)
            groups[group].append(entry)
        out = groups[0] + groups[1] + groups[2]
        if help_entry is not None:
            out.append(help_entry)
        return out

    def content_for(self, width: int) -> Text:
        entries = self._keys = self.keys()
        help_entry = entries[-1] if entries and entries[-1][1] == "Help" else None
        body = entries[:-1] if help_entry is not None else entries
        key_style = self.get_component_rich_style("key-bar--key", partial=True)
        dim_style = self.get_component_rich_style("key-bar--dim", partial=True)
        more_style = self.get_component_rich_style("key-bar--more", partial=True)

        def piece(entry: tuple[str, str, bool]) -> Text:
            key, description, enabled = entry
            text = Text(no_wrap=True)
            text.append(f" {key}", key_style if enabled else dim_style)
            text.append(f" {description}", None if enabled else dim_style)
            return text

        tail = piece(help_entry) if help_entry is not None else Text()
        line = Text(no_wrap=True, overflow="crop")
        shown = 0
        for n, entry in enumerate(body):
            part = piece(entry)
            left = len(body) - n - 1
            more = Text(f" +{left} more", more_style) if left else Text()
            if line.cell_len + part.cell_len + more.cell_len + tail.cell_len > width:
                break
            line.append_text(part)
            shown += 1
        hidden = len(body) - shown
        if hidden:
            line.append(f" +{hidden} more", more_style)
        line.append_text(tail)
        return line
