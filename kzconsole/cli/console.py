"""``kzconsole tui`` (the default), ``kzconsole engine`` and ``kzconsole demo``: the commands that
run until they are told to stop."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from kzconsole.cli.common import EXIT_OK, add_command, add_node_option, open_engine, settings


def register(commands: Any) -> None:
    tui = add_command(
        commands, "tui", "the full-screen console with the engine embedded (the default)", handler=cmd_tui
    )
    _ascii_option(tui)
    add_node_option(tui)

    engine = add_command(
        commands, "engine", "run the engine in the foreground until SIGINT/SIGTERM", handler=cmd_engine
    )
    add_node_option(engine)

    demo = add_command(commands, "demo", "open the console on a throwaway data dir full of examples", handler=cmd_demo)
    demo.add_argument("--no-tui", action="store_true", help="only create the demo data dir and print its path")
    demo.add_argument("--dir", metavar="DIR", help="create the demo there instead of a temporary folder")
    _ascii_option(demo)


def _ascii_option(parser: argparse.ArgumentParser) -> None:
    # console: plain ASCII symbols and borders (also when the locale is not UTF-8)
    parser.add_argument(
        "--ascii", action="store_true", default=None, help="draw plain ASCII (the default when the locale is not UTF-8)"
    )


def cmd_tui(args: argparse.Namespace) -> int:
    """The full-screen console, with the engine embedded: it runs started jobs, resumes the jobs
    a dead engine left, watches the plugin directories and fires triggers, on the same store as
    `kzconsole engine`. `kzconsole` alone does the same."""
    from kzconsole.app import run_console

    return run_console(settings(args), ascii=getattr(args, "ascii", None))


def cmd_demo(args: argparse.Namespace) -> int:
    """Create a data dir with example jobs of every status and trigger history, and open the
    console on it."""
    from kzconsole.demo import run_demo

    return run_demo(args)


def cmd_engine(args: argparse.Namespace) -> int:
    """Run the engine alone, in the foreground, logging on stderr: it runs the jobs started with
    `tasks start` (at most tasks.max_running at once), watches the plugin directories and fires
    triggers. Ctrl-C or SIGTERM stops it gracefully: running jobs stop at a checkpoint and the
    next engine on the store resumes them."""
    import logging

    engine = open_engine(args)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log = logging.getLogger("kzconsole.engine")
    try:
        engine.start()
        log.info(
            "engine %s (node %s) running on %s (max %d jobs); Ctrl-C to stop",
            engine.node,
            engine.node_name,
            engine.store_display,
            engine.settings.tasks.max_running,
        )
        while not stop.wait(1.0):
            pass
    finally:
        log.info("shutting down: running jobs will resume at the next start")
        stuck = engine.stop()
        if stuck:
            log.warning(
                "jobs still inside a row at exit (they resume from their last checkpoint): %s", ", ".join(stuck)
            )
        engine.close()
    return EXIT_OK
