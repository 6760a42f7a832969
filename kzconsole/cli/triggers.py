"""``kzconsole triggers`` (schedules and history) and ``kzconsole triggers run NAME`` (fire one now).

Only the engine facade is used: ``trigger_schedule()``, ``firings()``, ``fire_trigger()``. A firing
still in progress is listed with ``"status": "running"`` and ``"ended": null`` (see
docs/operations.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from typing import Any

from kzconsole.cli.common import (
    EXIT_NOT_SUCCESS,
    EXIT_OK,
    add_command,
    add_json,
    err,
    open_engine,
    print_json,
    utc_time,
)

HISTORY_SHOWN = 100  # firings listed by `kzconsole triggers`, newest first (its help says 100)
FIRE_NAMES = ("minutely", "hourly", "daily", "databases")


def register(commands: Any) -> None:
    tr = add_command(
        commands,
        "triggers",
        "trigger schedules and history; `triggers run NAME` fires one now",
        handler=cmd_triggers,
        json='{"triggers": [...], "history": [...]}',
    )
    actions = tr.add_subparsers(dest="triggers_command", metavar="ACTION")
    run = add_command(
        actions, "run", "fire minutely, hourly, daily or databases now, in the foreground", handler=cmd_triggers_run
    )
    run.add_argument("name", metavar="NAME", choices=FIRE_NAMES, help="one of " + ", ".join(FIRE_NAMES))
    # SUPPRESS: `triggers --json run NAME` keeps the --json given before the subcommand.
    add_json(run, "the firing record", default=argparse.SUPPRESS)


def describe_firing(f: Mapping[str, Any]) -> list[str]:
    if f["ended"] is None:
        head = f"{f['trigger']} {f['status']} since {utc_time(f['started'])} UTC"
    else:
        head = f"{f['trigger']} {f['status']} at {utc_time(f['started'])} UTC ({f['ended'] - f['started']:.2f} s)"
    lines = [head]
    if f.get("reason"):
        lines.append(f"  reason: {f['reason']}")
    for fn in f.get("functions", ()):
        mark = "ok    " if fn["ok"] else "FAILED"
        lines.append(f"  {mark} {fn['function']} ({fn['seconds']:.3f} s)")
        if fn.get("error"):
            lines.append(f"         {fn['error']}")
    dbs = f.get("databases", ())
    if dbs:
        bad = [d for d in dbs if not d["ok"]]
        lines.append(f"  databases: {len(dbs)} visited, {len(bad)} failed")
        for d in bad[:20]:
            lines.append(f"    FAILED {d['name']} ({d['kind']})")
    return lines


def cmd_triggers(args: argparse.Namespace) -> int:
    """Each trigger (minutely, hourly, daily, the database pass `databases`, and the database
    kinds) with its bound functions, its next firing (UTC) and its last firing, then the
    history of firings, newest first (the last 100). A firing is `ok`, `failed` (a bound
    function raised), `skipped` (the previous one still ran) or `running` (not ended yet:
    `ended` is null)."""
    with open_engine(args) as engine:
        schedule = engine.trigger_schedule()
        history = [f.public() for f in engine.firings(limit=HISTORY_SHOWN)]
    if args.json:
        print_json({"triggers": schedule, "history": history})
        return EXIT_OK
    w = sys.stdout.write
    w(f"{'TRIGGER':<12} {'NEXT FIRE (UTC)':<20} {'LAST':<30} FUNCTIONS\n")
    for entry in schedule:
        last = entry["last"]
        last_text = "-" if last is None else f"{last['status']} {utc_time(last['started'])}"
        fns = entry["functions"]
        w(f"{entry['name']:<12} {utc_time(entry['next_fire']):<20} {last_text:<30} {fns[0] if fns else '-'}\n")
        for more in fns[1:]:
            w(f"{'':<64} {more}\n")
    w("\nHistory (newest first):\n")
    if not history:
        w("  (no firing yet)\n")
    for f in history:
        for line in describe_firing(f):
            w(f"  {line}\n")
    return EXIT_OK


class _StderrLog(logging.Handler):
    """While a firing runs in the foreground, its log (plugin prints included) goes to stderr;
    stdout keeps only the firing record."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        # Taken before the firing: the engine then routes sys.stderr (prints) to its logs.
        self.stream = sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


def cmd_triggers_run(args: argparse.Namespace) -> int:
    """Fire a trigger now, in this process, and print the firing record when it ends; its log
    (and what its functions print) goes to stderr. `databases` runs a whole database pass.
    Exit 0 when the firing ran, even if a bound function raised (the record says which); 1 when
    it was skipped because the previous firing of that trigger still runs."""
    with open_engine(args) as engine:
        engine.plugins()  # plugins load first, so their load messages stay out of the firing's log
        # The whole log (the firing's, the plugins' own loggers, their prints) goes to stderr
        # while it runs: a foreground command shows what it does.
        root = logging.getLogger()
        handler = _StderrLog()
        previous_level = root.level
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        try:
            firing = engine.fire_trigger(args.name, wait=True)
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)
    assert firing is not None  # wait=True returns the ended (or skipped) firing
    record = firing.public()
    if getattr(args, "json", False):
        print_json(record)
    else:
        sys.stdout.write("\n".join(describe_firing(record)) + "\n")
    if firing.status == "skipped":
        err(f"{args.name} was not run: {firing.reason}")
        return EXIT_NOT_SUCCESS
    return EXIT_OK
