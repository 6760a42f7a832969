"""Issue 12, item 9: the cluster store (PostgreSQL) measured beside its baselines in the same run.

One PostgreSQL server is started for the whole run (``tests/pgserver.py``, durable commits as an
operator runs it), each measurement on a fresh database of its own:

- ``cluster-jobs``: 2,000 tiny noinput jobs created, started and finished by an Engine on the
  PostgreSQL store (``tasks.max_running`` = 4), against **procrastinate** (a PostgreSQL job queue)
  running 2,000 tasks on the same server, deferred then worked by one worker (concurrency 1 and
  4; the better is the baseline). Goal: ratio >= 1.0.
- ``cluster-rows``: one 1,000,000-row CSV job (``kzconsole tasks add bench ok --run``, the whole
  process) on PostgreSQL against the same job on SQLite, with each process's peak RSS.
  Goal: rows/s ratio >= 0.8, RSS < 100 MB.
- ``cluster-scale``: 1, 2 and 4 ``kzconsole engine`` processes on one store, working 32 jobs
  of 200 rows each (2 slots per engine) whose rows wait 2 ms on I/O (``time.sleep``). Goal: N engines >= 0.8 x N times
  the rows/s of one.

    python bench/bench_cluster.py [--only jobs,rows,scale] [--repeats K] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rows import engine_cmd
from common import KZCONSOLE, PYTHON, ROOT, Result, Workspace, child_env, median, run_child, write_csv

sys.path.insert(0, str(ROOT))
from tests.pgserver import BENCH_SETTINGS, PostgresServer

HERE = Path(__file__).resolve()

# Rows that wait on I/O, as a task calling a remote API would.
IO_PLUGIN = """\
import time

from kzconsole.plugin import OK, task


@task("bench", "io", description="Waits 2 ms per row (I/O), then OK", expected_content="text/csv")
def io_row(ctx, it, row):
    time.sleep(0.002)
    return OK
