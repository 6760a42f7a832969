"""A real ``kzconsole serve`` process on 127.0.0.1 (a free port), and httpx clients for it.

Each :class:`Server` is its own process started like an operator would (``python -m kzconsole
serve --listen 127.0.0.1:0``), with a config file written by the test; the port it got is read from
the line it prints once it listens. Keys are made with ``kzconsole api-keys add``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
GREGORIAN_OFFSET = 62167219200

# Test tasks: `apitest/hold` keeps a row whose n is "hold" running until the job is asked to
# stop (so a test can stop an executing job without racing its end); every row it runs is
# appended to runs.log, so a test can tell that no row ran twice.
PLUGIN = """
import os
import time
from kzconsole.plugin import task, runtime

@task("apitest", "hold", description="Holds a row until stopped", mandatory=["n"])
def hold(ctx, it, row):
    with open(os.path.join(str(runtime().data_dir), "runs.log"), "a") as log:
        log.write(f"{ctx.job_id},{row['n']}\\n")
    if row["n"] == "hold":
        while not ctx.stop_requested:
            time.sleep(0.01)
    return [row["n"]]
"""

_LISTENING = re.compile(r"serving the API on (https?://\S+?)/v2 ")


class Server:
    def __init__(
        self,
        root: Path,
        *,
        data: Path | None = None,
        engine: bool = True,
        api: dict[str, Any] | None = None,
        tasks: dict[str, Any] | None = None,
        store_url: str | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data = data or root / "data"
        self.plugins = root / "plugins"
        self.plugins.mkdir(exist_ok=True)
        (self.plugins / "apitest.py").write_text(textwrap.dedent(PLUGIN))
        self.config = root / "kzconsole.toml"
        tasks = {"wait_after_row_ms": 0, "max_running": 8, "send_progress_after_processed": 1, **(tasks or {})}
        lines = [
            "[tasks]",
            *(f"{k} = {json.dumps(v)}" for k, v in tasks.items()),
            "[plugins]",
            f"paths = [{json.dumps(str(self.plugins))}]",
            "reload = false",
            "[triggers]",
            "enabled = false",
            *(["[store]", f"url = {json.dumps(store_url)}"] if store_url else []),
            "[api]",
            *(f"{k} = {json.dumps(v)}" for k, v in (api or {}).items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.engine = engine
        self.env = dict(os.environ, HOME=str(root), XDG_CONFIG_HOME=str(root / "cfg"))
        self.env.pop("KZCONSOLE_CONFIG", None)
        self.env.pop("KZCONSOLE_DATA_DIR", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.stderr: list[str] = []
        self._ready = threading.Event()

    # ---- the process

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kzconsole", "--config", str(self.config), "--data-dir", str(self.data), *args]

    def start(self) -> Server:
        # Each server its own node name (contract 9: jobs record the node that ran them).
        args = ["serve", "--listen", "127.0.0.1:0", "--node", self.root.name] + ([] if self.engine else ["--no-engine"])
        self.proc = subprocess.Popen(
            self.command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(60) or not self.url:
            self.stop()
            raise AssertionError("the server did not start:\n" + "".join(self.stderr))
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.stderr.append(line)
            found = _LISTENING.search(line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()  # it exited

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.proc = None
        return code

    # ---- helpers

    def cli(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(self.command(*args), check=False, capture_output=True, env=self.env, timeout=60)
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def add_key(self, account: str = ACCOUNT, *, superadmin: bool = False, name: str | None = None) -> dict[str, Any]:
        args = ["api-keys", "add", "--account", account, "--json"]
        if superadmin:
            args.append("--superadmin")
        if name:
            args += ["--name", name]
        return json.loads(self.cli(*args).stdout)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"X-Auth-Token": token} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def token(self, key: str) -> str:
        with self.client() as client:
            answer = client.put("/v2/api_auth", json={"data": {"api_key": key}})
        assert answer.status_code == 201, answer.text
        return answer.json()["auth_token"]

    def login(self, account: str = ACCOUNT, *, superadmin: bool = False) -> httpx.Client:
        return self.client(self.token(self.add_key(account, superadmin=superadmin)["key"]))


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def make(name: str = "s", **kwargs: Any) -> Server:
        server = Server(tmp_path / name, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that do not mind each other's jobs (one account each)."""
    server = Server(tmp_path_factory.mktemp("api"), api={"page_size": 50}).start()
    yield server
    server.stop()


def wait_for(client: httpx.Client, path: str, done: Any, *, limit: float = 60) -> dict[str, Any]:
    """Poll ``path`` until ``done(task)`` holds (the engine runs in another process: its answers
    are the only thing to wait on). ``limit`` only bounds a failing test."""
    import time

    deadline = time.monotonic() + limit
    while True:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        task = answer.json()["data"]["_read_only"]
        if done(task):
            return task
        assert time.monotonic() < deadline, f"still {task}"
        time.sleep(0.02)


FINISHED = ("success", "failure", "partial", "stopped", "internal_error")
