"""Shared helpers for the benchmarks: temporary data dirs, input files, child processes measured
one by one (wall time and peak RSS through ``os.wait4``), medians and a result record.

Nothing here is imported by kzconsole; the benchmarks drive it from the outside (a subprocess
running the command line) or through its public facade (``kzconsole.engine.Engine``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
KZCONSOLE = [PYTHON, "-m", "kzconsole"]

# The trivial task of target 1: a CSV task accepting any columns, returning OK. Kept as source
# text so the engine loads it from a plugin directory exactly as a user's plugin is loaded.
TRIVIAL_PLUGIN = """\
from kzconsole.plugin import OK, STOP, Next, task


@task("bench", "ok", description="Returns OK for every row", expected_content="text/csv")
def ok(ctx, it, row):
    return OK


@task("bench", "tiny", description="A noinput job: one successful call, then it ends")
def tiny(ctx, it):
    return Next(STOP, OK)
"""


@dataclass
class Result:
    """One figure of the report, next to the baseline measured in the same run."""

    target: str  # e.g. "1 row throughput"
    name: str  # what was measured
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""  # the target, in words ("ratio >= 0.5")
    met: bool | None = None  # None: no verdict (informational, or pending)
    note: str = ""
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Workspace:
    """A throwaway folder with a plugin directory holding the trivial plugin."""

    def __init__(self, prefix: str = "kzbench-") -> None:
        base = os.environ.get("KZBENCH_TMP") or None
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        self.plugins = self.root / "plugins"
        self.plugins.mkdir(mode=0o700)
        (self.plugins / "bench_plugin.py").write_text(TRIVIAL_PLUGIN)
        os.chmod(self.plugins / "bench_plugin.py", 0o600)

    def data_dir(self, name: str) -> Path:
        path = self.root / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o700)
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KZCONSOLE_CONFIG", None)
    env.pop("KZCONSOLE_DATA_DIR", None)
    # KZBENCH_SRC: run another source tree of kzconsole (an older commit unpacked with
    # `git archive REV | tar -x -C DIR`) to compare two versions side by side.
    src = os.environ.get("KZBENCH_SRC") or str(ROOT)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # No config file from the user's home or the current folder: built-in defaults only.
    env["XDG_CONFIG_HOME"] = tempfile.gettempdir() + "/kzbench-no-config"
    return env


@dataclass
class ChildRun:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: bytes
    stderr: bytes
    cpu_seconds: float = 0.0  # user + system time of the child (steadier than wall time on a busy machine)


# Runs the command and reports its peak RSS. Why a launcher: on Linux a forked child's ru_maxrss
# starts at its parent's RSS at fork time and keeps it across exec, so measuring children of this
# (large) process directly would report this process's size. The launcher is a small Python
# started with -S; what it forks starts from its size (about 10 MB), far below any figure measured.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
while True:
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        break
    except InterruptedError:
        continue
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {seconds!r} {usage.ru_utime + usage.ru_stime!r}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(cmd: Sequence[str], *, cwd: str | os.PathLike[str] | None = None, timeout: float = 600) -> ChildRun:
    """Run ``cmd`` and measure its wall time (from spawn to exit, measured by the launcher) and its
    own peak RSS (see ``_LAUNCHER``)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    fd, rss_file = tempfile.mkstemp(prefix="kzbench-rss-")
    os.close(fd)
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-S", "-c", _LAUNCHER, rss_file, *cmd],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=child_env(),
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        seconds = time.perf_counter() - start
        with open(rss_file) as f:
            text = f.read().split()
        cpu = 0.0
        if text:  # the child's own wall time, without the launcher's start-up
            rss_kb, seconds, cpu = int(text[0]), float(text[1]), float(text[2])
        else:
            rss_kb = 0
    finally:
        os.unlink(rss_file)
    out.seek(0)
    err.seek(0)
    # ru_maxrss is in kilobytes on Linux.
    return ChildRun(seconds, rss_kb / 1024.0, proc.returncode, out.read(), err.read(), cpu)


def write_csv(path: Path, rows: int) -> int:
    """A CSV input of ``rows`` data rows and three columns (a phone number, a name, an account),
    written in large chunks; returns its size in bytes."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("number,name,account_id\n")
        chunk = 100_000
        for start in range(0, rows, chunk):
            end = min(rows, start + chunk)
            f.write("".join(f"+1415{i:07d},name {i},{i % 977:032x}\n" for i in range(start, end)))
    return path.stat().st_size


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100_000:
        return f"{value / 1000:,.0f}k"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.3g}"
