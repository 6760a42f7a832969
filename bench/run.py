"""Runs every benchmark of issue 6 and prints each figure next to its baseline (measured in the
same run), with medians and ratios, and whether its target is met. Takes about 9 minutes.

    .venv/bin/python bench/run.py             # everything (make bench)
    .venv/bin/python bench/run.py --quick     # no 10,000,000-row run, fewer repeats (about 1 min)
    .venv/bin/python bench/run.py --only rows,jobs --json results.json

Targets: rows (1: row throughput, 2: memory), jobs (3: job throughput against huey), startup
(4: tasks list), console (4: first paint, 5: console under load), query (issue 13.11: every filter
and sort of the jobs list at 100,000 jobs; 11.6: prefix lookups), reload (6: hot reload, from
bench/bench_reload.py), api (issue 14: the REST API's requests/s against a bare endpoint, and its
memory through a 1 GB upload and download, from bench/bench_api.py), cluster (issue 12: the
PostgreSQL store against procrastinate and SQLite, and 1/2/4 engines, from bench/bench_cluster.py).
The job benchmark needs huey (`.venv/bin/pip install huey`); without it that figure is reported as
pending. See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result

ALL = ("rows", "jobs", "startup", "console", "query", "reload", "api", "cluster")


def log(text: str) -> None:
    print(text, flush=True)


def bench_reload(saves: int) -> list[Result]:
    """Target 6, through the functions of bench/bench_reload.py (another author's benchmark)."""
    import statistics

    try:
        import bench_reload as br
    except ImportError as exc:
        return [Result("6 hot reload", "pending: bench/bench_reload.py is missing", None, "ms", note=str(exc))]
    with tempfile.TemporaryDirectory(prefix="kzbench-reload-") as tmp:
        root = Path(tmp)
        (root / "plain").mkdir()
        base, _ = br.baseline(root / "plain", saves, 1.0)
        ours, _ = br.kzconsole_reload(root, saves, 1.0)
    ours_ms = [x * 1000 for x in ours]
    base_ms = [x * 1000 for x in base]
    med = statistics.median(ours_ms)
    log(
        f"  reload: median {med:.0f} ms, max {max(ours_ms):.0f} ms; bare watchfiles median "
        f"{statistics.median(base_ms):.0f} ms"
    )
    return [
        Result(
            "6 hot reload",
            f"plugin file saved -> catalog updated ({saves} saves)",
            med,
            "ms",
            baseline=statistics.median(base_ms),
            baseline_name="bare watchfiles, same step/debounce",
            goal="median < 300 ms",
            met=med < 300,
            note=f"max {max(ours_ms):.0f} ms",
            samples=ours_ms,
            baseline_samples=base_ms,
        )
    ]


def run_one(name: str, args: argparse.Namespace) -> list[Result]:
    quick = args.quick
    if name == "rows":
        import bench_rows

        big = 0 if quick else args.big
        return bench_rows.run(rows=1_000_000, repeats=2 if quick else 3, big=big, big_baseline=args.full, log=log)
    if name == "jobs":
        try:
            import huey  # noqa: F401
        except ImportError:
            return [
                Result(
                    "3 job throughput", "pending: huey is not installed (.venv/bin/pip install huey)", None, "jobs/s"
                )
            ]
        import bench_jobs

        return bench_jobs.run(jobs=2000, repeats=2 if quick else 3, log=log)
    if name == "startup":
        import bench_startup

        return bench_startup.run(jobs=100_000, repeats=3 if quick else 5, log=log)
    if name == "console":
        import bench_console

        return bench_console.run(
            jobs=100_000, rows=200_000, repeats=2 if quick else 3, presses=20 if quick else 30, log=log
        )
    if name == "query":
        import bench_query

        return bench_query.run(jobs=100_000, repeats=3 if quick else 5, log=log)
    if name == "reload":
        return bench_reload(10 if quick else 20)
    if name == "api":
        import bench_api

        return bench_api.run(
            jobs=100_000,
            requests=2000 if quick else 4000,
            repeats=1 if quick else 3,
            gigabytes=0.2 if quick else 1.0,
            log=log,
        )
    if name == "cluster":
        # Issue 12: PostgreSQL against procrastinate (jobs), against SQLite (rows, RSS), and 1/2/4
        # engines (bench/bench_cluster.py; needs Debian's PostgreSQL server, as the tests do).
        import bench_cluster

        return bench_cluster.run(jobs=2000, rows=1_000_000, repeats=2 if quick else 3, log=log)
    raise ValueError(name)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("rows/s", "jobs/s", "req/s"):
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:g} {unit}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = " load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPU ({cpu}), Python "
        f"{platform.python_version()},{load}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the 10,000,000-row run; fewer repeats")
    ap.add_argument("--full", action="store_true", help="also run the plain script on the big input")
    ap.add_argument("--big", type=int, default=10_000_000, help="rows of the memory run (default 10,000,000)")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    names = ALL if not args.only else tuple(n.strip() for n in args.only.split(","))
    unknown = set(names) - set(ALL)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    log(f"kzconsole benchmarks on {machine()}")
    started = time.perf_counter()
    results: list[Result] = []
    failed = False
    for name in names:
        log(f"[{name}]")
        # The one before may leave hundreds of MB of dirty pages (the 1,000,000-row jobs): written
        # back during the next benchmark they slowed its fsyncs (and its baseline's) by a third.
        os.sync()
        t0 = time.perf_counter()
        try:
            results.extend(run_one(name, args))
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed = True
            log(traceback.format_exc())
            results.append(Result(name, "FAILED: see the traceback above", None, ""))
        log(f"  ({time.perf_counter() - t0:.0f} s)")
    total = time.perf_counter() - started

    log("")
    log(f"{'target':22} {'measured':48} {'value':>16} {'baseline':>16} {'ratio':>6}  {'goal':26} met")
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        log(
            f"{r.target:22} {r.name[:48]:48} {fmt(r.value, r.unit):>16} {fmt(r.baseline, r.unit):>16} "
            f"{ratio:>6}  {r.goal[:26]:26} {met}"
        )
        extra = "; ".join(x for x in (f"baseline: {r.baseline_name}" if r.baseline_name else "", r.note) if x)
        if extra:
            log(f"{'':22}   {extra}")
    log(f"\nall benchmarks: {total:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "seconds": total,
                    "results": [{**r.__dict__, "ratio": r.ratio} for r in results],
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
