"""Target 3: job throughput. 2,000 tiny noinput jobs created, started and finished through the
SQLite store by the engine, against huey (SqliteHuey) running 2,000 tasks, in the same run.

Each side runs in a fresh subprocess (alternating), producer and workers in that process:

- engine: ``Engine(settings).start()`` with default settings (``tasks.max_running`` = 4, the
  plugin watcher and triggers on), then ``add_job("bench", "tiny", start=True)`` 2,000 times from
  the main thread; the clock stops when the 2,000th job has finished (its ``JobChanged`` event).
  A tiny job is one call returning ``Next(STOP, OK)``: one success, then the job ends. Each job
  still gets its record, its (header-only) output and its two log lines, all in the store (on
  SQLite small files are rows of the database: no folder, no inode), in two write transactions:
  its creation, and its end, which also claims the next queued job.
- huey: ``SqliteHuey`` with a thread consumer (``create_consumer(workers=W)``), 2,000 calls of a
  task returning ``True`` (so its result is stored too); the clock stops when the 2,000th task has
  run. Measured with 1 worker and with 4 (the engine's max_running); the better is the baseline.

    python bench/bench_jobs.py [--jobs N] [--repeats K]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, Result, Workspace, median, run_child

HERE = Path(__file__).resolve()


def child_engine(root: Path, plugins: Path, jobs: int) -> dict:
    from kzconsole.config import load_settings
    from kzconsole.engine import Engine, JobChanged

    settings = load_settings(None, data_dir=root / "data", extra_plugin_paths=[str(plugins)])
    engine = Engine(settings)
    engine.catalog  # noqa: B018 - the property loads the plugins, before the clock starts as in a running engine
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
    cpu = time.process_time()
    for _ in range(jobs):
        engine.add_job("bench", "tiny", start=True)
    created = time.perf_counter() - start
    if not done.wait(600):
        raise RuntimeError(f"only {finished} of {jobs} jobs finished")
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    ok = engine.count_jobs(status="success")
    engine.close()
    if ok != jobs:
        raise RuntimeError(f"{ok} of {jobs} jobs ended success")
    return {"seconds": seconds, "created_seconds": created, "cpu_seconds": cpu}


def child_huey(root: Path, jobs: int, workers: int) -> dict:
    import logging

    from huey import SqliteHuey

    logging.getLogger("huey").setLevel(logging.WARNING)
    huey = SqliteHuey("bench", filename=str(root / "huey.db"))
    finished = 0
    done = threading.Event()
    lock = threading.Lock()

    @huey.task()
    def tiny():
        nonlocal finished
        with lock:
            finished += 1
            if finished >= jobs:
                done.set()
        return True

    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
    consumer.start()
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(jobs):
        tiny()
    created = time.perf_counter() - start
    if not done.wait(600):
        raise RuntimeError(f"only {finished} of {jobs} tasks ran")
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    consumer.stop(graceful=True)
    return {"seconds": seconds, "created_seconds": created, "cpu_seconds": cpu}


def _child(kind: str, ws: Workspace, jobs: int, workers: int, name: str) -> dict:
    root = ws.data_dir(name)  # a new, empty folder for each run
    cmd = [
        PYTHON,
        str(HERE),
        "--child",
        kind,
        "--root",
        str(root),
        "--plugins",
        str(ws.plugins),
        "--jobs",
        str(jobs),
        "--workers",
        str(workers),
    ]
    run = run_child(cmd)
    if run.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {run.stderr[-3000:].decode(errors='replace')}")
    # The data dir is kept until the workspace is deleted. ext4 skips inodes freed in the last
    # minutes when it allocates new ones, so deleting the 6,000 inodes of one run would make the
    # next run's job folders slower to create (docs/performance.md).
    return json.loads(run.stdout.decode().strip().splitlines()[-1])


def run(jobs: int = 2000, repeats: int = 3, log=print) -> list[Result]:
    engine_s: list[float] = []
    huey1_s: list[float] = []
    huey4_s: list[float] = []
    with Workspace() as ws:
        for i in range(repeats):
            h1 = _child("huey", ws, jobs, 1, f"huey1-{i}")
            e = _child("engine", ws, jobs, 4, f"engine-{i}")
            h4 = _child("huey", ws, jobs, 4, f"huey4-{i}")
            huey1_s.append(h1["seconds"])
            engine_s.append(e["seconds"])
            huey4_s.append(h4["seconds"])
            log(
                f"  run {i + 1}: engine {e['seconds']:.2f} s (adding {e['created_seconds']:.2f} s), "
                f"huey 1 worker {h1['seconds']:.2f} s, huey 4 workers {h4['seconds']:.2f} s"
            )
    e_rate = jobs / median(engine_s)
    h1_rate = jobs / median(huey1_s)
    h4_rate = jobs / median(huey4_s)
    best, best_name = (
        (h1_rate, "huey SqliteHuey, 1 thread worker")
        if h1_rate >= h4_rate
        else (h4_rate, "huey SqliteHuey, 4 thread workers")
    )
    return [
        Result(
            "3 job throughput",
            f"{jobs:,} tiny noinput jobs, Engine (max_running 4)",
            e_rate,
            "jobs/s",
            baseline=best,
            baseline_name=best_name,
            goal="ratio >= 1.0",
            met=e_rate >= best,
            note=f"huey 1 worker {h1_rate:,.0f} jobs/s, 4 workers {h4_rate:,.0f} jobs/s",
            samples=[jobs / s for s in engine_s],
            baseline_samples=[jobs / s for s in (huey1_s if best == h1_rate else huey4_s)],
        )
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=["engine", "huey"], help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--plugins", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "engine":
        print(json.dumps(child_engine(Path(args.root), Path(args.plugins), args.jobs)))
        return 0
    if args.child == "huey":
        print(json.dumps(child_huey(Path(args.root), args.jobs, args.workers)))
        return 0
    for r in run(args.jobs, args.repeats):
        print(
            f"{r.target}: {r.value:,.0f} {r.unit} vs {r.baseline:,.0f} ({r.baseline_name}): "
            f"ratio {r.ratio:.2f} met={r.met}; {r.note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
