"""The command line is tested through a subprocess, as an operator or a script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.plugins = tmp_path / "plugins"
        self.plugins.mkdir()
        self.cwd = tmp_path
        self.env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
        self.env.pop("KZCONSOLE_CONFIG", None)
        self.env.pop("KZCONSOLE_DATA_DIR", None)

    def argv(self, *args: str) -> list[str]:
        """The command line of ``kzconsole ARGS`` on this data dir and plugin dir."""
        return [sys.executable, "-m", "kzconsole", "--data-dir", str(self.data), "--plugins", str(self.plugins), *args]

    def __call__(self, *args: str, input: bytes | None = None, check: int | None = 0, traceback: bool = False):
        proc = subprocess.run(
            self.argv(*args), capture_output=True, input=input, cwd=self.cwd, env=self.env, timeout=60
        )
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        if not traceback:  # only a plugin's own failure may show one (the log of `triggers run`)
            assert b"Traceback" not in proc.stderr, proc.stderr
        return proc

    def json(self, *args: str, check: int | None = 0, input: bytes | None = None):
        proc = self(*args, "--json", check=check, input=input)
        return json.loads(proc.stdout)


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path)
