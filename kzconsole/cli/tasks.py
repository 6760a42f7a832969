"""``kzconsole tasks ...``: the catalog and the jobs (contract sections 4 and 7)."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from kzconsole.cli.common import (
    EXIT_NOT_SUCCESS,
    EXIT_OK,
    CliError,
    account_id,
    add_command,
    local_time,
    open_engine,
    print_json,
    wait_ms,
    whole_number,
)

if TYPE_CHECKING:
    from kzconsole.engine import Engine, JobRecord

# The statuses of contract 4.2. Written out, not imported: building the parser must not import
# the engine (`kzconsole --help` stays instant); tests/cli checks they are JobStatus's values.
STATUSES = ("pending", "executing", "success", "failure", "partial", "stopped", "internal_error")
MAX_LIMIT = 2**63 - 1  # the store's largest integer


def register(commands: Any) -> None:
    tasks = add_command(
        commands,
        "tasks",
        "jobs: add, start, run, stop, show, list, ...",
        "Jobs and the catalog of tasks. A job is created pending (`add`), then queued for an\n"
        "engine (`start`) or run in this process (`run`, or `add --run`).\n\n"
        "Exit codes: 0 done; 1 the job ran but did not end `success`; 2 bad usage, bad config,\n"
        "rejected input, an unknown task or job, or an operation the job's status does not allow\n"
        '(the message says why, on stderr; with --json, also {"error": "..."} on stdout).',
    )
    ts = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    h = add_command(ts, "help", "the catalog of tasks", handler=cmd_help, json=_HELP_JSON)
    h.add_argument("category", metavar="CATEGORY", nargs="?", help="only this category")
    h.add_argument("action", metavar="ACTION", nargs="?", help="only this task of the category")

    a = add_command(
        ts, "add", "create a pending job (checks the input first)", handler=cmd_add, json="the job's record"
    )
    a.add_argument("category", metavar="CATEGORY")
    a.add_argument("action", metavar="ACTION")
    a.add_argument("--input", metavar="FILE", help="the input: a CSV or JSON file, or - for stdin")
    a.add_argument(
        "--format", choices=["csv", "json"], help="the input's format (default: json for a *.json file, else csv)"
    )
    a.add_argument(
        "--account",
        metavar="ID",
        type=account_id,
        help="the job's account (32 lowercase hex characters; default: accounts.account_id)",
    )
    a.add_argument(
        "--auth-account",
        metavar="ID",
        type=account_id,
        help="the account that creates it (default: accounts.auth_account_id)",
    )
    a.add_argument("--file-name", metavar="NAME", help="the input's name as shown (default: the file's)")
    a.add_argument(
        "--wait-ms",
        type=wait_ms,
        metavar="N",
        help="the pause after each row, in ms (default: tasks.wait_after_row_ms)",
    )
    a.add_argument("--run", action="store_true", help="run it now, in this process, as `tasks run` does")

    record = "the job's record"
    add_command(ts, "start", "queue a pending job for an engine", handler=cmd_start, job_id=True, json=record)
    add_command(ts, "stop", "stop a job", handler=cmd_stop, job_id=True, json=record)
    restart = add_command(
        ts,
        "restart",
        "a new job with the same task and input, queued",
        handler=cmd_restart,
        job_id=True,
        json="the new job's record",
    )
    restart.add_argument(
        "--failed-only", action="store_true", help="only the rows that failed, of a finished job with failed rows"
    )
    add_command(
        ts,
        "remove",
        "delete a job that is not running, with its files",
        handler=cmd_remove,
        job_id=True,
        json="the removed job's record",
    )
    add_command(
        ts, "run", "run a job in this process until it ends", handler=cmd_run, job_id=True, json="the final record"
    )
    pause = add_command(
        ts, "set", "change the pause of a pending or running job", handler=cmd_set, job_id=True, json=record
    )
    pause.add_argument("--wait-ms", type=wait_ms, required=True, metavar="N", help="the pause after each row, in ms")
    show = add_command(ts, "show", "one job", handler=cmd_show, job_id=True, json="the record")
    show.add_argument("--account", metavar="ID", type=account_id, help="only if it belongs to this account")

    listing = add_command(ts, "list", "jobs, newest first", handler=cmd_list, json="a list of records")
    listing.add_argument("--account", metavar="ID", type=account_id, help="only this account's jobs")
    listing.add_argument(
        "--status",
        metavar="STATUS",
        action="append",
        choices=STATUSES,
        help="only jobs with this status (repeatable): " + ", ".join(STATUSES),
    )
    listing.add_argument("--limit", type=whole_number(1), metavar="N", help="at most N jobs (the newest)")

    for kind, summary in (("input", "the stored input CSV"), ("output", "the output CSV (so far, for a running job)")):
        f = add_command(
            ts,
            kind,
            summary,
            f"Write the job's {summary.removeprefix('the ')} to stdout, or to FILE.",
            handler=cmd_file,
            job_id=True,
        )
        f.add_argument("--account", metavar="ID", type=account_id, help="only if it belongs to this account")
        f.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help=f"write it to FILE (replaced if it exists); in a folder, as task_{_SAVE_PREFIX[kind]}.ID.csv",
        )
        f.set_defaults(kind=kind)


_HELP_JSON = "{category: {action: {description, doc, expected_content, mandatory, optional}}}"


# ------------------------------------------------------------------------------- printing


def _job_for(engine: Any, job_id: str, account: str | None) -> Any:
    from kzconsole.engine import JobNotFound

    job = engine.find_job(job_id)
    if account is not None and job.account_id != account:
        raise JobNotFound(f"no job {job_id} in account {account}")
    return job


# ---- tasks list (owner: query): streamed from the store (Engine.iter_jobs), written in blocks.

_TABLE_COLUMNS = ("id", "category", "action", "status", "success_count", "failure_count", "total_count", "created")
_LIST_BLOCK = 2048  # lines per write


def _print_job_list(rows: Any, as_json: bool) -> None:
    """``tasks list [--json]``: one line per job, as the store streams them, in constant memory
    (100,000 jobs: a JobRecord per row and a write per line took 2 s and 175 MB; the ``--json``
    list built whole took 905 MB at 200,000). See docs/performance.md."""
    out = sys.stdout
    if as_json:
        lines = (f"  {document}" for (document,) in rows)
        first = next(lines, None)
        if first is None:
            out.write("[]\n")
            return
        out.write("[\n" + first)
        for block in _blocks(lines):
            out.write(",\n" + ",\n".join(block))
        out.write("\n]\n")
        return
    out.write(f"{'ID':32}  {'TASK':30}  {'STATUS':14}  {'OK':>7}  {'FAILED':>7}  {'TOTAL':>7}  CREATED\n")
    for block in _blocks(map(_table_line, rows)):
        out.write("".join(block))


def _blocks(lines: Any) -> Any:
    """Lists of up to _LIST_BLOCK lines: one write each."""
    while block := list(itertools.islice(lines, _LIST_BLOCK)):
        yield block


def _table_line(row: tuple[Any, ...]) -> str:
    job_id, category, action, status, ok, failed, total, created = row
    task = f"{category}/{action}"
    return (
        f"{job_id:32}  {task[:30]:30}  {status:14}  {ok:>7}  {failed:>7}  "
        f"{'-' if total is None else total:>7}  {_list_time(created)}\n"
    )


_minutes: dict[int, str] = {}


def _list_time(ts: float) -> str:
    """``local_time`` for 100,000 rows: formatted once per minute (a third of the listing's time
    when done per row). Time zones move by whole minutes, so the seconds are the epoch's."""
    seconds = int(ts)
    minute = seconds - seconds % 60
    prefix = _minutes.get(minute)
    if prefix is None:
        if len(_minutes) > 4096:
            _minutes.clear()
        prefix = _minutes[minute] = local_time(minute)[:-2]
    return f"{prefix}{seconds % 60:02d}"


