"""The engine and the plugin API never import Textual or Rich; the command line starts without them."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "kzconsole.plugin",
        "kzconsole.engine",
        "kzconsole.engine.engine",
        "kzconsole.engine.runner",
        "kzconsole.engine.scheduler",
        "kzconsole.engine.store.sqlite",
        "kzconsole.cli",
        "kzconsole.config",
    ],
)
def test_headless_modules_do_not_import_textual_or_rich(module):
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_commands_run_without_textual(tmp_path):
    code = (
        "import sys; from kzconsole.cli import main; "
        f"rc = main(['--data-dir', {str(tmp_path)!r}, 'tasks', 'list', '--json']); "
        "sys.exit(3 if ('textual' in sys.modules or 'rich' in sys.modules) else rc)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
