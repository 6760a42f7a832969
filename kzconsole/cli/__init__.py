"""The command line (contract section 7): ``kzconsole [--config FILE] [--data-dir DIR] [--plugins DIR]... COMMAND``.

Each command (or group of commands) is a module of this package with a ``register(commands)``
function: it adds its parser to ``commands`` (the sub-parsers of ``kzconsole``) with
:func:`~kzconsole.cli.common.add_command`, naming its ``handler``, a function of the parsed
arguments that returns the exit code. Adding a command is one module and one line in
``COMMAND_MODULES``; a handler raises :class:`~kzconsole.cli.common.CliError` (or an engine,
store or config error) for what the operator must fix, and ``main`` reports it (exit 2, and
``{"error": ...}`` with ``--json``).

Start-up stays fast: only ``kzconsole`` / ``tui`` / ``demo`` import Textual, and the engine is
imported by the handlers, never when the parser is built. Exit codes: 0 done; 1 the job ran but
did not end ``success``; 2 bad usage, bad config, rejected input, unknown task/job, or an
operation the job's status forbids. With ``--json`` every outcome is one JSON document on
stdout, an error included (``{"error": "..."}``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from kzconsole.cli import configure, console, nodes, plugins, tasks, triggers
from kzconsole.cli.common import EXIT_OK, EXIT_USAGE, CliError, Parser, UsageError, err, print_json, wants_json

__all__ = ["main", "build_parser"]

from kzconsole.cli import api as api_commands  # serve, api-keys: the API's commands

# In the order `kzconsole --help` lists them.
COMMAND_MODULES = (console, tasks, plugins, triggers, nodes, api_commands, configure)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="kzconsole",
        description="Kazoo Tasks on a terminal: a console, an engine and a command line for background jobs.",
        epilog="Without a COMMAND, the console opens. `kzconsole COMMAND --help` describes each command.",
    )
    p.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    p.add_argument("--data-dir", metavar="DIR", help="where the store and job files live ($KZCONSOLE_DATA_DIR)")
    p.add_argument("--plugins", metavar="DIR", action="append", default=[], help="add a plugin directory (repeatable)")
    p.set_defaults(handler=console.cmd_tui)
    commands = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:  # the real command line, not a caller in the same process (tests)
        _exit_without_waiting_for_plugin_threads(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list[: args_list.index("--")] if "--" in args_list else "--json" in args_list
    try:
        args = build_parser().parse_args(args_list)
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        return _report(exc, as_json)
    as_json = wants_json(args)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return _report(CliError("interrupted"), as_json, code=130)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # only errors the operator can act on are reported
        problem = _operator_error(exc)
        if problem is None:
            raise
        return _report(problem, as_json)


def _operator_error(exc: BaseException) -> CliError | None:
    """The errors that are the operator's to fix (bad usage, config, input, state, files), as the
    message and document to show; None for a bug, whose traceback is worth seeing."""
    from kzconsole.config import ConfigError
    from kzconsole.engine import EngineError, JobRejected, StoreError

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, JobRejected):
        return CliError(f"job rejected: {exc}", document={"errors": exc.errors})
    if isinstance(exc, (ConfigError, EngineError, StoreError)):
        return CliError(str(exc))
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return CliError(f"cannot use{where}: {exc.strerror or exc}")
    return None


def _report(problem: CliError, as_json: bool, code: int = EXIT_USAGE) -> int:
    if as_json:
        try:
            print_json(problem.document)
        except BrokenPipeError:
            _silence_stdout()
    err(str(problem))
    return code


def _silence_stdout() -> None:
    """`kzconsole tasks list | head`: the reader left, which is not an error. Point stdout at
    /dev/null so that flushing it at exit does not report the closed pipe either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a caller's StringIO)
        pass


def _exit_without_waiting_for_plugin_threads(code: int) -> None:
    """A plugin may leave a non-daemon thread running. Python waits for such threads at exit, so
    a finished `tasks run` or a stopped `kzconsole engine` would hang until the thread ends: exit
    now instead, once the output is flushed."""
    me = threading.current_thread()
    if not any(t.is_alive() and not t.daemon and t is not me for t in threading.enumerate()):
        return
    err("a plugin left a thread running; exiting without waiting for it")
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
