"""Hot reload: latency (plugin file saved -> catalog updated) and the watcher's idle CPU.

Measured in one process, next to a baseline measured in the same run:

- **baseline latency**: a bare ``watchfiles.watch()`` over a folder, with the same ``step`` and
  ``debounce`` as the plugin watcher: file saved -> change yielded (what the OS and watchfiles
  cost before kzconsole does anything);
- **reload latency**: a real :class:`kzconsole.engine.Engine` with a plugin folder and its watcher
  running: file saved (an editor's atomic save: write a temporary file, ``os.replace``) -> the
  engine's ``CatalogChanged`` event, with the new version in the catalog. That includes reading,
  compiling and running the plugin file and swapping the catalog;
- **idle CPU** over ~5 s: the whole process (``resource.getrusage``) and, through psutil when it is
  installed, the watcher thread alone; the same for the bare watchfiles loop.

    .venv/bin/python bench/bench_reload.py [--saves 20] [--idle 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PLUGIN = """
from kzconsole.plugin import task, trigger

@task("bench", "reload", description="version {n}")
def reload_me(ctx, it):
    return None

@trigger("hourly")
def hourly():
    return None
"""

STEP_MS = 10
DEBOUNCE_MS = 50


def atomic_save(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu(native_id: int | None) -> float | None:
    if native_id is None:
        return None
    try:
        import psutil
    except ImportError:
        return None
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return None


def idle_cpu(seconds: float, native_id: int | None) -> tuple[float, float | None]:
    """(process CPU %, thread CPU % or None) over ``seconds`` of doing nothing."""
    p0, t0, w0 = cpu_seconds(), thread_cpu(native_id), time.monotonic()
    time.sleep(seconds)
    p1, t1, w1 = cpu_seconds(), thread_cpu(native_id), time.monotonic()
    wall = w1 - w0
    thread = None if t0 is None or t1 is None else 100 * (t1 - t0) / wall
    return 100 * (p1 - p0) / wall, thread


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[max(0, round(0.9 * len(ms)) - 1)]
    return f"median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


def baseline(folder: Path, saves: int, idle_s: float) -> tuple[list[float], tuple[float, float | None]]:
    import watchfiles

    stop = threading.Event()
    seen = threading.Event()
    ready = threading.Event()
    native: list[int] = []

    def loop() -> None:
        native.append(threading.get_native_id())
        for _changes in watchfiles.watch(
            folder,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=stop,
            recursive=False,
            yield_on_timeout=True,
            rust_timeout=100,
        ):
            ready.set()
            if _changes:
                seen.set()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    ready.wait(5)  # the first timeout proves the watch is in place
    samples = []
    target = folder / "plain.py"
    for n in range(saves):
        seen.clear()
        start = time.perf_counter()
        atomic_save(target, PLUGIN.format(n=n))
        if not seen.wait(5):
            raise SystemExit("baseline: a save was never reported")
        samples.append(time.perf_counter() - start)
        time.sleep(0.1)  # let the debounce window close before the next save
    # Idle with the same settings but no timeout, as the plugin watcher runs when all is there.
    stop.set()
    thread.join(5)
    stop.clear()
    native.clear()

    def idle_loop() -> None:
        native.append(threading.get_native_id())
        for _ in watchfiles.watch(
            folder, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop, recursive=False, rust_timeout=0
        ):
            pass

    thread = threading.Thread(target=idle_loop, daemon=True)
    thread.start()
    time.sleep(0.3)
    cpu = idle_cpu(idle_s, native[0] if native else None)
    stop.set()
    thread.join(5)
    return samples, cpu


def kzconsole_reload(root: Path, saves: int, idle_s: float) -> tuple[list[float], tuple[float, float | None]]:
    from kzconsole.config import load_settings
    from kzconsole.engine import CatalogChanged, Engine
    from kzconsole.engine.watcher import PluginWatcher

    plugins = root / "plugins"
    plugins.mkdir()
    target = plugins / "reload_me.py"
    target.write_text(PLUGIN.format(n="start"))
    settings = load_settings(
        None, data_dir=str(root / "data"), extra_plugin_paths=[str(plugins)], env={"HOME": str(root)}, cwd=root
    )
    engine = Engine(settings)
    changed = threading.Event()
    engine.events.subscribe(lambda ev: changed.set() if isinstance(ev, CatalogChanged) else None)
    engine.start(run_jobs=False, triggers=False)
    try:
        [watcher] = [s for s in engine.services if isinstance(s, PluginWatcher)]
        if not watcher.watching.wait(5):
            raise SystemExit("the plugin watcher never started")
        samples = []
        for n in range(saves):
            changed.clear()
            start = time.perf_counter()
            atomic_save(target, PLUGIN.format(n=n))
            deadline = start + 5
            while True:
                if not changed.wait(max(0.0, deadline - time.perf_counter())):
                    raise SystemExit("kzconsole: a save never reached the catalog")
                spec = engine.catalog.task("bench", "reload")
                if spec is not None and spec.description == f"version {n}":
                    break
                changed.clear()
            samples.append(time.perf_counter() - start)
            time.sleep(0.1)
        thread = watcher._thread
        time.sleep(0.3)
        cpu = idle_cpu(idle_s, thread.native_id if thread is not None else None)
        return samples, cpu
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "plain").mkdir()
        base, base_cpu = baseline(root / "plain", args.saves, args.idle)
        ours, our_cpu = kzconsole_reload(root, args.saves, args.idle)

    def cpu_text(cpu: tuple[float, float | None]) -> str:
        process, thread = cpu
        thread_text = "n/a (psutil missing)" if thread is None else f"{thread:.3f} %"
        return f"process {process:.3f} %   watcher thread {thread_text}"

    print(f"hot reload, step={STEP_MS} ms, debounce={DEBOUNCE_MS} ms, {args.saves} atomic saves each")
    print(f"  baseline  watchfiles save -> change yielded : {summary(base)}")
    print(f"  kzconsole save -> catalog updated           : {summary(ours)}")
    print(f"  contract: within 500 ms -> {'OK' if max(ours) < 0.5 else 'EXCEEDED'}")
    print(f"idle CPU over {args.idle:g} s (one core = 100 %)")
    print(f"  baseline  bare watchfiles loop : {cpu_text(base_cpu)}")
    print(f"  kzconsole engine with watcher  : {cpu_text(our_cpu)}")


if __name__ == "__main__":
    main()
