"""``kzconsole serve`` and ``kzconsole api-keys``: their parsers, registered by the command line
(``kzconsole.cli``). Building the parsers imports nothing of the web stack: the handlers do."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzconsole.cli.common import CliError, add_command, add_json, add_node_option, open_engine, print_json, settings


def register(commands: Any) -> None:
    serve = add_command(
        commands,
        "serve",
        "the REST API (Kazoo's tasks API), with the engine embedded",
        "Serve the REST API, compatible with Kazoo's Crossbar tasks API (docs/api.md), until\n"
        "SIGINT/SIGTERM (graceful, as `kzconsole engine`). The engine is embedded unless\n"
        "--no-engine: then another process on the same store runs the jobs.",
    )
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen (default: api.listen, 127.0.0.1:8000; port 0: any free one)",
    )
    serve.add_argument("--no-engine", action="store_true", help="serve the store only; another process runs the jobs")
    add_node_option(serve)  # contract 9 (owner: pg)
    serve.set_defaults(handler=cmd_serve)

    keys = add_command(
        commands,
        "api-keys",
        "API keys for the REST API",
        "API keys for `kzconsole serve`. A key acts for one account (or, --superadmin, for all);\n"
        "it is printed once, when it is made: only its hash is stored, in the store, so every\n"
        "node of a cluster knows it. Removing a key ends its tokens at once.",
    )
    actions = keys.add_subparsers(dest="api_keys_command", metavar="ACTION")
    actions.required = True
    add = add_command(actions, "add", "make a key (printed once)")
    add.add_argument("--account", metavar="ID", required=True, help="the account the key acts for (32 hex characters)")
    add.add_argument("--name", metavar="NAME", help="a note saying whose key it is")
    add.add_argument("--superadmin", action="store_true", help="the key may act on every account")
    add_json(add, '{"id", "key", "account_id", "name", "superadmin"}')
    add.set_defaults(handler=cmd_api_keys)
    listing = add_command(actions, "list", "the keys (never the keys themselves)")
    add_json(listing, "the list of keys")
    listing.set_defaults(handler=cmd_api_keys)
    remove = add_command(actions, "remove", "remove a key; its tokens stop working at once")
    remove.add_argument("key_id", metavar="KEY_ID")
    add_json(remove, "the removed key")
    remove.set_defaults(handler=cmd_api_keys)


def cmd_serve(args: argparse.Namespace) -> int:
    from kzconsole.api.serve import ServeError, serve

    try:
        return serve(settings(args), listen=args.listen, run_engine=not args.no_engine)
    except ServeError as exc:
        raise CliError(str(exc)) from None


def cmd_api_keys(args: argparse.Namespace) -> int:
    from kzconsole.api.keys import cmd_api_keys as run

    with open_engine(args) as engine:
        try:
            return run(args, engine, sys.stdout, print_json)
        except (ValueError, LookupError) as exc:
            raise CliError(str(exc)) from None
