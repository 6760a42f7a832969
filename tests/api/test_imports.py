"""The web stack is loaded by `serve` only; the API never loads the console's libraries."""

import subprocess
import sys


def test_other_commands_do_not_import_the_web_stack(tmp_path):
    code = (
        "import sys; from kzconsole.cli import main; "
        f"rc = main(['--data-dir', {str(tmp_path)!r}, 'tasks', 'list', '--json']); "
        "bad = [m for m in ('starlette', 'uvicorn', 'httpx', 'kzconsole.api.app', 'kzconsole.api.serve') if m in sys.modules]; "
        "print(bad); sys.exit(3 if bad else rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_api_does_not_import_textual_or_rich():
    code = (
        "import sys, kzconsole.api.app, kzconsole.api.serve, kzconsole.api.openapi; "
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
