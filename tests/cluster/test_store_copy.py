"""``kzconsole store copy FROM_URL TO_URL`` (contract 9, "moving up"): a node's SQLite history
into the cluster's PostgreSQL store, through the command line, and back."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from kzconsole.engine.models import Firing, JobStatus
from kzconsole.engine.store.base import ApiKey
from kzconsole.engine.store.postgres import PostgresStore
from kzconsole.engine.store.sqlite import SQLiteStore
from tests.reliability.conftest import subprocess_env
from tests.store.contract import NOW, make_job


def kz(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kzconsole", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


def test_store_copy_moves_jobs_files_history_and_keys_and_never_overwrites(tmp_path: Path, pg_url: str) -> None:
    lite = SQLiteStore(tmp_path / "node" / "kzconsole.db")
    big = b"n\n" + b"".join(b"%d\n" % i for i in range(300_000))  # several chunks
    lite.create_job(
        make_job(
            "a1", status=JobStatus.SUCCESS, input_path="jobs/a1/in.csv", total_count=300_000, success_count=300_000
        ),
        input=io.BytesIO(big),
    )
    lite.append_file("a1", "output", b"n,error\n1,\n")
    lite.append_file("a1", "log", b"started\n")
    fallback = tmp_path / "task_out.b2.csv"
    fallback.write_bytes(b"n,error\n7,\n")
    lite.create_job(make_job("b2", status=JobStatus.PARTIAL, output_path=str(fallback), created=NOW + 1))
    lite.record_firing(
        Firing(id=0, trigger="minutely", key="minutely:1", node="n1", started=NOW, ended=NOW + 1, status="ok")
    )
    lite.add_api_key(ApiKey("k" * 32, "acct", "ops", False, NOW, "h" * 64))
    lite.close()
    source = f"sqlite:///{tmp_path / 'node' / 'kzconsole.db'}"

    done = kz(tmp_path, "store", "copy", source, pg_url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "jobs": 2,
        "skipped": 0,
        "bytes": len(big) + 11 + 8 + 11,
        "firings": 1,
        "api_keys": 1,
        "skipped_ids": [],
    }
    with PostgresStore(pg_url) as pg:
        assert {j.id for j in pg.list_jobs()} == {"a1", "b2"}
        with pg.open_file("a1", "input") as f:  # type: ignore[union-attr]
            assert f.read() == big
        with pg.open_file("b2", "output") as f:  # type: ignore[union-attr]
            assert f.read() == b"n,error\n7,\n"  # the fallback file became the stored output
        assert pg.get_job("b2").output_path is None  # type: ignore[union-attr]
        assert [f.key for f in pg.list_firings()] == ["minutely:1"]
        assert [k.id for k in pg.api_keys()] == ["k" * 32]

    again = kz(tmp_path, "store", "copy", source, pg_url)
    assert again.returncode == 2
    assert "2 job(s) exist" in again.stderr and "not overwritten" in again.stderr

    back = kz(tmp_path, "store", "copy", pg_url, f"sqlite:///{tmp_path / 'back.db'}")
    assert back.returncode == 0, back.stderr
    with SQLiteStore(tmp_path / "back.db") as copied, copied.open_file("a1", "input") as f:  # type: ignore[union-attr]
        assert f.read() == big


def test_store_copy_refuses_bad_urls(tmp_path: Path) -> None:
    done = kz(tmp_path, "store", "copy", "mysql://x", "sqlite:///y.db")
    assert done.returncode == 2 and "FROM_URL" in done.stderr


def test_store_copy_from_a_missing_sqlite_file_is_an_error_and_creates_nothing(tmp_path: Path, pg_url: str) -> None:
    # A mistyped FROM_URL used to create an empty store (and its folder), copy nothing, and exit 0.
    missing = tmp_path / "typo" / "kzconsole.db"
    done = kz(tmp_path, "store", "copy", f"sqlite:///{missing}", pg_url)
    assert done.returncode == 2
    assert done.stderr == f"kzconsole: FROM_URL: there is no SQLite store at {missing}\n"
    assert not missing.parent.exists()


def test_store_copy_again_hides_the_password_and_counts_only_what_it_added(tmp_path: Path, pg_url: str) -> None:
    lite = SQLiteStore(tmp_path / "node.db")
    lite.create_job(make_job("c3", status=JobStatus.SUCCESS))
    lite.record_firing(
        Firing(id=0, trigger="hourly", key="hourly:7", node="n1", started=NOW, ended=NOW + 1, status="ok")
    )
    lite.close()
    source = f"sqlite:///{tmp_path / 'node.db'}"
    # The test server trusts any password: one in the URL's user part and one in its query.
    target = pg_url.replace("postgresql://postgres@", "postgresql://postgres:S3CRET@", 1) + "&password=S3CRET"
    first = kz(tmp_path, "store", "copy", source, target, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["firings"] == 1
    again = kz(tmp_path, "store", "copy", source, target, "--json")
    assert again.returncode == 2
    assert json.loads(again.stdout)["firings"] == 0  # said 1: the firing it did not copy again
    assert "S3CRET" not in again.stderr and "S3CRET" not in again.stdout
    assert again.stderr.startswith("kzconsole: 1 job(s) exist in postgresql://postgres:***@"), again.stderr
    assert "password=***" in again.stderr
    with PostgresStore(pg_url) as pg:
        assert [f.key for f in pg.list_firings(trigger="hourly")] == ["hourly:7"]


def test_store_copy_json_reports_a_bad_url_as_a_document(tmp_path: Path) -> None:
    # --json promises {"error": ...} on stdout for an error; a bad URL printed only the message.
    done = kz(tmp_path, "store", "copy", "--json", "mysql://x", "sqlite:///y.db")
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"].startswith("FROM_URL: unsupported store URL 'mysql://x'")
    assert done.stderr.startswith("kzconsole: FROM_URL: unsupported store URL")
