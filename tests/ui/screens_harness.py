"""A minimal App that shows one of the catalog/triggers/plugins/logs screens over an Engine.

Not the real console (kzconsole/app.py): just enough of an app (an ``engine`` attribute, an
``open_new_job`` that records its calls, number keys to switch views) to test the screens alone
with Pilot, and to look at them in a terminal:

    .venv/bin/python -m tests.ui.screens_harness catalog --data-dir /tmp/kzh --plugins DIR [--start]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from kzconsole.screens.catalog import CatalogScreen
from kzconsole.screens.logs import LogsScreen
from kzconsole.screens.plugins import PluginsScreen
from kzconsole.screens.triggers import TriggersScreen

SCREENS: dict[str, Callable[[], Screen]] = {
    "catalog": CatalogScreen,
    "triggers": TriggersScreen,
    "plugins": PluginsScreen,
    "logs": LogsScreen,
}


class ScreensHarness(App):
    """Holds ``engine`` and shows one screen; ``2``-``5`` switch between the four views."""

    BINDINGS = [
        Binding("2", "view('catalog')", "Catalog", show=False),
        Binding("3", "view('triggers')", "Triggers", show=False),
        Binding("4", "view('plugins')", "Plugins", show=False),
        Binding("5", "view('logs')", "Logs", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]

    def __init__(self, engine: Any, first: str = "catalog") -> None:
        super().__init__()
        self.engine = engine
        self.first = first
        self.new_job_calls: list[tuple[str, str]] = []
        self._screens: dict[str, Screen] = {}

    def on_mount(self) -> None:
        self.action_view(self.first)

    def action_view(self, name: str) -> None:
        screen = self._screens.get(name)
        if screen is None:
            screen = self._screens[name] = SCREENS[name]()
        if self.screen is screen:
            return
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def open_new_job(self, category: str, action: str) -> None:
        self.new_job_calls.append((category, action))
        self.notify(f"new job for {category}/{action}")


def main(argv: list[str] | None = None) -> int:
    from kzconsole.config import load_settings
    from kzconsole.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("view", choices=sorted(SCREENS), nargs="?", default="catalog")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--plugins", action="append", default=[])
    parser.add_argument("--start", action="store_true", help="start the engine (logs, triggers)")
    args = parser.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    settings = load_settings(None, data_dir=args.data_dir, extra_plugin_paths=args.plugins)
    engine = Engine(settings)
    if args.start:
        engine.start(run_jobs=True)
    try:
        ScreensHarness(engine, args.view).run()
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
