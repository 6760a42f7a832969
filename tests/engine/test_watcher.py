"""Hot reload through the watcher (contract 6): creates, in-place writes, atomic saves, vim's
save, deletes, broken versions, duplicate declarations across files, directories that appear
later, and running jobs keeping their code. Waits are on catalog changes, with timeouts."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.loader import Loader
from kzconsole.engine.watcher import PluginWatcher, is_plugin_file
from tests.conftest import output_csv

TIMEOUT = 5.0


def plugin(version: str, category: str = "w", action: str = "ver") -> str:
    return textwrap.dedent(
        f'''
        from kzconsole.plugin import task, trigger

        @task("{category}", "{action}", description="version {version}")
        def ver(ctx, it):
            return None

        @trigger("hourly")
        def hourly_{version}():
            return None
        '''
    )


class Watched:
    """A catalog + loader + running watcher over ``directory``; waits on catalog changes."""

    def __init__(self, directory: Path, *, debounce_ms: int = 50) -> None:
        self.directory = directory
        self.catalog = Catalog()
        self.loader = Loader(self.catalog)
        if directory.is_dir():
            self.loader.load_directory(directory)
        self.cond = threading.Condition()
        self.catalog.subscribe(self._changed)
        self.watcher = PluginWatcher(self.loader, [directory], debounce_ms=debounce_ms)
        self.watcher.start()
        assert self.watcher.watching.wait(TIMEOUT), "the watcher never started watching"

    def _changed(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait(self, predicate, what: str = "the catalog change") -> float:
        start = time.monotonic()
        with self.cond:
            ok = self.cond.wait_for(predicate, TIMEOUT)
        assert ok, f"timed out waiting for {what}; sources: {self.catalog.sources()}"
        return time.monotonic() - start

    def path(self, name: str) -> str:
        return str(self.directory.resolve() / name)

    def description(self, category: str = "w", action: str = "ver") -> str | None:
        spec = self.catalog.task(category, action)
        return spec.description if spec else None

    def source(self, name: str):
        return self.catalog.source(self.path(name))

    def stop(self) -> None:
        self.watcher.stop()


@pytest.fixture
def watched(tmp_path):
    directory = tmp_path / "plugins"
    directory.mkdir()
    made = []

    def make(**kw) -> Watched:
        w = Watched(directory, **kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


@pytest.fixture(autouse=True)
def forget_plugin_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("kzconsole_plugins_"):
            sys.modules.pop(name, None)


def test_create_then_in_place_writes(watched):
    w = watched()
    target = w.directory / "a.py"
    target.write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    # Rewritten in place, same size, within the same second: the new text is what runs.
    target.write_text(plugin("v2"))
    w.wait(lambda: w.description() == "version v2")
    with open(target, "w") as handle:  # written in two steps, as a slow editor might
        handle.write(plugin("v3")[:20])
        handle.flush()
        handle.write(plugin("v3")[20:])
    w.wait(lambda: w.description() == "version v3")
    assert [s.function_name for s in w.catalog.triggers("hourly")] == ["hourly_v3"]


def test_atomic_save_through_rename(watched):
    w = watched()
    (w.directory / "a.py").write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    for version in ("v2", "v3", "v4"):
        tmp = w.directory / ".a.py.swp-tmp"  # a hidden temporary name, as editors use
        tmp.write_text(plugin(version))
        os.replace(tmp, w.directory / "a.py")
        w.wait(lambda version=version: w.description() == f"version {version}", f"the atomic save of {version}")
    # the temporary file never became a plugin source
    assert [s.source for s in w.catalog.sources()] == [w.path("a.py")]


def test_vim_style_save(watched):
    """vim renames the file to a backup, writes a new file, deletes the backup: the watcher sees
    added and deleted for the same path in one batch and must decide by what exists now."""
    w = watched()
    target = w.directory / "a.py"
    target.write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    backup = w.directory / "a.py~"
    os.rename(target, backup)
    target.write_text(plugin("v2"))
    backup.unlink()
    w.wait(lambda: w.description() == "version v2")
    assert w.source("a.py").loaded and w.source("a.py").error is None


def test_delete_takes_tasks_and_triggers_away(watched):
    w = watched()
    (w.directory / "a.py").write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    (w.directory / "a.py").unlink()
    w.wait(lambda: w.source("a.py") is None)
    assert w.catalog.task("w", "ver") is None
    assert w.catalog.triggers("hourly") == []


def test_syntax_error_keeps_the_old_version_then_recovers(watched):
    w = watched()
    target = w.directory / "a.py"
    target.write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    target.write_text(plugin("v2") + "\ndef broken(:\n")
    w.wait(lambda: (w.source("a.py").error or "") != "")
    src = w.source("a.py")
    assert "SyntaxError" in src.error and src.loaded
    assert w.description() == "version v1"  # the previous version keeps serving
    target.write_text(plugin("v3"))
    w.wait(lambda: w.description() == "version v3")
    assert w.source("a.py").error is None


def test_exception_at_import_keeps_the_old_version(watched):
    w = watched()
    target = w.directory / "a.py"
    target.write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    target.write_text(plugin("v2") + "\nraise RuntimeError('cannot start: no token')\n")
    w.wait(lambda: "no token" in (w.source("a.py").error or ""))
    assert "Traceback" in w.source("a.py").error
    assert w.description() == "version v1"
    assert [s.function_name for s in w.catalog.triggers("hourly")] == ["hourly_v1"]


def test_a_new_broken_file_is_recorded_not_loaded(watched):
    w = watched()
    (w.directory / "bad.py").write_text("import no_such_module_here\n")
    w.wait(lambda: w.source("bad.py") is not None)
    src = w.source("bad.py")
    assert not src.loaded and "no_such_module_here" in src.error


def test_duplicate_declarations_across_files(watched):
    w = watched()
    (w.directory / "a.py").write_text(plugin("a"))
    w.wait(lambda: w.description() == "version a")
    (w.directory / "b.py").write_text(plugin("b"))  # declares the same task w/ver
    w.wait(lambda: w.source("b.py") is not None and w.source("b.py").error)
    assert "already declared" in w.source("b.py").error
    assert w.description() == "version a"  # the first one keeps serving
    (w.directory / "a.py").unlink()
    w.wait(lambda: w.description() == "version b", "b.py taking over once a.py is gone")
    assert w.source("a.py") is None and w.source("b.py").error is None


def test_helpers_hidden_files_and_subfolders_are_not_plugins(watched):
    assert is_plugin_file("/x/a.py") and not is_plugin_file("/x/_helper.py")
    assert not is_plugin_file("/x/.a.py") and not is_plugin_file("/x/a.py~") and not is_plugin_file("/x/a.pyc")
    w = watched()
    (w.directory / "_helper.py").write_text(plugin("helper"))
    (w.directory / ".hidden.py").write_text(plugin("hidden"))
    (w.directory / "sub").mkdir()
    (w.directory / "sub" / "nested.py").write_text(plugin("nested"))
    (w.directory / "real.py").write_text(plugin("real", action="real"))  # a marker written last
    w.wait(lambda: w.description(action="real") == "version real")
    assert [s.source for s in w.catalog.sources()] == [w.path("real.py")]


def test_a_directory_created_later_is_watched(tmp_path):
    directory = tmp_path / "later" / "plugins"  # neither folder exists yet
    w = Watched(directory)
    try:
        directory.mkdir(parents=True)
        (directory / "a.py").write_text(plugin("v1"))
        w.wait(lambda: w.description() == "version v1", "a file in a folder created after the start")
        (directory / "a.py").write_text(plugin("v2"))
        w.wait(lambda: w.description() == "version v2")
    finally:
        w.stop()


def test_a_directory_moved_away_unloads_and_coming_back_reloads(watched, tmp_path):
    w = watched()
    (w.directory / "a.py").write_text(plugin("v1"))
    w.wait(lambda: w.description() == "version v1")
    aside = tmp_path / "aside"
    os.rename(w.directory, aside)
    w.wait(lambda: w.source("a.py") is None, "the files of a vanished folder leaving")
    (aside / "a.py").write_text(plugin("v2"))
    os.rename(aside, w.directory)
    w.wait(lambda: w.description() == "version v2", "the folder coming back")


def test_stop_ends_the_thread(tmp_path):
    directory = tmp_path / "p"
    directory.mkdir()
    before = set(threading.enumerate())
    watcher = PluginWatcher(Loader(Catalog()), [directory])
    watcher.start()
    assert watcher.watching.wait(TIMEOUT)
    (thread,) = set(threading.enumerate()) - before
    # The stop event interrupts watchfiles' wait: the thread ends, it is not left behind (how
    # soon is bench/bench_reload.py's business, not a test's).
    watcher.stop(timeout=TIMEOUT)
    assert not thread.is_alive() and not watcher.running


# --- with an engine: running jobs keep their code --------------------------------------------

JOB_PLUGIN = """
import kz_test_watch_gate as gate
from kzconsole.plugin import Next, STOP, task

