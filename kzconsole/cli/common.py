"""What every command shares: exit codes, errors, JSON output, argument types, opening the engine.

Nothing heavy is imported here: the engine is imported by the functions that need it, so that
``kzconsole --help`` or a usage error costs no engine import.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from kzconsole.config import Settings
    from kzconsole.engine import Engine

EXIT_OK, EXIT_NOT_SUCCESS, EXIT_USAGE = 0, 1, 2

T = TypeVar("T")
R = TypeVar("R")
Writer = Callable[[str], Any]  # sys.stdout.write


class CliError(Exception):
    """A command that cannot be done: ``kzconsole: MESSAGE`` on stderr and exit 2. With
    ``--json``, ``document`` (by default ``{"error": MESSAGE}``) is printed on stdout too, so a
    script always gets a document."""

    def __init__(self, message: str, *, document: Any = None) -> None:
        super().__init__(message)
        self.document = {"error": message} if document is None else document


class UsageError(CliError):
    """A command line argparse refused; ``usage`` is the usage line of the (sub)command."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (and reported by ``main``, as JSON too with
    ``--json``) instead of printed and exited on the spot."""

    def error(self, message: str) -> Any:
        command = self.prog.partition(" ")[2]  # "kzconsole tasks list" -> "tasks list"
        raise UsageError(f"{command}: {message}" if command else message, self.format_usage())


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_listing(args: argparse.Namespace, items: Sequence[Any], text: Callable[[Sequence[Any], Writer], None]) -> int:
    """A listing command's output: with ``--json`` each item's ``public()`` as one document,
    otherwise ``text(items, write)``."""
    if wants_json(args):
        print_json([item.public() for item in items])
    else:
        text(items, sys.stdout.write)
    return EXIT_OK


def err(message: str) -> None:
    sys.stderr.write(f"kzconsole: {message}\n")
    sys.stderr.flush()


def local_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def utc_time(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------ parsers


def add_command(
    subparsers: Any,
    name: str,
    summary: str,
    description: str | None = None,
    *,
    handler: Callable[[argparse.Namespace], int] | None = None,
    job_id: bool = False,
    json: str | None = None,
) -> Parser:
    """A (sub)command's parser: ``summary`` is its line in the parent's list, ``description``
    the text of its own ``--help`` page, kept as written (default: the handler's docstring, which
    is written for the operator, else the summary); ``handler`` runs it (returns the exit code);
    ``job_id`` adds the ``ID`` argument; ``json`` adds ``--json``, printing what it names."""
    if description is None and handler is not None and handler.__doc__:
        first, _, rest = handler.__doc__.partition("\n")
        description = (first.strip() + "\n" + textwrap.dedent(rest)).strip()
    parser: Parser = subparsers.add_parser(
        name, help=summary, description=description or summary, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if job_id:
        add_id(parser)
    if json is not None:
        add_json(parser, json)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


JSON_HELP = 'print one JSON document on stdout (an error too: {"error": "..."})'
ID_HELP = "the job: its id (32 hex characters) or a unique prefix of it, 6 characters or more"


def add_json(parser: argparse.ArgumentParser, what: str | None = None, **kwargs: Any) -> None:
    if what is None:
        help_text = JSON_HELP
    else:
        help_text = f'print {what} as one JSON document on stdout (an error: {{"error": "..."}})'
    parser.add_argument("--json", action="store_true", help=help_text, **kwargs)


def add_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", type=job_id, help=ID_HELP)


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


# ----------------------------------------------------------------------- argument types
#
# argparse reports a type's ArgumentTypeError as "argument --OPTION: MESSAGE": every bad value is
# refused before anything is opened, with the option named.


def job_id(text: str) -> str:
    """A job id or a prefix of one (>= 6 characters), lower-cased: what users type never reaches
    the store unchecked, and a prefix too short to be unique says so instead of "no job"."""
    value = text.strip().lower()
    if not value or any(c not in "0123456789abcdef" for c in value) or len(value) > 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (32 hex characters) or a prefix of one (6 or more)")
    if len(value) < 6:
        raise argparse.ArgumentTypeError(f"{text!r} is too short: a job id prefix needs at least 6 characters")
    return value


def _checked(check: Callable[[T], R], value: T) -> R:
    """``check(value)``, its ValueError told as argparse's (the checks live in the engine and the
    configuration, which the command line imports only once a value is read)."""
    try:
        return check(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def account_id(text: str) -> str:
    from kzconsole.engine import check_account_id

    return _checked(check_account_id, text)


def wait_ms(text: str) -> int:
    from kzconsole.engine import check_wait_ms

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of milliseconds, got {text!r}") from None
    return _checked(check_wait_ms, value)


def whole_number(minimum: int) -> Callable[[str], int]:
    """An integer option with a lower bound (``--limit``)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return convert


# ---------------------------------------------------------------------------- the engine


def node_option(text: str) -> str:
    """``--node NAME`` (contract 9)."""
    from kzconsole.config import check_node_name

    return _checked(check_node_name, text)


def add_node_option(parser: argparse.ArgumentParser) -> None:
    """``--node NAME`` for the commands that run an engine (engine, tui, serve)."""
    parser.add_argument(
        "--node",
        metavar="NAME",
        type=node_option,
        help="this node's name in a cluster (default: engine.node, else the host name)",
    )


def settings(args: argparse.Namespace) -> Settings:
    from kzconsole.config import load_settings

    loaded = load_settings(args.config, data_dir=args.data_dir, extra_plugin_paths=args.plugins)
    if getattr(args, "node", None):
        loaded = loaded.with_overrides(engine={"node": args.node})
    return loaded


def open_engine(args: argparse.Namespace) -> Engine:
    """The engine facade on the configured store; the caller closes it (``with``)."""
    from kzconsole.engine import Engine

    return Engine(settings(args))
