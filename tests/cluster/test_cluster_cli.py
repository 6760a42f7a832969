"""The command line on a PostgreSQL store that cannot be reached (contract 9): a clear message on
stderr, exit 2, no traceback, and never the password (docs/operations.md, "Running a cluster")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import subprocess_env


def _kz(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "kzconsole.toml"
    config.write_text(f'[store]\nurl = "{url}"\n')
    return subprocess.run(
        [sys.executable, "-m", "kzconsole", "--config", str(config), "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


def test_a_password_in_the_urls_query_is_not_shown_when_the_store_is_unreachable(tmp_path: Path) -> None:
    # libpq takes the password as a query parameter too; the message showed it in clear.
    socket_dir = tmp_path / "no-server-here"
    url = f"postgresql://kz@/kzconsole?host={socket_dir}&password=S3CRET&application_name=kz"
    for args in (("tasks", "list"), ("nodes",)):
        done = _kz(tmp_path, url, *args)
        assert done.returncode == 2, done
        assert "S3CRET" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(
            f"kzconsole: cannot connect to the store postgresql://kz@/kzconsole?host={socket_dir}"
            "&password=***&application_name=kz: "
        ), done.stderr
