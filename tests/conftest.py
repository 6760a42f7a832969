"""Shared fixtures: an engine on a private data dir with plugins written by the test."""

from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path

import pytest

from kzconsole.config import Settings, load_settings

# The pg_server and pg_url fixtures: a real PostgreSQL server started by the tests (owner: pg).
pytest_plugins = ["tests.pgserver"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test reads the user's config or data dir."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.delenv("KZCONSOLE_CONFIG", raising=False)
    monkeypatch.delenv("KZCONSOLE_DATA_DIR", raising=False)


def make_settings(tmp_path: Path, plugin_dir: Path | None = None, **tasks) -> Settings:
    env = {"HOME": str(tmp_path)}
    settings = load_settings(
        None,
        data_dir=str(tmp_path / "data"),
        extra_plugin_paths=[str(plugin_dir)] if plugin_dir else [],
        env=env,
        cwd=tmp_path,
    )
    options = {"wait_after_row_ms": 0, "output_fallback_dir": str(tmp_path / "fallback")}
    options.update(tasks)
    return settings.with_overrides(tasks=options)


class PluginDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, source: str) -> Path:
        p = self.path / name
        p.write_text(textwrap.dedent(source))
        return p


@pytest.fixture
def plugin_dir(tmp_path) -> PluginDir:
    return PluginDir(tmp_path / "plugins")


@pytest.fixture
def engine_factory(tmp_path, plugin_dir):
    from kzconsole.engine import Engine

    engines = []

    def make(**tasks):
        engine = Engine(make_settings(tmp_path, plugin_dir.path, **tasks))
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.close()


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def output_csv(engine, job) -> list[list[str]]:
    """A job's output, read through the engine facade (wherever the store keeps it)."""
    stream = engine.open_output(job)
    assert stream is not None, f"job {job.id} has no output"
    with stream:
        return list(csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline="")))


def log_text(engine, job) -> str:
    """A job's log, read through the engine facade."""
    return engine.read_log(job)[0].decode("utf-8")
