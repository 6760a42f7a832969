"""The listing's page cache (``api.page_cache_mb``): a page is answered from memory only while
the store records no change of what it shows, so whatever another process does to a job shows on
the very next request (what drops a page and what does not: tests/api/test_listing_cache.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.conftest import ACCOUNT, Server

LISTING = f"/v2/accounts/{ACCOUNT}/tasks"


def _page(client: httpx.Client, **params: str) -> dict[str, Any]:
    answer = client.get(LISTING, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _jobs(client: httpx.Client, **params: str) -> dict[str, dict[str, Any]]:
    return {job["id"]: job for job in _page(client, **params)["data"]}


def _add(server: Server) -> str:
    out = server.cli("tasks", "add", "apitest", "hold", "--account", ACCOUNT, "--input", "-", "--json", check=None)
    assert out.returncode == 2  # no input: the mandatory column is missing (nothing stored)
    source = server.root / "in.csv"
    source.write_text("n\n1\n2\n")
    out = server.cli("tasks", "add", "apitest", "hold", "--account", ACCOUNT, "--input", str(source), "--json")
    return json.loads(out.stdout)["id"]


def test_a_page_shows_every_change_another_process_makes_at_the_next_request(make_server) -> None:
    # No engine: nothing but the command line (another process) changes the jobs.
    server = make_server(engine=False)
    with server.login() as client:
        first = _add(server)
        assert list(_jobs(client)) == [first]
        again = _page(client)  # the same page, nothing changed: answered again, the same
        assert [job["id"] for job in again["data"]] == [first]

        second = _add(server)  # created
        assert list(_jobs(client)) == [second, first]

        server.cli("tasks", "set", first, "--wait-ms", "250")  # changed
        assert _jobs(client)[first]["wait_after_row_ms"] == 250

        server.cli("tasks", "set", first, "--wait-ms", "0")  # and back
        assert _jobs(client)[first]["wait_after_row_ms"] == 0

        server.cli("tasks", "remove", first)  # removed
        assert list(_jobs(client)) == [second]

        # Each page its own entry: another page size, and the page after a start_key.
        assert list(_jobs(client, page_size="1")) == [second]
        third = _add(server)
        one = _page(client, page_size="1")
        assert [job["id"] for job in one["data"]] == [third]
        rest = _page(client, page_size="1", start_key=one["next_start_key"])
        assert [job["id"] for job in rest["data"]] == [second]


def test_a_page_with_the_cache_off_is_the_same(make_server) -> None:
    cached = make_server("cached", engine=False)
    plain = make_server("plain", engine=False, data=cached.data, api={"page_cache_mb": 0})
    _add(cached)
    key = cached.add_key()["key"]
    with cached.client(cached.token(key)) as a, plain.client(plain.token(key)) as b:
        for _ in range(2):
            one, other = _page(a), _page(b)
            assert one["data"] == other["data"]
            assert one["revision"] == other["revision"]
            assert one["page_size"] == other["page_size"] == 1
