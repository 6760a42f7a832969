"""``kzconsole tasks ...``: the catalog and the jobs (contract sections 4 and 7)."""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import threading
import time
from typing import Any

from kzconsole.cli.common import (
    EXIT_NOT_SUCCESS,
    EXIT_OK,
    CliError,
    add_command,
    local_time,
    open_engine,
    print_json,
)


def register(commands: Any) -> None:
    tasks = add_command(commands, "tasks", "jobs: add, start, run, stop, show, list, ...")
    ts = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    h = ts.add_parser("help", help="the catalog of tasks")
    h.add_argument("category", nargs="?")
    h.add_argument("action", nargs="?")
    h.add_argument("--json", action="store_true")
    h.set_defaults(handler=cmd_help)

    a = ts.add_parser("add", help="create a pending job (checks the input first)")
    a.add_argument("category")
    a.add_argument("action")
    a.add_argument("--input", metavar="FILE", help="input CSV or JSON file, or - for stdin")
    a.add_argument("--format", choices=["csv", "json"], help="input format (default: by the file name)")
    a.add_argument("--account", metavar="ID")
    a.add_argument("--auth-account", metavar="ID")
    a.add_argument("--file-name", metavar="NAME")
    a.add_argument("--wait-ms", type=int, metavar="N", help="pause after each row (default: config)")
    a.add_argument("--run", action="store_true", help="run it now, in this process, as `tasks run` does")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_add)

    for name, helptext in (("start", "ask the engine to run a job"), ("stop", "stop a job"),
                           ("restart", "a new job with the same task and input"),
                           ("remove", "delete a job that is not running, with its files")):
        c = ts.add_parser(name, help=helptext)
        c.add_argument("id")
        c.add_argument("--json", action="store_true")
        c.set_defaults(handler=cmd_change)

    r = ts.add_parser("run", help="run a job in this process until it ends")
    r.add_argument("id")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_run)

    s = ts.add_parser("set", help="change the pause of a pending or running job")
    s.add_argument("id")
    s.add_argument("--wait-ms", type=int, required=True, metavar="N")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_change)

    sh = ts.add_parser("show", help="one job")
    sh.add_argument("id")
    sh.add_argument("--account", metavar="ID", help="only if it belongs to this account")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(handler=cmd_show)

    ls = ts.add_parser("list", help="jobs, newest first")
    ls.add_argument("--account", metavar="ID")
    ls.add_argument("--status", metavar="S", action="append", help="only this status (repeatable)")
    ls.add_argument("--limit", type=int, metavar="N")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)

    for name, helptext in (("input", "the stored input CSV"),
                           ("output", "the output CSV (so far, for a running job)")):
        f = ts.add_parser(name, help=helptext)
        f.add_argument("id")
        f.add_argument("--account", metavar="ID")
        f.add_argument("-o", "--output", metavar="FILE")
        f.set_defaults(handler=cmd_file)


# ------------------------------------------------------------------------------- printing


def _job_for(engine: Any, job_id: str, account: str | None) -> Any:
    from kzconsole.engine import JobNotFound

    job = engine.find_job(job_id)
    if account is not None and job.account_id != account:
        raise JobNotFound(f"no job {job_id} in account {account}")
    return job


_TABLE_COLUMNS = ("id", "category", "action", "status", "success_count", "failure_count", "total_count", "created")


def _print_job_table(rows: Any) -> None:
    """``tasks list``: one line per job, written in blocks as the rows stream in (100,000 jobs
    took 2 s and 175 MB with a JobRecord and a write per line; see docs/performance.md)."""
    rows = iter(rows)
    first = next(rows, None)  # a bad argument (an unknown status) fails here, before any output
    out = sys.stdout
    out.write(f"{'ID':32}  {'TASK':30}  {'STATUS':14}  {'OK':>7}  {'FAILED':>7}  {'TOTAL':>7}  CREATED\n")
    if first is None:
        return
    lines: list[str] = []
    for job_id, category, action, status, ok, failed, total, created in itertools.chain((first,), rows):
        task = f"{category}/{action}"
        lines.append(
            f"{job_id:32}  {task[:30]:30}  {status:14}  {ok:>7}  {failed:>7}  "
            f"{'-' if total is None else str(total):>7}  {local_time(created)}\n"
        )
        if len(lines) >= 4096:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))


def _print_job(job: Any) -> None:
    rec = job.public()
    width = max(len(k) for k in rec)
    for key, value in rec.items():
        if key in ("created", "start_timestamp", "end_timestamp") and value is not None:
            value = f"{value} ({local_time(value)})"
        sys.stdout.write(f"{key.ljust(width)}  {'-' if value is None else value}\n")


