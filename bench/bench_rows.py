"""Targets 1 and 2: row throughput and peak memory of one CSV job run from the command line.

The engine runs ``kzconsole tasks add bench ok --input F --wait-ms 0 --run`` as a subprocess (the
whole process: start-up, plugin loading, the input check and copy, the run, every checkpoint, the
final fsync). The baseline is ``bench/plain_rows.py`` in a subprocess: the `csv` module reading the
same file, the same row dicts, the same kind of call, the same output written with `csv.writer`.
Runs alternate (plain, engine, plain, engine, ...) so that a noisy neighbour hurts both alike.

Peak RSS is the child's own ``ru_maxrss`` (``os.wait4``).

    python bench/bench_rows.py [--rows N] [--repeats K] [--big N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KZCONSOLE, PYTHON, Result, Workspace, median, run_child, write_csv

PLAIN = str(Path(__file__).resolve().parent / "plain_rows.py")


def engine_cmd(ws: Workspace, data_dir: Path, src: Path, *options: str) -> list[str]:
    """The engine's side of the rows benchmark: one job of ``src`` run by ``tasks add --run``
    (``options``: global options such as ``--config FILE``). bench_cluster.py runs it too."""
    return [
        *KZCONSOLE,
        *options,
        "--data-dir",
        str(data_dir),
        "--plugins",
        str(ws.plugins),
        "tasks",
        "add",
        "bench",
        "ok",
        "--input",
        str(src),
        "--wait-ms",
        "0",
        "--run",
    ]


def _run_engine(ws: Workspace, src: Path, name: str):
    data_dir = ws.data_dir(name)
    run = run_child(engine_cmd(ws, data_dir, src))
    if run.returncode != 0 or b"status             success" not in run.stdout:
        raise RuntimeError(f"engine run failed ({run.returncode}): {run.stdout[-500:]!r} {run.stderr[-2000:]!r}")
    return run, data_dir


def _run_plain(ws: Workspace, src: Path):
    run = run_child([PYTHON, PLAIN, str(src), str(ws.root / "plain_out.csv")])
    if run.returncode != 0:
        raise RuntimeError(f"plain script failed: {run.stderr[-2000:]!r}")
    return run


def run(
    rows: int = 1_000_000, repeats: int = 3, big: int = 10_000_000, big_baseline: bool = False, log=print
) -> list[Result]:
    results: list[Result] = []
    with Workspace() as ws:
        src = ws.root / "in.csv"
        t0 = time.perf_counter()
        size = write_csv(src, rows)
        log(f"  input: {rows:,} rows, {size / 1e6:.0f} MB (written in {time.perf_counter() - t0:.1f} s)")
        engine_s: list[float] = []
        plain_s: list[float] = []
        engine_rss: list[float] = []
        plain_rss: list[float] = []
        for i in range(repeats):
            p = _run_plain(ws, src)
            plain_s.append(p.seconds)
            plain_rss.append(p.peak_rss_mb)
            e, data_dir = _run_engine(ws, src, f"rows{i}")
            engine_s.append(e.seconds)
            engine_rss.append(e.peak_rss_mb)
            if i == 0:
                out = next((data_dir / "jobs").glob("*/out.csv"))
                if out.read_bytes() != (ws.root / "plain_out.csv").read_bytes():
                    raise RuntimeError("the engine's output differs from the plain script's")
            log(
                f"  run {i + 1}: plain {p.seconds:.2f} s ({p.peak_rss_mb:.0f} MB), "
                f"engine {e.seconds:.2f} s ({e.peak_rss_mb:.0f} MB)"
            )
            ws.data_dir(f"rows{i}")  # free the disk
        e_rate = rows / median(engine_s)
        p_rate = rows / median(plain_s)
        results.append(
            Result(
                "1 row throughput",
                f"tasks add --run, {rows:,} rows",
                e_rate,
                "rows/s",
                baseline=p_rate,
                baseline_name="plain csv script",
                goal="ratio >= 0.5",
                met=e_rate / p_rate >= 0.5,
                samples=[rows / s for s in engine_s],
                baseline_samples=[rows / s for s in plain_s],
            )
        )
        results.append(
            Result(
                "2 memory",
                f"peak RSS, {rows:,} rows",
                max(engine_rss),
                "MB",
                baseline=max(plain_rss),
                baseline_name="plain csv script",
                goal="< 100 MB",
                met=max(engine_rss) < 100,
                samples=engine_rss,
                baseline_samples=plain_rss,
            )
        )
        src.unlink()
        if big:
            t0 = time.perf_counter()
            size = write_csv(src, big)
            log(f"  input: {big:,} rows, {size / 1e6:.0f} MB (written in {time.perf_counter() - t0:.1f} s)")
            p = _run_plain(ws, src) if big_baseline else None
            e, data_dir = _run_engine(ws, src, "big")
            ws.data_dir("big")
            log(
                f"  {big:,} rows: engine {e.seconds:.1f} s ({e.peak_rss_mb:.0f} MB)"
                + (f", plain {p.seconds:.1f} s ({p.peak_rss_mb:.0f} MB)" if p else "")
            )
            results.append(
                Result(
                    "2 memory",
                    f"peak RSS, {big:,} rows",
                    e.peak_rss_mb,
                    "MB",
                    baseline=p.peak_rss_mb if p else None,
                    baseline_name="plain csv script" if p else "",
                    goal="< 100 MB",
                    met=e.peak_rss_mb < 100,
                    note=f"{big / e.seconds:,.0f} rows/s" + (f", plain {big / p.seconds:,.0f} rows/s" if p else ""),
                )
            )
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", type=int, default=0, help="also measure the peak RSS of a run of N rows")
    ap.add_argument("--big-baseline", action="store_true", help="run the plain script on the big input too")
    args = ap.parse_args(argv)
    for r in run(args.rows, args.repeats, args.big, args.big_baseline):
        ratio = f" ratio {r.ratio:.2f}" if r.ratio is not None else ""
        print(f"{r.target}: {r.name}: {r.value:,.1f} {r.unit} (baseline {r.baseline}){ratio} met={r.met} {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
