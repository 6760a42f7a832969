"""A throwaway PostgreSQL 15 server for the tests and benchmarks (nothing needs to run beforehand).

``PostgresServer().start()`` runs ``initdb`` into a fresh temporary folder and starts the server on
a Unix socket in that folder only (``listen_addresses = ''``: no TCP port at all, so nothing on the
machine or the network can reach it and no port can clash). ``stop()`` kills it and removes the
folder. Used by the ``pg_server`` session fixture (``tests/conftest.py``), the cluster tests and
``bench/bench_cluster*.py``.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user, in a folder
made with :func:`tempfile.mkdtemp` and given to that user (pytest's ``tmp_path`` folders are
``0700 root``: that user could not enter them).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote


def _pg_bin() -> Path:
    """Debian's PostgreSQL 15 server; another version's where 15 is not installed (Debian 13)."""
    if os.environ.get("KZ_PG_BIN"):
        return Path(os.environ["KZ_PG_BIN"])
    preferred = Path("/usr/lib/postgresql/15/bin")
    if (preferred / "initdb").exists():
        return preferred
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else preferred


PG_BIN = _pg_bin()
PORT = 5432  # only names the socket file (.s.PGSQL.5432) inside our own folder

# Without fsync a test server is several times faster, and what the tests kill is the server
# process, not the machine: the WAL it wrote is still in the page cache. (synchronous_commit stays
# on: a commit acknowledged to the store is one a restart keeps.)
TEST_SETTINGS = {"fsync": "off", "full_page_writes": "off", "max_connections": "300", "shared_buffers": "64MB"}
# The benchmarks measure a server as an operator would run it (durable commits).
BENCH_SETTINGS = {"max_connections": "300", "shared_buffers": "128MB"}


class PostgresUnavailable(RuntimeError):
    pass


class PostgresServer:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    # ------------------------------------------------------------------ plumbing

    @property
    def data(self) -> Path:
        assert self.dir is not None, "the server was not started"
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.dir is not None, "the server was not started"
        return self.dir

    def _command(self, *args: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        if self.dir is None or not (self.dir / "server.log").exists():
            return ""
        text = (self.dir / "server.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> PostgresServer:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise PostgresUnavailable(
                f"{initdb} is missing: install Debian's PostgreSQL 15 server "
                "(apt-get install -y postgresql; .ci/run does it), or set KZ_PG_BIN"
            )
        # Short: a Unix socket path is limited to 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="kzpg-", dir="/tmp"))
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o700)
        self._run(
            str(initdb),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        self._start_server()
        return self

    def _start_server(self) -> None:
        options = ["-c listen_addresses=''", f"-c port={PORT}", f"-k {self.socket_dir}"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.dir / "server.log"),
            "-o",
            " ".join(options),
            "start",
        )

    def stop(self, *, remove: bool = True) -> None:
        if self.dir is None:
            return
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._command(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                check=False,
            )
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def restart(self, *, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: as if it crashed; every connection drops) and start it
        again on the same data and socket."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self._start_server()

    def halt(self, *, mode: str = "immediate") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def resume(self) -> None:
        self._start_server()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- databases

    def url(self, database: str = "postgres") -> str:
        """A libpq URL reaching ``database`` over the socket."""
        return f"postgresql://postgres@/{quote(database)}?host={quote(str(self.socket_dir), safe='')}&port={PORT}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database; returns its URL."""
        import psycopg

        name = name or f"kz_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        import psycopg

        name = url_or_name.split("/")[-1].split("?")[0] if "/" in url_or_name else url_or_name
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -------------------------------------------------------------------------- pytest fixtures
# Registered for the whole suite by tests/conftest.py (pytest_plugins); the server starts only when
# a test asks for it, once per session.

try:
    import pytest
except ImportError:  # imported by a benchmark without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def pg_server():
        """A PostgreSQL server for the whole session (started on first use)."""
        server = PostgresServer()
        try:
            server.start()
        except PostgresUnavailable as exc:
            server.stop()
            pytest.fail(str(exc), pytrace=False)
        yield server
        server.stop()

    @pytest.fixture
    def pg_url(pg_server):
        """The URL of a fresh, empty database on the session's server (dropped afterwards)."""
        url = pg_server.create_database()
        yield url
        try:
            pg_server.drop_database(url)
        except Exception:  # noqa: BLE001 - a server a test restarted or stopped: removed at the end
            pass