def _copy_file(path: Any, dest: str | None) -> None:
    if dest and dest != "-":
        shutil.copyfile(path, dest)
        return
    with open(path, "rb") as f:
        out = sys.stdout.buffer
        shutil.copyfileobj(f, out, 1 << 20)
        out.flush()


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, ev: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        width = 30
        if ev.total:
            frac = min(1.0, ev.rows_done / ev.total)
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            head = f"[{bar}] {ev.rows_done}/{ev.total}"
        else:
            head = f"{ev.rows_done} calls"
        line = f"\r{head}  ok {ev.success}  failed {ev.failure}  {ev.rows_per_second:,.0f} rows/s"
        if ev.stopping:
            line += "  stopping..."
        with self._lock:
            self.stream.write(line.ljust(78)[:120])
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _run_foreground(engine: Any, job_id: str, as_json: bool) -> int:
    from kzconsole.engine import JobProgressed, JobStatus

    # The interpreter's own stderr: while a job runs, sys.stderr is routed to its log.
    bar = ProgressBar(sys.__stderr__ if sys.__stderr__ is not None else sys.stderr)
    unsubscribe = engine.events.subscribe(lambda ev: bar.update(ev) if isinstance(ev, JobProgressed) else None)
    try:
        final = engine.run_job(job_id)
    finally:
        unsubscribe()
        bar.close()
    if as_json:
        print_json(final.public())
    else:
        _print_job(final)
    return EXIT_OK if final.status is JobStatus.SUCCESS else EXIT_NOT_SUCCESS


# ------------------------------------------------------------------------------- commands


def cmd_help(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        doc = engine.help(args.category, args.action)
    if args.json:
        if args.action:
            doc = doc[args.category][args.action]
        elif args.category:
            doc = doc[args.category]
        print_json(doc)
        return EXIT_OK
    w = sys.stdout.write
    for cat, actions in doc.items():
        for act, meta in actions.items():
            w(f"{cat} {act}: {meta['description']}\n")
            if args.action or args.category:
                if meta["doc"]:
                    w(f"    {meta['doc']}\n")
                w(f"    input: {meta['expected_content'] or 'none'}\n")
                if meta["mandatory"]:
                    w(f"    mandatory: {', '.join(meta['mandatory'])}\n")
                if meta["optional"]:
                    w(f"    optional: {', '.join(meta['optional'])}\n")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from kzconsole.engine import JobRejected

    source: Any = None
    if args.input == "-":
        source = sys.stdin.buffer
    elif args.input is not None:
        source = args.input
    with open_engine(args) as engine:
        try:
            job = engine.add_job(
                args.category, args.action, input=source, fmt=args.format, file_name=args.file_name,
                account_id=args.account, auth_account_id=args.auth_account, wait_ms=args.wait_ms,
            )
        except JobRejected as exc:
            raise CliError(f"job rejected: {exc}", document={"errors": exc.errors}) from None
        if args.run:
            return _run_foreground(engine, job.id, args.json)
    if args.json:
        print_json(job.public())
    else:
        sys.stdout.write(job.id + "\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        return _run_foreground(engine, args.id, args.json)


def cmd_change(args: argparse.Namespace) -> int:
    c = args.tasks_command
    with open_engine(args) as engine:
        if c == "start":
            job = engine.start_job(args.id)
        elif c == "stop":
            job = engine.stop_job(args.id)
        elif c == "restart":
            job = engine.restart_job(args.id)
        elif c == "remove":
            job = engine.remove_job(args.id)
        else:
            job = engine.set_wait(args.id, args.wait_ms)
    if args.json:
        print_json(job.public())
    elif c == "restart":
        sys.stdout.write(job.id + "\n")
    elif c == "stop" and job.status.value == "executing":
        sys.stdout.write(f"{job.id} stop requested\n")
    else:
        sys.stdout.write(f"{job.id} {job.status.value}\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        job = _job_for(engine, args.id, args.account)
    if args.json:
        print_json(job.public())
    else:
        _print_job(job)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        if args.json:
            jobs = engine.list_jobs(account_id=args.account, status=args.status, limit=args.limit)
            print_json([j.public() for j in jobs])
        else:
            _print_job_table(engine.iter_job_rows(
                _TABLE_COLUMNS, account_id=args.account, status=args.status, limit=args.limit
            ))
    return EXIT_OK


def cmd_file(args: argparse.Namespace) -> int:
    c = args.tasks_command
    with open_engine(args) as engine:
        job = _job_for(engine, args.id, args.account)
        path = engine.input_path(job) if c == "input" else engine.output_path(job)
        if path is None or not path.exists():
            what = "input (a noinput task)" if c == "input" else "output yet"
            raise CliError(f"job {job.id} has no {what}")
        _copy_file(path, args.output)
    return EXIT_OK