def _show_document(job: Any, waiting: str | None) -> dict[str, Any]:
    doc = job.public()
    doc["queued_at"] = None if job.queued_at is None else int(job.queued_at)
    doc["waiting"] = waiting
    return doc


def _print_job(job: Any, waiting: str | None = None) -> None:
    rec = _show_document(job, waiting)
    if job.status.value == "pending":
        rec["status"] = "pending, queued for an engine" if job.queued_at is not None else "pending, not queued"
    if waiting is None:
        del rec["waiting"]
    width = max(len(k) for k in rec)
    for key, value in rec.items():
        if key in ("created", "start_timestamp", "end_timestamp", "queued_at") and value is not None:
            value = f"{value} ({local_time(value)})"
        sys.stdout.write(f"{key.ljust(width)}  {'-' if value is None else value}\n")


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


# ---------------------------------------------------------------------------------- input


class _Replayed(io.RawIOBase):
    """A stream that gives back the bytes already read from it (``head``), then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(buffer)  # type: ignore[attr-defined]


def _input_source(given: str | None) -> tuple[Any, bytes]:
    """What ``--input`` names, checked (an existing file, or stdin), and its first bytes (to tell
    JSON given as CSV when the checks reject it)."""
    if given is None:
        return None, b""
    if given == "-":
        stdin = cast(io.BufferedReader, sys.stdin.buffer)
        head = b""
        while len(head) < 4096 and not head.strip():  # up to the first non-blank byte
            chunk = stdin.read1(4096)
            if not chunk:
                break
            head += chunk
        return io.BufferedReader(_Replayed(head, stdin)), head
    path = Path(given).expanduser()
    if path.is_dir():
        raise CliError(f"--input {given}: is a folder, not a file")
    try:
        if not path.is_file():  # a pipe (`--input <(...)`) is read once, by the checks
            os.stat(path)  # (but a missing file is named here)
            return str(path), b""
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise CliError(f"--input {given}: cannot read it: {exc.strerror or exc}") from None
    return str(path), head


def _looks_like_json(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{")


# ------------------------------------------------------------------------------- commands


def cmd_help(args: argparse.Namespace) -> int:
    """The catalog: each task (CATEGORY ACTION) with its description; for a CATEGORY, or one
    task, also its doc, the input it expects and its mandatory and optional columns."""
    with open_engine(args) as engine:
        doc = engine.help(args.category, args.action)  # already narrowed to what was asked
    if args.json:
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
    """Check the input and create a pending job; print its id. The checks: valid CSV (or JSON),
    the task's mandatory columns, and no empty mandatory cell. When one fails, nothing is
    stored, every problem is reported (with --json, as {"errors": {...}}) and the exit code
    is 2. A pending job waits for `tasks start ID` (or --run)."""
    from kzconsole.engine import JobRejected

    source, head = _input_source(args.input)
    with open_engine(args) as engine:
        try:
            job = engine.add_job(
                args.category,
                args.action,
                input=source,
                fmt=args.format,
                file_name=args.file_name,
                account_id=args.account,
                auth_account_id=args.auth_account,
                wait_ms=args.wait_ms,
            )
        except JobRejected as exc:
            message = f"job rejected: {exc}"
            as_csv = args.format is None and not str(args.input).lower().endswith(".json")
            if as_csv and _looks_like_json(head) and ("csv" in exc.errors or "missing_mandatory_fields" in exc.errors):
                message += "; the input looks like JSON: read it as JSON with --format json"
            raise CliError(message, document={"errors": exc.errors}) from None
        if args.run:
            return _run_foreground(engine, job.id, args.json)
    if args.json:
        print_json(job.public())
    else:
        sys.stdout.write(job.id + "\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run a pending job in this process until it ends, with a progress bar on stderr when it
    is a terminal, and print the final record. Ctrl-C stops the job (it ends `stopped`, its
    output so far kept). Exit 0 when it ends `success`, 1 otherwise."""
    with open_engine(args) as engine:
        return _run_foreground(engine, args.id, args.json)


