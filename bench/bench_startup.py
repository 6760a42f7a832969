"""Target 4 (command line part) and issue 11.6: `tasks list` and prefix lookups on a big store.

Each command runs as a subprocess (start-up included) with its output going to a file, alternating
with its baseline, ``repeats`` times; wall time and peak RSS are the child's (bench/common.py):

- ``tasks list`` (every job, one line each) and ``--limit 100``, beside the same command on an
  empty store (what start-up costs before the store's size matters);
- ``tasks list --json`` (every job), beside the text listing: the goal is the same speed, in the
  same (constant) memory;
- ``tasks show <8-character prefix>`` beside ``tasks show <full id>``: a prefix is found by a range
  of the id index, as fast as the id itself.

The jobs are seeded by ``bench/seed.py`` (one transaction).

    python bench/bench_startup.py [--jobs 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KZCONSOLE, ChildRun, Result, Workspace, median, run_child


def _run(data_dir: Path, *args: str) -> ChildRun:
    run = run_child([*KZCONSOLE, "--data-dir", str(data_dir), "tasks", *args])
    if run.returncode != 0:
        raise RuntimeError(f"tasks {' '.join(args)} failed: {run.stderr[-2000:]!r}")
    return run


def run(jobs: int = 100_000, repeats: int = 5, log=print) -> list[Result]:
    from seed import seed_jobs

    from kzconsole.engine import JobQuery
    from kzconsole.engine.store.sqlite import SQLiteStore

    with Workspace() as ws:
        full_dir = ws.data_dir("full")
        seconds = seed_jobs(full_dir, jobs)
        empty_dir = ws.data_dir("empty")
        seed_jobs(empty_dir, 0)
        log(f"  seeded {jobs:,} jobs in {seconds:.1f} s")
        with SQLiteStore(full_dir / "kzconsole.db") as store:
            job_id = store.list_jobs(JobQuery(limit=1, offset=jobs // 2))[0].id
        runs: dict[str, list[ChildRun]] = {name: [] for name in ("empty", "all", "page", "json", "id", "prefix")}
        for _ in range(repeats):
            runs["empty"].append(_run(empty_dir, "list"))
            runs["all"].append(_run(full_dir, "list"))
            runs["json"].append(_run(full_dir, "list", "--json"))
            runs["page"].append(_run(full_dir, "list", "--limit", "100"))
            runs["id"].append(_run(full_dir, "show", job_id))
            runs["prefix"].append(_run(full_dir, "show", job_id[:8]))

    def s(name: str) -> list[float]:
        return [r.seconds for r in runs[name]]

    def mb(name: str) -> float:
        return max(r.peak_rss_mb for r in runs[name])

    log(
        f"  tasks list: all {jobs:,} {median(s('all')):.3f} s ({mb('all'):.0f} MB), --json "
        f"{median(s('json')):.3f} s ({mb('json'):.0f} MB), --limit 100 {median(s('page')):.3f} s, "
        f"empty store {median(s('empty')):.3f} s ({mb('empty'):.0f} MB)"
    )
    log(
        f"  tasks show: by an 8-character prefix {median(s('prefix')):.3f} s ({mb('prefix'):.0f} MB), "
        f"by the full id {median(s('id')):.3f} s ({mb('id'):.0f} MB)"
    )
    empty = median(s("empty"))
    return [
        Result(
            "4 startup",
            f"tasks list, all {jobs:,} jobs",
            median(s("all")),
            "s",
            baseline=empty,
            baseline_name="tasks list, empty store",
            goal="< 0.3 s",
            met=median(s("all")) < 0.3,
            note=f"peak RSS {mb('all'):.0f} MB (empty store {mb('empty'):.0f} MB)",
            samples=s("all"),
            baseline_samples=s("empty"),
        ),
        Result(
            "4 startup",
            f"tasks list --limit 100, {jobs:,} jobs",
            median(s("page")),
            "s",
            baseline=empty,
            baseline_name="tasks list, empty store",
            goal="< 0.3 s",
            met=median(s("page")) < 0.3,
            samples=s("page"),
            baseline_samples=s("empty"),
        ),
        Result(
            "11.6 listing",
            f"tasks list --json, all {jobs:,} jobs",
            median(s("json")),
            "s",
            baseline=median(s("all")),
            baseline_name="tasks list (text), same jobs",
            goal="as fast as the text; constant memory",
            met=median(s("json")) <= 1.15 * median(s("all")) and mb("json") < mb("empty") + 30,
            note=f"peak RSS {mb('json'):.0f} MB (text {mb('all'):.0f} MB)",
            samples=s("json"),
            baseline_samples=s("all"),
        ),
        Result(
            "11.6 prefix lookup",
            f"tasks show <8-char prefix>, {jobs:,} jobs",
            median(s("prefix")),
            "s",
            baseline=median(s("id")),
            baseline_name="tasks show <full id>",
            goal="as fast as the full id",
            met=median(s("prefix")) <= 1.15 * median(s("id")),
            note=f"peak RSS {mb('prefix'):.0f} MB (full id {mb('id'):.0f} MB)",
            samples=s("prefix"),
            baseline_samples=s("id"),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    for r in run(args.jobs, args.repeats):
        print(
            f"{r.target}: {r.name}: {r.value:.3f} {r.unit} vs {r.baseline:.3f} ({r.baseline_name}) met={r.met} {r.note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
