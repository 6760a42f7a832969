"""Helpers for the reliability suite: waiting for jobs of a started engine, running the command
line and the engine as real processes, reading a store from outside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kzconsole.engine import JobChanged, JobRecord


class Finished:
    """Collects the final record of every job a (started) engine finishes."""

    def __init__(self, engine) -> None:
        self.records: dict[str, JobRecord] = {}
        self._cond = threading.Condition()
        self.unsubscribe = engine.events.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, JobChanged) and event.job.status.is_finished:
            with self._cond:
                self.records[event.job.id] = event.job
                self._cond.notify_all()

    def wait(self, job_id: str, timeout: float = 15.0) -> JobRecord:
        with self._cond:
            if not self._cond.wait_for(lambda: job_id in self.records, timeout):
                raise AssertionError(f"job {job_id} did not finish within {timeout} s")
            return self.records[job_id]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition", interval: float = 0.01
) -> Any:
    """Poll ``predicate`` until it returns something truthy (state owned by another process has
    no event to wait on); fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def subprocess_env(home: Path) -> dict[str, str]:
    env = dict(
        os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share")
    )
    env.pop("KZCONSOLE_CONFIG", None)
    env.pop("KZCONSOLE_DATA_DIR", None)
    return env


class CommandSite:
    """A data dir, a plugin dir and a config file, for ``kzconsole`` processes run on them (this
    suite's sites, the cluster suite's nodes). ``store_url`` None is the data dir's SQLite store."""

    store_url: str | None = None
    task_defaults: dict[str, Any] = {}

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.plugins = root / "plugins"
        self.plugins.mkdir(parents=True, exist_ok=True)
        self.config = root / "kzconsole.toml"
        self.fallback = root / "fallback"
        self.env = subprocess_env(root)
        self.write_config()

    def write_config(self, **tasks: Any) -> None:
        options = {"wait_after_row_ms": 0, **self.task_defaults, "output_fallback_dir": str(self.fallback), **tasks}
        lines = [] if self.store_url is None else ["[store]", f"url = {json.dumps(self.store_url)}"]
        lines += ["[tasks]"] + [f"{k} = {json.dumps(v)}" for k, v in options.items()]
        lines += ["[triggers]", "enabled = false", "[plugins]", "reload = false"]
        self.config.write_text("\n".join(lines) + "\n")

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "kzconsole",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data),
            "--plugins",
            str(self.plugins),
            *args,
        ]

    def cli(
        self, *args: str, check: int | None = 0, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            self.argv(*args), capture_output=True, input=input, cwd=self.root, env=self.env, timeout=timeout
        )
        if check is not None:
            assert proc.returncode == check, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def cli_json(self, *args: str, check: int | None = 0) -> Any:
        return json.loads(self.cli(*args, "--json", check=check).stdout)


class Site(CommandSite):
    """A site on its own SQLite store, with plugins written by the test and engine processes."""

    def plugin(self, name: str, source: str) -> Path:
        import textwrap

        path = self.plugins / name
        path.write_text(textwrap.dedent(source))
        return path

    def engine(self, name: str = "engine") -> EngineProcess:
        return EngineProcess(self, name)

    def store(self):
        from kzconsole.engine.store.sqlite import SQLiteStore

        return SQLiteStore(self.data / "kzconsole.db")


class EngineProcess:
    """``kzconsole engine`` in a subprocess; its log goes to a file (read it on failure)."""

    def __init__(self, site: Site, name: str) -> None:
        self.log_path = site.root / f"{name}.{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # closed in wait()
        # Each engine its own node name, so a job's `node` tells which one ran it (contract 9).
        self.proc = subprocess.Popen(
            site.argv("engine", "--node", name), stdout=self._log, stderr=subprocess.STDOUT, cwd=site.root, env=site.env
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no checkpoint, no lease release, no cleanup of any kind."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait()

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()


@pytest.fixture
def site(tmp_path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def engines():
    """Engine processes started by a test; any still running at the end is killed."""
    started: list[EngineProcess] = []
    yield started
    for engine in started:
        if engine.proc.poll() is None:
            engine.kill()
