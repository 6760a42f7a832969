"""What the console sends to a real terminal (issue 13.1): nothing while nothing on screen changes,
and only the changed cells when something does. The console runs in a pseudo-terminal with
Textual's real driver (tests/ui/terminal.py), as an operator's tmux would run it.

The byte rates themselves (a running job's view under 5 KiB/s at 100x30) are measured by
bench/bench_console.py beside a baseline; these tests check what must hold whatever the machine.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from kzconsole.engine import Engine
from tests.conftest import write_csv
from tests.ui.conftest import seed_jobs, ui_settings
from tests.ui.terminal import Terminal

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux pty")

CONFIG = """
[triggers]
enabled = false

[plugins]
reload = false
"""


def _rows_written(data: bytes) -> set[int]:
    """The screen rows the console moved its cursor to (a full repaint visits every row)."""
    return {int(row) for row, _col in re.findall(rb"\x1b\[(\d+);(\d+)H", data)}


@pytest.fixture
def site(tmp_path):
    """A data dir with the jobs of every status, and a slow job the console's engine runs."""
    config = tmp_path / "kzconsole.toml"
    config.write_text(CONFIG)
    settings = ui_settings(tmp_path)
    engine = Engine(settings)
    seed_jobs(engine)
    src = write_csv(tmp_path / "slow.csv", [["col1", "col2"]] + [[f"a{i}", f"b{i}"] for i in range(5000)])
    slow = engine.add_job("skel", "id2", input=src, wait_ms=100, start=True)
    engine.close()
    env = dict(os.environ, KZCONSOLE_CONFIG=str(config), HOME=str(tmp_path), TZ="UTC", LANG="C.UTF-8")
    return settings.data_dir, env, slow.id


def test_a_finished_jobs_view_sends_nothing_while_another_job_runs(site):
    """A finished job's view repainted the whole screen 4-26 times a second while any job ran
    (the live list under it made Textual repaint everything): 12.5 KiB/s for nothing."""
    data_dir, env, _slow = site
    with Terminal.console(data_dir, size=(100, 30), env=env) as term:
        term.wait_for("1 running", timeout=60)
        term.press(":", *"job 00000001", "enter")
        term.wait_for("output  100 rows")
        term.quiet_for(1.0, timeout=20)
        assert term.measure(2.0) == 0


def test_the_jobs_list_sends_only_changed_rows_and_nothing_when_idle(site):
    data_dir, env, _slow = site
    with Terminal.console(data_dir, size=(100, 30), env=env) as term:
        term.wait_for("1 running", timeout=60)
        data = term.received(since=_after(term, 1.0))
        # The running job's row (and the count lines) move; the other rows stay as they are.
        rows = _rows_written(data)
        assert rows and len(rows) <= 4, rows
        term.press("x")  # stop it: then nothing on screen moves
        term.wait_for("stopped")
        term.quiet_for(1.0, timeout=20)
        assert term.measure(2.0) == 0


def test_a_running_jobs_view_repaints_what_moves_not_the_screen(site):
    data_dir, env, slow = site
    with Terminal.console(data_dir, size=(100, 30), env=env) as term:
        term.wait_for("1 running", timeout=60)
        term.press(":", *f"job {slow[:8]}", "enter")
        term.wait_for("pause 100 ms")
        data = term.received(since=_after(term, 2.0))
        rows = _rows_written(data)
        # The progress lines and the record's time: a few rows, never the log pane or the screen.
        assert rows and len(rows) <= 6, rows


def _after(term: Terminal, seconds: float) -> float:
    """Let the console run ``seconds`` more; return when that window started."""
    import time

    start = time.monotonic() + 2.0  # what the last key caused (the view's first paint) is not part of it
    time.sleep(seconds + 2.0)
    return start
