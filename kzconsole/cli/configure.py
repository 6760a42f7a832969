"""``kzconsole config init``: the configuration file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzconsole.cli.common import EXIT_OK, add_command


def register(commands: Any) -> None:
    cfg = add_command(
        commands,
        "config",
        "configuration files",
        "The configuration file (TOML): read from --config FILE, else $KZCONSOLE_CONFIG, else\n"
        "./kzconsole.toml, else ~/.config/kzconsole/config.toml. `config init` writes one.",
    )
    actions = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    init = add_command(actions, "init", "write a commented config file", handler=cmd_config_init)
    init.add_argument("path", metavar="PATH", nargs="?", help="where to write it (default: ./kzconsole.toml)")


def cmd_config_init(args: argparse.Namespace) -> int:
    """Write the commented example configuration (every key, with its default) to PATH, or to
    ./kzconsole.toml; a folder gets a kzconsole.toml inside. An existing file is never
    overwritten."""
    from kzconsole.config import write_example_config

    path = write_example_config(args.path)
    sys.stdout.write(f"wrote {path}\n")
    return EXIT_OK
