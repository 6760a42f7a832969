"""``kzconsole plugins``: what loaded, what each source declares, and load errors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzconsole.cli.common import EXIT_OK, add_command, open_engine, print_json


def register(commands: Any) -> None:
    add_command(commands, "plugins", "loaded plugin files, what each declares, load errors", handler=cmd_plugins,
                json="the list of sources")


def cmd_plugins(args: argparse.Namespace) -> int:
    """Every plugin source in load order (built-in modules, plugin files, entry points): whether
    it loaded, its tasks, verifiers and trigger functions, and for one that did not load, the
    error with its traceback. This process loads the plugins itself, as `tasks add` does."""
    with open_engine(args) as engine:
        sources = engine.plugins()
        if args.json:
            print_json([s.public() for s in sources])
            return EXIT_OK
        w = sys.stdout.write
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
        return EXIT_OK