_Text = Callable[["Engine", "JobRecord"], str]


def _change(args: argparse.Namespace, operation: Callable[[Engine], JobRecord], text: _Text) -> int:
    """Run one operation on a job and print its record (``--json``) or one line about it."""
    with open_engine(args) as engine:
        job = operation(engine)
        line = None if args.json else text(engine, job)
    if line is None:
        print_json(job.public())
    else:
        sys.stdout.write(line + "\n")
    return EXIT_OK


def _queued(engine: Engine, job: JobRecord) -> str:
    """``ID queued``, and why it waits when nothing may run it soon (no engine on the store)."""
    reason = engine.wait_reason(job)
    return f"{job.id} {_state(job)}" + (f": {reason}" if reason else "")


def cmd_start(args: argparse.Namespace) -> int:
    """Queue a pending job. A queued job runs when an engine on the same store (`kzconsole
    engine`, or a console) has a free slot; while none runs on the store, it waits (the command
    says so). `tasks run ID` runs it here instead."""
    return _change(args, lambda engine: engine.start_job(args.id), _queued)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a job. A pending job is stopped at once; a running one stops before its next row,
    in whichever engine runs it, and ends `stopped` with its output so far."""
    return _change(
        args,
        lambda engine: engine.stop_job(args.id),
        lambda _, job: f"{job.id} {'stop requested' if job.status.value == 'executing' else _state(job)}",
    )


def cmd_restart(args: argparse.Namespace) -> int:
    """Create a new job with the same task, input and accounts, queue it as `tasks start` does,
    and print its id; the old job is left as it is. With --failed-only, the new job's input is
    only the input rows that failed (fix the cause, then replay exactly what failed)."""
    # The new id alone on the line: scripts read it (`new=$(kzconsole tasks restart ID)`).
    return _change(
        args, lambda engine: engine.restart_job(args.id, failed_only=args.failed_only), lambda _, job: job.id
    )


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete a job that is not running, with its stored input, output and log."""
    return _change(args, lambda engine: engine.remove_job(args.id), lambda _, job: f"{job.id} removed")