@task("w", "which", description="says which version ran", output_header=["version"])
def which(ctx, it):
    gate.entered.set()
    gate.release.wait(10)
    return Next(STOP, ["{version}"])
"""


def test_a_running_job_finishes_with_the_code_it_started_with(engine_factory, plugin_dir, monkeypatch):
    from kzconsole.engine import JobChanged
    from kzconsole.engine.watcher import PluginWatcher as Watcher

    gate = types.ModuleType("kz_test_watch_gate")
    gate.entered = threading.Event()
    gate.release = threading.Event()
    monkeypatch.setitem(sys.modules, "kz_test_watch_gate", gate)
    plugin_dir.write("which.py", JOB_PLUGIN.replace("{version}", "v1"))
    engine = engine_factory()
    finished = {}
    cond = threading.Condition()

    def on_event(ev):
        if isinstance(ev, JobChanged) and ev.job.status.is_finished:
            with cond:
                finished[ev.job.id] = ev.job
                cond.notify_all()

    engine.events.subscribe(on_event)
    reloaded = threading.Event()
    engine.start(triggers=False)
    [watcher] = [s for s in engine.services if isinstance(s, Watcher)]
    assert watcher.watching.wait(TIMEOUT)
    first = engine.add_job("w", "which", start=True)
    assert gate.entered.wait(TIMEOUT)
    engine.catalog.subscribe(reloaded.set)
    plugin_dir.write("which.py", JOB_PLUGIN.replace("{version}", "v2"))
    assert reloaded.wait(TIMEOUT)
    gate.release.set()
    with cond:
        assert cond.wait_for(lambda: first.id in finished, TIMEOUT * 2)
    second = engine.add_job("w", "which", start=True)
    with cond:
        assert cond.wait_for(lambda: second.id in finished, TIMEOUT * 2)
    assert "v1" in str(output_csv(engine, finished[first.id]))
    assert "v2" in str(output_csv(engine, finished[second.id]))
