"""Target 4 (command line part): ``kzconsole tasks list`` with 100,000 jobs in the store.

Each command runs as a subprocess (start-up included) with its output going to a file, 5 times,
alternating with the baseline, the same command on an empty store (what start-up costs before
the store's size matters). Measured: the full listing (every job, one line each) and a first
page (``--limit 100``). The jobs are seeded by ``bench/seed.py`` (one transaction).

    python bench/bench_startup.py [--jobs 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KZCONSOLE, Result, Workspace, median, run_child  # noqa: E402


def _list(data_dir: Path, *extra: str) -> float:
    run = run_child([*KZCONSOLE, "--data-dir", str(data_dir), "tasks", "list", *extra])
    if run.returncode != 0:
        raise RuntimeError(f"tasks list failed: {run.stderr[-2000:]!r}")
    return run.seconds


def run(jobs: int = 100_000, repeats: int = 5, log=print) -> list[Result]:
    from seed import seed_jobs

    with Workspace() as ws:
        full_dir = ws.data_dir("full")
        seconds = seed_jobs(full_dir, jobs)
        empty_dir = ws.data_dir("empty")
        seed_jobs(empty_dir, 0)
        log(f"  seeded {jobs:,} jobs in {seconds:.1f} s")
        all_s, page_s, empty_s = [], [], []
        for _ in range(repeats):
            empty_s.append(_list(empty_dir))
            all_s.append(_list(full_dir))
            page_s.append(_list(full_dir, "--limit", "100"))
        log(f"  tasks list: all {jobs:,} {median(all_s):.3f} s, --limit 100 {median(page_s):.3f} s, "
            f"empty store {median(empty_s):.3f} s")
    return [
        Result("4 startup", f"tasks list, all {jobs:,} jobs", median(all_s), "s", baseline=median(empty_s),
               baseline_name="tasks list, empty store", goal="< 0.3 s", met=median(all_s) < 0.3,
               samples=all_s, baseline_samples=empty_s),
        Result("4 startup", f"tasks list --limit 100, {jobs:,} jobs", median(page_s), "s", baseline=median(empty_s),
               baseline_name="tasks list, empty store", goal="< 0.3 s", met=median(page_s) < 0.3,
               samples=page_s, baseline_samples=empty_s),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    for r in run(args.jobs, args.repeats):
        print(f"{r.target}: {r.name}: {r.value:.3f} {r.unit} vs {r.baseline:.3f} ({r.baseline_name}) met={r.met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