def cmd_set(args: argparse.Namespace) -> int:
    """Change the pause after each row of a pending or running job; a running job uses it from
    its next row."""
    return _change(
        args,
        lambda engine: engine.set_wait(args.id, args.wait_ms),
        lambda _, job: f"{job.id} {_state(job)}, pause {job.wait_after_row_ms} ms",
    )


def _state(job: Any) -> str:
    if job.status.value == "pending" and job.queued_at is not None:
        return "queued"
    return job.status.value


def cmd_show(args: argparse.Namespace) -> int:
    """One job's record: ids, accounts, task, status, counts, times, node and note. For a
    pending job, whether it is queued (`tasks start`) or not, and why a queued one waits.
    With --json: the record of `tasks list --json` plus `queued_at` (seconds, or null when
    not queued) and `waiting` (why a queued job has not run, or null)."""
    with open_engine(args) as engine:
        job = _job_for(engine, args.id, args.account)
        waiting = engine.wait_reason(job)
    if args.json:
        print_json(_show_document(job, waiting))
    else:
        _print_job(job, waiting)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """Jobs, newest first, one line each."""
    from kzconsole.engine import JobQuery

    limit = None if args.limit is None else min(args.limit, MAX_LIMIT)  # "at most N" still holds
    query = JobQuery(account_id=args.account, status=args.status, limit=limit)
    with open_engine(args) as engine:
        # Closed before the store is: a reader that leaves (`| head`) must not leave the rows to
        # be finalised at exit, on a closed database.
        listing = engine.iter_job_documents(query) if args.json else engine.iter_jobs(query, _TABLE_COLUMNS)
        with listing as rows:
            _print_job_list(rows, args.json)
        sys.stdout.flush()
    return EXIT_OK


_SAVE_PREFIX = {"input": "in", "output": "out"}


def _destination(given: str | None, job_id: str, kind: str) -> Path | None:
    """Where ``-o`` writes (None: stdout), checked before anything is read."""
    if given is None or given == "-":
        return None
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / f"task_{_SAVE_PREFIX[kind]}.{job_id}.csv"  # as the console saves it
    elif given.endswith(os.sep) or not path.parent.is_dir():
        raise CliError(f"-o {given}: no such folder")
    if path.is_dir():
        raise CliError(f"-o {given}: {path} is a folder")
    return path


def cmd_file(args: argparse.Namespace) -> int:
    kind = args.kind
    with open_engine(args) as engine:
        job = _job_for(engine, args.id, args.account)
        dest = _destination(args.output, job.id, kind)
        stream = engine.open_input(job) if kind == "input" else engine.open_output(job)
        if stream is None:
            raise CliError(f"job {job.id} has no {'input (a noinput task)' if kind == 'input' else 'output yet'}")
        with stream:
            if dest is None:
                _copy(stream, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                _write_file(stream, dest, args.output)
    return EXIT_OK


def _write_file(stream: BinaryIO, dest: Path, given: str) -> None:
    """Copy to ``dest`` through a temporary file beside it: a failure leaves no half file, and an
    existing file is replaced only by a whole copy. A device or a pipe (``-o /dev/null``) is
    written to, never replaced; a symbolic link is written through, as ``cp`` does."""
    try:
        if dest.exists() and not dest.is_file():
            with open(dest, "wb") as out:
                _copy(stream, out)
            return
        target = dest.resolve() if dest.is_symlink() else dest
        part = target.with_name(f".{target.name}.part")
        try:
            with open(part, "wb") as out:
                _copy(stream, out)
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
    except OSError as exc:
        raise CliError(f"-o {given}: cannot write {dest}: {exc.strerror or exc}") from None


def _copy(stream: BinaryIO, out: BinaryIO) -> None:
    while chunk := stream.read(1 << 20):
        out.write(chunk)