"""


def _config(path: Path, url: str, **tasks: object) -> Path:
    lines = ["[store]", f'url = "{url}"', "[tasks]"]
    lines += [
        f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"' for key, value in tasks.items()
    ]
    lines += ["[triggers]", "enabled = false"]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- jobs


def child_engine(url: str, root: Path, plugins: Path, jobs: int) -> dict:
    from kzconsole.config import load_settings
    from kzconsole.engine import Engine, JobChanged

    settings = load_settings(None, data_dir=root / "data", extra_plugin_paths=[str(plugins)])
    settings = settings.with_overrides(store={"url": url})
    engine = Engine(settings)
    _ = engine.catalog, engine.store  # loaded and connected before the clock starts, as in a running engine
    finished = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_event(ev) -> None:
        nonlocal finished
        if isinstance(ev, JobChanged) and ev.job.status.is_finished:
            with lock:
                finished += 1
                if finished >= jobs:
                    done.set()

    engine.events.subscribe(on_event)
    engine.start()
    start = time.perf_counter()
    for _ in range(jobs):
        engine.add_job("bench", "tiny", start=True)
    created = time.perf_counter() - start
    if not done.wait(600):
        raise RuntimeError(f"only {finished} of {jobs} jobs finished")
    seconds = time.perf_counter() - start
    ok = engine.count_jobs(status="success")
    engine.close()
    if ok != jobs:
        raise RuntimeError(f"{ok} of {jobs} jobs ended success")
    return {"seconds": seconds, "created_seconds": created}


def child_procrastinate(url: str, jobs: int, workers: int) -> dict:
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    finished = 0
    lock = threading.Lock()

    @app.task(name="tiny")
    def tiny() -> bool:
        nonlocal finished
        with lock:
            finished += 1
        return True

    with app.open():
        app.schema_manager.apply_schema()
        start = time.perf_counter()
        for _ in range(jobs):
            tiny.defer()
        created = time.perf_counter() - start
        # wait=False: the worker returns once the queue is empty.
        app.run_worker(concurrency=workers, wait=False, install_signal_handlers=False)
        seconds = time.perf_counter() - start
    if finished != jobs:
        raise RuntimeError(f"only {finished} of {jobs} tasks ran")
    return {"seconds": seconds, "created_seconds": created}


def _child(args: list[str]) -> dict:
    run = run_child([PYTHON, str(HERE), *args])
    if run.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed: {run.stderr[-3000:].decode(errors='replace')}")
    return json.loads(run.stdout.decode().strip().splitlines()[-1])


def bench_jobs(server: PostgresServer, ws: Workspace, jobs: int, repeats: int, log) -> list[Result]:
    engine_s: list[float] = []
    p1_s: list[float] = []
    p4_s: list[float] = []
    for i in range(repeats):
        p1 = _child(
            ["--child", "procrastinate", "--url", server.create_database(), "--jobs", str(jobs), "--workers", "1"]
        )
        e = _child(
            [
                "--child",
                "engine",
                "--url",
                server.create_database(),
                "--root",
                str(ws.data_dir(f"engine-{i}")),
                "--plugins",
                str(ws.plugins),
                "--jobs",
                str(jobs),
            ]
        )
        p4 = _child(
            ["--child", "procrastinate", "--url", server.create_database(), "--jobs", str(jobs), "--workers", "4"]
        )
        p1_s.append(p1["seconds"])
        engine_s.append(e["seconds"])
        p4_s.append(p4["seconds"])
        log(
            f"  run {i + 1}: engine {e['seconds']:.2f} s (adding {e['created_seconds']:.2f} s), "
            f"procrastinate 1: {p1['seconds']:.2f} s, 4: {p4['seconds']:.2f} s"
        )
    rate = jobs / median(engine_s)
    r1, r4 = jobs / median(p1_s), jobs / median(p4_s)
    best, name, samples = (
        (r1, "procrastinate, concurrency 1", p1_s) if r1 >= r4 else (r4, "procrastinate, concurrency 4", p4_s)
    )
    return [
        Result(
            "12 cluster jobs",
            f"{jobs:,} tiny noinput jobs on PostgreSQL (max_running 4)",
            rate,
            "jobs/s",
            baseline=best,
            baseline_name=name + ", same server",
            goal="ratio >= 1.0",
            met=rate >= best,
            note=f"procrastinate 1: {r1:,.0f} jobs/s, 4: {r4:,.0f} jobs/s",
            samples=[jobs / s for s in engine_s],
            baseline_samples=[jobs / s for s in samples],
        )
    ]


# ----------------------------------------------------------------------------- rows


def _run_rows(ws: Workspace, src: Path, name: str, url: str | None) -> tuple[float, float]:
    data_dir = ws.data_dir(name)
    options = () if url is None else ("--config", str(_config(ws.root / f"{name}.toml", url)))
    run = run_child(engine_cmd(ws, data_dir, src, *options))
    if run.returncode != 0 or b"success" not in run.stdout:
        raise RuntimeError(f"{name} failed ({run.returncode}): {run.stdout[-500:]!r} {run.stderr[-2000:]!r}")
    return run.seconds, run.peak_rss_mb


def bench_rows(server: PostgresServer, ws: Workspace, rows: int, repeats: int, log) -> list[Result]:
    src = ws.root / "in.csv"
    size = write_csv(src, rows)
    log(f"  input: {rows:,} rows, {size / 1e6:.0f} MB")
    pg_s, lite_s, pg_rss, lite_rss = [], [], [], []
    for i in range(repeats):
        s, rss = _run_rows(ws, src, f"sqlite-{i}", None)
        lite_s.append(s)
        lite_rss.append(rss)
        s, rss = _run_rows(ws, src, f"pg-{i}", server.create_database())
        pg_s.append(s)
        pg_rss.append(rss)
        log(
            f"  run {i + 1}: PostgreSQL {pg_s[-1]:.2f} s ({pg_rss[-1]:.0f} MB), "
            f"SQLite {lite_s[-1]:.2f} s ({lite_rss[-1]:.0f} MB)"
        )
    rate, base = rows / median(pg_s), rows / median(lite_s)
    return [
        Result(
            "12 cluster rows",
            f"one {rows:,}-row job on PostgreSQL (whole process)",
            rate,
            "rows/s",
            baseline=base,
            baseline_name="the same job on SQLite",
            goal="ratio >= 0.8",
            met=rate >= 0.8 * base,
            samples=[rows / s for s in pg_s],
            baseline_samples=[rows / s for s in lite_s],
        ),
        Result(
            "12 cluster memory",
            "peak RSS of that job on PostgreSQL",
            max(pg_rss),
            "MB",
            baseline=max(lite_rss),
            baseline_name="the same job on SQLite",
            goal="< 100 MB",
            met=max(pg_rss) < 100,
            samples=pg_rss,
            baseline_samples=lite_rss,
        ),
    ]


# ----------------------------------------------------------------------------- scale


def _scale_once(server: PostgresServer, ws: Workspace, engines: int, jobs: int, rows: int, i: int) -> float:
    url = server.create_database()
    root = ws.data_dir(f"scale-{engines}-{i}")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "io_plugin.py").write_text(IO_PLUGIN)
    config = _config(root / "kz.toml", url, max_running=2, wait_after_row_ms=0)
    src = root / "in.csv"
    write_csv(src, rows)
    env = child_env()
    base = [*KZCONSOLE, "--config", str(config), "--plugins", str(plugins)]
    # One data dir per engine: nothing is shared but the store (as on separate nodes).
    procs = [
        subprocess.Popen(
            [*base, "--data-dir", str(root / f"node{n}"), "engine", "--node", f"node{n}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(engines)
    ]
    try:
        from kzconsole.config import load_settings
        from kzconsole.engine import Engine

        settings = load_settings(str(config), data_dir=str(root / "cli"), extra_plugin_paths=[str(plugins)])
        with Engine(settings) as cli:  # adds and starts the jobs, as `tasks add` / `tasks start` do
            ids = [cli.add_job("bench", "io", input=str(src)).id for _ in range(jobs)]
            store = cli.store
            while len([lease for lease in store.engines() if lease.tasks]) < engines:
                time.sleep(0.05)
            start = time.perf_counter()
            for job_id in ids:
                cli.start_job(job_id)
            while store.count_jobs(status=["success", "failure", "partial", "stopped", "internal_error"]) < jobs:
                time.sleep(0.02)
            seconds = time.perf_counter() - start
            bad = store.count_jobs(status=["failure", "partial", "stopped", "internal_error"])
            if bad:
                raise RuntimeError(f"{bad} of {jobs} jobs did not end success")
        return jobs * rows / seconds
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_scale(server: PostgresServer, ws: Workspace, repeats: int, log) -> list[Result]:
    jobs, rows = 32, 200
    rates: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for i in range(repeats):
        for n in rates:
            rates[n].append(_scale_once(server, ws, n, jobs, rows, i))
        log(f"  run {i + 1}: " + ", ".join(f"{n} engine(s) {rates[n][-1]:,.0f} rows/s" for n in rates))
    one = median(rates[1])
    results = []
    for n in (2, 4):
        value = median(rates[n])
        results.append(
            Result(
                "12 cluster scale",
                f"{n} engines, rows waiting 2 ms ({jobs} jobs x {rows} rows)",
                value,
                "rows/s",
                baseline=one * n,
                baseline_name=f"{n} x one engine ({one:,.0f} rows/s)",
                goal=f">= 0.8 x {n} x one engine",
                met=value >= 0.8 * n * one,
                samples=rates[n],
                baseline_samples=[r * n for r in rates[1]],
            )
        )
    return results


# ----------------------------------------------------------------------------- driver


def run(
    only: tuple[str, ...] = ("jobs", "rows", "scale"),
    jobs: int = 2000,
    rows: int = 1_000_000,
    repeats: int = 3,
    log=print,
) -> list[Result]:
    results: list[Result] = []
    with PostgresServer(BENCH_SETTINGS) as server, Workspace(prefix="kzbench-cluster-") as ws:
        if "jobs" in only:
            try:
                import procrastinate  # noqa: F401
            except ImportError:
                results.append(Result("12 cluster jobs", "pending: procrastinate is not installed", None, "jobs/s"))
            else:
                results += bench_jobs(server, ws, jobs, repeats, log)
        if "rows" in only:
            results += bench_rows(server, ws, rows, repeats, log)
        if "scale" in only:
            results += bench_scale(server, ws, max(1, repeats - 1), log)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="jobs,rows,scale")
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=["engine", "procrastinate"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--plugins", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "engine":
        print(json.dumps(child_engine(args.url, Path(args.root), Path(args.plugins), args.jobs)))
        return 0
    if args.child == "procrastinate":
        print(json.dumps(child_procrastinate(args.url, args.jobs, args.workers)))
        return 0
    for r in run(tuple(args.only.split(",")), args.jobs, args.rows, args.repeats):
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        print(
            f"{r.target}: {r.name}: {r.value} {r.unit} vs {r.baseline} ({r.baseline_name}):"
            f" ratio {ratio} met={r.met}; {r.note}"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
