"""Where the time of one API answer goes (docs/performance.md, the REST API): each step of
``GET /v2/accounts/{A}/tasks`` (a page of 50 jobs read from the store) and of ``GET`` one job,
timed alone in this process on a store of 100,000 jobs, then the whole answer through the ASGI
application with no HTTP (what the server adds on top is the bare endpoint's cost: bench_api.py
prints the server's CPU time a request for both). Not a benchmark with a goal: a diagnostic.

    .venv/bin/python bench/api_breakdown.py [--jobs N] [--profile]
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Workspace
from seed import ACCOUNTS, seed_jobs

from kzconsole.api import keys

# The steps of an answer themselves, private names included: this times each one alone.
from kzconsole.api.app import FILE_COLUMNS, GREGORIAN_OFFSET, Api, build_app, revision
from kzconsole.config import load_settings
from kzconsole.engine import PUBLIC_JOB_KEYS, Engine, JobQuery

_DOCUMENTS = {"epoch": GREGORIAN_OFFSET, "nulls": False, "columns": FILE_COLUMNS}  # as the API asks


def best_us(fn: Callable[[], Any], *, number: int = 1000, repeat: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best * 1e6


def asgi_get(app: Any, path: str, token: str) -> Callable[[], None]:
    """One GET of ``path`` through the ASGI application, answered in this process."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"x-auth-token", token.encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    loop = asyncio.new_event_loop()
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    def call() -> None:
        loop.run_until_complete(app(scope, receive, send))
        assert status.pop() == 200

    return call


def profile(fn: Callable[[], None], number: int = 2000) -> None:
    """cProfile over ``number`` calls of ``fn``: the functions taking the most time, inclusive."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        fn()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


def main(jobs: int, *, with_profile: bool = False) -> None:
    with Workspace("kzbench-breakdown-") as ws:
        data = ws.data_dir("api")
        seed_jobs(data, jobs)
        with sqlite3.connect(data / "kzconsole.db", isolation_level=None) as conn:
            conn.execute("UPDATE jobs SET output_offset = 100 + total_count * 40")  # as bench_api.py
        conn.close()
        config = ws.root / "kz.toml"
        config.write_text(
            f"[plugins]\npaths = [{json.dumps(str(ws.plugins))}]\nreload = false\n[triggers]\nenabled = false\n"
        )
        settings = load_settings(config, data_dir=data)
        engine = Engine(settings)
        api = Api(engine, settings)
        try:
            store = engine.store
            _key, secret = keys.add_key(store, ACCOUNTS[0], name=None, superadmin=True, now=time.time())
            issued = keys.issue_token(store, secret, ttl_s=3600)
            assert issued is not None
            token = issued[1]
            account = ACCOUNTS[0]
            query = JobQuery(account_id=account, limit=51)
            with engine.iter_job_documents(query, **_DOCUMENTS) as found:
                rows = list(found)[:50]
            body = ("[" + ",".join(api.listed(rows)) + "]").encode()
            last = SimpleNamespace(id=rows[-1][1], created=rows[-1][2])
            job = engine.get_job(rows[25][1])

            def read_page() -> None:
                with engine.iter_job_documents(JobQuery(account_id=account, limit=51), **_DOCUMENTS) as page:
                    list(page)

            call = SimpleNamespace(request_id="0" * 32, token=token)
            tokens = api.tokens
            assert tokens is not None  # a SQLite store: tokens verified are kept
            page_steps = [
                (
                    "token check (kept verified: the feed's position, SHA-256, a lookup)",
                    lambda: tokens.key(token, store.changes(None)[0]),
                ),
                ("the page's query: JobQuery, SQL, 51 jobs as JSON text + 6 columns", read_page),
                (
                    "csvs into the 50 texts, joined (Api.listed)",
                    lambda: ("[" + ",".join(api.listed(rows)) + "]").encode(),
                ),
                ("revision (SHA-256 of the JSON)", lambda: revision(body)),
                ("next_start_key (JobQuery.page_token)", lambda: query.page_token(last)),
                (
                    "envelope and Response",
                    lambda: api.envelope.success_json(call, body, b"0" * 32, extra={"page_size": 50}),
                ),
            ]
            job_steps = [
                (
                    "token check (kept verified: the feed's position, SHA-256, a lookup)",
                    lambda: tokens.key(token, store.changes(None)[0]),
                ),
                ("Engine.get_job (one store read, a JobRecord)", lambda: engine.get_job(job.id)),
                ("the job as JSON (task, csvs)", lambda: api.job_view(job)),
                (
                    "envelope (orjson, SHA-256) and Response",
                    lambda: api.envelope.success(call, {"_read_only": api.job_view(job)}),
                ),
            ]
            # The page's SQL alone, as SQLite runs it and hands its values to Python (the SQLite
            # store's own connection: a diagnostic, not the Store interface), beside the same walk
            # giving the columns as Python values (what the API read before the store built the
            # JSON), and one column (what walking the index and finding the rows costs).
            conn = store.connection()  # type: ignore[attr-defined]
            traced: list[str] = []
            conn.set_trace_callback(traced.append)
            read_page()
            conn.set_trace_callback(None)
            sql = traced[-1]
            head, tail = sql.split(" FROM jobs", 1)
            nineteen = ", ".join((*PUBLIC_JOB_KEYS, "output_offset", "output_path"))
            print("the page's SQL alone (sqlite3 execute + fetchall):")
            for name, text in (
                ("the store's statement (51 JSON texts and 6 columns)", sql),
                ("the same walk, the 19 columns as Python values", f"SELECT {nineteen} FROM jobs{tail}"),
                ("the same walk, 1 column (walking the index, finding the rows)", f"SELECT file_name FROM jobs{tail}"),
            ):
                print(f"  {best_us(lambda text=text: conn.execute(text).fetchall()):7.1f} us  {name}")
            assert head.startswith("SELECT ")

            async def raw(scope: Any, receive: Any, send: Any) -> None:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"{}"})

            harness = best_us(asgi_get(raw, "/", token), number=2000)
            app = build_app(api)
            for title, steps, path in (
                ("a listing page of 50 jobs, read from the store", page_steps, f"/v2/accounts/{account}/tasks"),
                ("GET one job", job_steps, f"/v2/accounts/{account}/tasks/{job.id}"),
            ):
                print(f"{title} ({jobs:,} jobs in the store):")
                total = 0.0
                for name, fn in steps:
                    us = best_us(fn)
                    total += us
                    print(f"  {us:7.1f} us  {name}")
                print(f"  {total:7.1f} us  sum of the steps")
                if path.endswith("/tasks"):
                    api.listings = None  # the answer read from the store each time, as the steps are
                answer = asgi_get(app, path, token)
                whole = best_us(answer, number=500)
                print(
                    f"  {whole:7.1f} us  the whole answer through the ASGI app, no HTTP (of which"
                    f" {harness:.1f} us this script's event loop turn, the rest routing, CORS, request id,"
                    " Accept rule, Starlette's Request and Response)"
                )
                if with_profile:
                    profile(answer)
        finally:
            api.close()
            engine.close()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true", help="cProfile each whole answer too")
    args = ap.parse_args()
    main(args.jobs, with_profile=args.profile)
