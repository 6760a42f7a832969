"""``kzconsole nodes`` and ``kzconsole store copy``: the engines on the store, and moving a store's
jobs into another (contract 9)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kzconsole.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Writer,
    add_command,
    err,
    local_time,
    open_engine,
    print_json,
    print_listing,
)

if TYPE_CHECKING:
    from kzconsole.engine import NodeInfo


def register(commands: Any) -> None:
    add_command(
        commands,
        "nodes",
        "every engine on the store, alive or dead (a cluster's nodes)",
        handler=cmd_nodes,
        json="a list of engines",
    )
    store = add_command(commands, "store", "store maintenance: `store copy FROM_URL TO_URL`")
    sub = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    copy = add_command(
        sub,
        "copy",
        "copy every job, its files, the trigger history and the API keys into another store",
        handler=cmd_store_copy,
        json="the counts",
    )
    copy.add_argument("from_url", metavar="FROM_URL", help="sqlite:///PATH or postgresql://...")
    copy.add_argument("to_url", metavar="TO_URL", help="sqlite:///PATH or postgresql://...")


def cmd_nodes(args: argparse.Namespace) -> int:
    """Every engine on the store (on a PostgreSQL store, every node of the cluster): its node
    name, host, process id, version, when it started, its last heartbeat on the store's clock,
    the jobs it runs and its slots (tasks.max_running), alive or dead, and for a dead one the
    jobs other engines resumed. An engine that stopped gracefully is not listed."""
    with open_engine(args) as engine:
        return print_listing(args, engine.nodes(), _nodes_text)


def _nodes_text(nodes: Sequence[NodeInfo], w: Writer) -> None:
    if not nodes:
        w("no engine on this store\n")
        return
    w(f"{'NODE':20} {'STATE':5} {'HOST':16} {'PID':>7} {'VERSION':8} {'STARTED':19} {'HEARTBEAT':12} {'RUNNING':>7}\n")
    for n in nodes:
        w(
            f"{n.name[:20]:20} {'alive' if n.alive else 'DEAD':5} {n.host[:16]:16} {n.pid:>7} "
            f"{n.version[:8]:8} {local_time(n.started):19} {n.heartbeat_age():12} "
            f"{n.load():>7}\n"
        )
        for t in n.resumed_elsewhere:
            what = "resumed" if t.outcome == "resumed" else "ended internal_error"
            w(f"    job {t.job_id} {what} by {t.to_name} at row {t.rows_done + 1} ({local_time(t.at)})\n")


def cmd_store_copy(args: argparse.Namespace) -> int:
    """Copy every job (its record, input, output, log), the trigger history and the API keys
    from the store FROM_URL into the store TO_URL (e.g. a node's SQLite store into the
    cluster's PostgreSQL). Jobs the target already has are never overwritten: they are
    reported, and the exit code is 2. Stop the engines on FROM_URL first."""
    from pathlib import Path

    from kzconsole.config import resolve_store_url
    from kzconsole.engine import copy_stores

    urls = []
    for name, value in (("FROM_URL", args.from_url), ("TO_URL", args.to_url)):
        try:
            urls.append(resolve_store_url(value, Path.cwd()))
        except ValueError as exc:
            raise CliError(f"{name}: {exc}") from None  # with --json, {"error": ...} on stdout too

    def progress(what: str, count: int) -> None:
        if what == "jobs" and count % 500 == 0 and sys.stderr.isatty():
            sys.stderr.write(f"\r{count} jobs copied")

    report = copy_stores(urls[0], urls[1], progress=progress)
    if args.json:
        print_json(dict(report))
    else:
        sys.stdout.write(
            f"copied {report['jobs']} job(s) ({report['bytes']} bytes of files),"
            f" {report['firings']} trigger firing(s) and {report['api_keys']} API key(s)\n"
        )
    if report["skipped"]:
        err(
            f"{report['skipped']} job(s) exist in {report.target} and were not overwritten"
            f" (e.g. {', '.join(report['skipped_ids'][:5])})"
        )
        return EXIT_USAGE
    return EXIT_OK
