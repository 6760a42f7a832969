"""The command line (contract section 7).

Only ``kzconsole`` / ``kzconsole tui`` (and ``demo``) import Textual; every other command starts
fast on the engine alone. Exit codes: 0 done; 1 the job ran but did not end ``success``; 2 bad
usage, bad config, rejected input, unknown task/job, or an operation the job's status forbids.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any, Sequence

EXIT_OK, EXIT_NOT_SUCCESS, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """Printed on stderr as ``kzconsole: MESSAGE``; exit 2."""


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _err(message: str) -> None:
    sys.stderr.write(f"kzconsole: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kzconsole",
        description="Kazoo Tasks on a terminal: a console, an engine and a command line for background jobs.",
    )
    p.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    p.add_argument("--data-dir", metavar="DIR", help="where the store and job files live ($KZCONSOLE_DATA_DIR)")
    p.add_argument("--plugins", metavar="DIR", action="append", default=[], help="add a plugin directory (repeatable)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("tui", help="the full-screen console with the engine embedded (the default)")
    sub.add_parser("engine", help="run the engine in the foreground until SIGINT/SIGTERM")
    demo = sub.add_parser("demo", help="open the console on a throwaway data dir full of examples")
    demo.add_argument("--no-tui", action="store_true", help="only create the demo data dir and print its path")
    demo.add_argument("--dir", metavar="DIR", help="create the demo there instead of a temporary folder")

    tasks = sub.add_parser("tasks", help="jobs: add, start, run, stop, show, list, ...")
    ts = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    ts.required = True

    h = ts.add_parser("help", help="the catalog of tasks")
    h.add_argument("category", nargs="?")
    h.add_argument("action", nargs="?")
    h.add_argument("--json", action="store_true")

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

    for name, helptext in (("start", "ask the engine to run a job"), ("stop", "stop a job"),
                           ("restart", "a new job with the same task and input"),
                           ("remove", "delete a job that is not running, with its files")):
        c = ts.add_parser(name, help=helptext)
        c.add_argument("id")
        c.add_argument("--json", action="store_true")

    r = ts.add_parser("run", help="run a job in this process until it ends")
    r.add_argument("id")
    r.add_argument("--json", action="store_true")

    s = ts.add_parser("set", help="change the pause of a pending or running job")
    s.add_argument("id")
    s.add_argument("--wait-ms", type=int, required=True, metavar="N")
    s.add_argument("--json", action="store_true")

    sh = ts.add_parser("show", help="one job")
    sh.add_argument("id")
    sh.add_argument("--account", metavar="ID", help="only if it belongs to this account")
    sh.add_argument("--json", action="store_true")

    ls = ts.add_parser("list", help="jobs, newest first")
    ls.add_argument("--account", metavar="ID")
    ls.add_argument("--status", metavar="S", action="append", help="only this status (repeatable)")
    ls.add_argument("--limit", type=int, metavar="N")
    ls.add_argument("--json", action="store_true")

    i = ts.add_parser("input", help="the stored input CSV")
    i.add_argument("id")
    i.add_argument("--account", metavar="ID")
    i.add_argument("-o", "--output", metavar="FILE")

    o = ts.add_parser("output", help="the output CSV (so far, for a running job)")
    o.add_argument("id")
    o.add_argument("--account", metavar="ID")
    o.add_argument("-o", "--output", metavar="FILE")

    pl = sub.add_parser("plugins", help="loaded plugin files, what each declares, load errors")
    pl.add_argument("--json", action="store_true")

    tr = sub.add_parser("triggers", help="trigger schedules and history; `triggers run NAME` fires one now")
    tr.add_argument("--json", action="store_true")
    trs = tr.add_subparsers(dest="triggers_command", metavar="ACTION")
    trr = trs.add_parser("run", help="fire minutely, hourly, daily or databases now, in the foreground")
    trr.add_argument("name", choices=["minutely", "hourly", "daily", "databases"])
    # SUPPRESS: `triggers --json run NAME` keeps the --json given before the subcommand.
    trr.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    cfg = sub.add_parser("config", help="configuration files")
    cs = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    cs.required = True
    ci = cs.add_parser("init", help="write a commented config file")
    ci.add_argument("path", nargs="?")
    return p


# --------------------------------------------------------------------------- helpers


def _settings(args: argparse.Namespace):
    from kzconsole.config import load_settings

    return load_settings(args.config, data_dir=args.data_dir, extra_plugin_paths=args.plugins)


def _engine(args: argparse.Namespace):
    from kzconsole.engine import Engine

    return Engine(_settings(args))


def _job_for(engine, job_id: str, account: str | None):
    from kzconsole.engine import JobNotFound

    job = engine.find_job(job_id)
    if account is not None and job.account_id != account:
        raise JobNotFound(f"no job {job_id} in account {account}")
    return job


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


_TABLE_COLUMNS = ("id", "category", "action", "status", "success_count", "failure_count", "total_count", "created")


def _print_job_table(rows) -> None:
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
            f"{'-' if total is None else str(total):>7}  {_fmt_time(created)}\n"
        )
        if len(lines) >= 4096:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))


def _print_job(job) -> None:
    rec = job.public()
    width = max(len(k) for k in rec)
    for key, value in rec.items():
        if key in ("created", "start_timestamp", "end_timestamp") and value is not None:
            value = f"{value} ({_fmt_time(value)})"
        sys.stdout.write(f"{key.ljust(width)}  {'-' if value is None else value}\n")


def _copy_file(path, dest: str | None) -> None:
    if dest and dest != "-":
        shutil.copyfile(path, dest)
        return
    with open(path, "rb") as f:
        out = sys.stdout.buffer
        shutil.copyfileobj(f, out, 1 << 20)
        out.flush()


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, ev) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        done = ev.success + ev.failure
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
        del done

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _run_foreground(engine, job_id: str, as_json: bool) -> int:
    from kzconsole.engine import JobProgressed, JobStatus

    bar = ProgressBar(sys.__stderr__ if sys.__stderr__ is not None else sys.stderr)
    unsubscribe = engine.events.subscribe(lambda ev: bar.update(ev) if isinstance(ev, JobProgressed) else None)
    try:
        final = engine.run_job(job_id)
    finally:
        unsubscribe()
        bar.close()
    if as_json:
        _print_json(final.public())
    else:
        _print_job(final)
    return EXIT_OK if final.status is JobStatus.SUCCESS else EXIT_NOT_SUCCESS


# --------------------------------------------------------------------------- commands


def cmd_tasks(args: argparse.Namespace) -> int:
    from kzconsole.engine import JobRejected

    engine = _engine(args)
    try:
        c = args.tasks_command
        if c == "help":
            doc = engine.help(args.category, args.action)
            if args.json:
                if args.action:
                    doc = doc[args.category][args.action]
                elif args.category:
                    doc = doc[args.category]
                _print_json(doc)
            else:
                for cat, actions in doc.items():
                    for act, meta in actions.items():
                        sys.stdout.write(f"{cat} {act}: {meta['description']}\n")
                        if args.action or args.category:
                            if meta["doc"]:
                                sys.stdout.write(f"    {meta['doc']}\n")
                            sys.stdout.write(f"    input: {meta['expected_content'] or 'none'}\n")
                            if meta["mandatory"]:
                                sys.stdout.write(f"    mandatory: {', '.join(meta['mandatory'])}\n")
                            if meta["optional"]:
                                sys.stdout.write(f"    optional: {', '.join(meta['optional'])}\n")
            return EXIT_OK
        if c == "add":
            source: Any = None
            if args.input == "-":
                source = sys.stdin.buffer
            elif args.input is not None:
                source = args.input
            try:
                job = engine.add_job(
                    args.category, args.action, input=source, fmt=args.format, file_name=args.file_name,
                    account_id=args.account, auth_account_id=args.auth_account, wait_ms=args.wait_ms,
                )
            except JobRejected as exc:
                if args.json:
                    _print_json({"errors": exc.errors})
                _err(f"job rejected: {exc}")
                return EXIT_USAGE
            if args.run:
                return _run_foreground(engine, job.id, args.json)
            if args.json:
                _print_json(job.public())
            else:
                sys.stdout.write(job.id + "\n")
            return EXIT_OK
        if c == "run":
            return _run_foreground(engine, args.id, args.json)
        if c in ("start", "stop", "restart", "remove", "set"):
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
                _print_json(job.public())
            elif c == "restart":
                sys.stdout.write(job.id + "\n")
            elif c == "stop" and job.status.value == "executing":
                sys.stdout.write(f"{job.id} stop requested\n")
            else:
                sys.stdout.write(f"{job.id} {job.status.value}\n")
            return EXIT_OK
        if c == "show":
            job = _job_for(engine, args.id, args.account)
            if args.json:
                _print_json(job.public())
            else:
                _print_job(job)
            return EXIT_OK
        if c == "list":
            if args.json:
                jobs = engine.list_jobs(account_id=args.account, status=args.status, limit=args.limit)
                _print_json([j.public() for j in jobs])
            else:
                _print_job_table(engine.iter_job_rows(
                    _TABLE_COLUMNS, account_id=args.account, status=args.status, limit=args.limit
                ))
            return EXIT_OK
        if c in ("input", "output"):
            job = _job_for(engine, args.id, args.account)
            path = engine.input_path(job) if c == "input" else engine.output_path(job)
            if path is None or not path.exists():
                what = "input (a noinput task)" if c == "input" else "output yet"
                raise CliError(f"job {job.id} has no {what}")
            _copy_file(path, args.output)
            return EXIT_OK
        raise CliError(f"unknown tasks command {c}")
    finally:
        engine.close()


def cmd_plugins(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        sources = engine.plugins()
        if args.json:
            _print_json([s.public() for s in sources])
            return EXIT_OK
        for s in sources:
            state = "loaded" if s.loaded else "NOT LOADED"
            sys.stdout.write(f"{s.source}  [{s.kind}, {state}]\n")
            for t in s.tasks:
                sys.stdout.write(f"    task     {t.name}\n")
            for v in s.verifiers:
                sys.stdout.write(f"    verifier {v.name}\n")
            for tr in s.triggers:
                sys.stdout.write(f"    trigger  {tr.trigger}:{tr.function_name}\n")
            if s.error:
                sys.stdout.write("    error:\n")
                for line in s.error.rstrip().splitlines():
                    sys.stdout.write(f"      {line}\n")
        return EXIT_OK
    finally:
        engine.close()


def cmd_triggers(args: argparse.Namespace) -> int:
    try:
        from kzconsole.engine import triggers as trigger_mod
    except ImportError:
        raise CliError("triggers are not available in this build") from None
    return trigger_mod.cli(args, _engine(args))


def cmd_engine(args: argparse.Namespace) -> int:
    import logging

    engine = _engine(args)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    engine.start()
    logging.getLogger("kzconsole.engine").info(
        "engine %s running on %s (max %d jobs); Ctrl-C to stop",
        engine.node, engine.settings.store_url, engine.settings.tasks.max_running,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        logging.getLogger("kzconsole.engine").info("shutting down: running jobs will resume at the next start")
        stuck = engine.stop()
        if stuck:
            logging.getLogger("kzconsole.engine").warning(
                "jobs still inside a row at exit (they resume from their last checkpoint): %s", ", ".join(stuck)
            )
        engine.close()
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from kzconsole.config import write_example_config

    path = write_example_config(args.path)
    sys.stdout.write(f"wrote {path}\n")
    return EXIT_OK


def cmd_tui(args: argparse.Namespace) -> int:
    from kzconsole.app import run_console

    return run_console(_settings(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from kzconsole.demo import run_demo

    return run_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:  # the real command line, not a caller in the same process (tests)
        _exit_without_waiting_for_plugin_threads(code)
    return code


def _exit_without_waiting_for_plugin_threads(code: int) -> None:
    """A plugin may leave a non-daemon thread running. Python waits for such threads at exit, so
    a finished `tasks run` or a stopped `kzconsole engine` would hang until the thread ends: exit
    now instead, once the output is flushed."""
    me = threading.current_thread()
    if not any(t.is_alive() and not t.daemon and t is not me for t in threading.enumerate()):
        return
    _err("a plugin left a thread running; exiting without waiting for it")
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from kzconsole.config import ConfigError
    from kzconsole.engine import EngineError, StoreError

    handlers = {
        None: cmd_tui,
        "tui": cmd_tui,
        "engine": cmd_engine,
        "demo": cmd_demo,
        "tasks": cmd_tasks,
        "plugins": cmd_plugins,
        "triggers": cmd_triggers,
        "config": cmd_config,
    }
    try:
        return handlers[args.command](args)
    except (CliError, ConfigError, EngineError, StoreError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kzconsole tasks output ID | head`: not an error.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
