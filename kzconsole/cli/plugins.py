"""``kzconsole plugins``: what loaded, what each source declares, and load errors."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kzconsole.cli.common import Writer, add_command, open_engine, print_listing

if TYPE_CHECKING:
    from kzconsole.engine import PluginSource


def register(commands: Any) -> None:
    add_command(
        commands,
        "plugins",
        "loaded plugin files, what each declares, load errors",
        handler=cmd_plugins,
        json="the list of sources",
    )


def cmd_plugins(args: argparse.Namespace) -> int:
    """Every plugin source in load order (built-in modules, plugin files, entry points): whether
    it loaded, its tasks, verifiers and trigger functions, and for one that did not load, the
    error with its traceback. This process loads the plugins itself, as `tasks add` does."""
    with open_engine(args) as engine:
        return print_listing(args, engine.plugins(), _plugins_text)


def _plugins_text(sources: Sequence[PluginSource], w: Writer) -> None:
    for s in sources:
        state = "loaded" if s.loaded else "NOT LOADED"
        w(f"{s.source}  [{s.kind}, {state}]\n")
        for t in s.tasks:
            w(f"    task     {t.name}\n")
        for v in s.verifiers:
            w(f"    verifier {v.name}\n")
        for tr in s.triggers:
            w(f"    trigger  {tr.trigger}:{tr.function_name}\n")
        if s.error:
            w("    error:\n")
            for line in s.error.rstrip().splitlines():
                w(f"      {line}\n")
