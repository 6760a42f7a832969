"""Every row of contract 8.4 and 8.5, in both path forms, through a real server and client."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from tests.api.conftest import FINISHED, GREGORIAN_OFFSET, Server, wait_for

CSV = b"col1,col2\na,b\nc,d\n"
JSON = "application/json"


def new_account() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def account() -> str:
    return new_account()


@pytest.fixture
def client(shared_server: Server, account: str) -> httpx.Client:
    with shared_server.login(account) as client:
        yield client


def base(form: str, account: str) -> str:
    return f"/v2/accounts/{account}" if form == "account" else "/v2"


FORMS = ["account", "bare"]


def create(
    client: httpx.Client,
    prefix: str,
    body: bytes | None = CSV,
    *,
    category: str = "skel",
    action: str = "id2",
    content_type: str = "text/csv",
    **params: str,
) -> httpx.Response:
    headers = {"Content-Type": content_type} if body is not None else {}
    return client.put(
        f"{prefix}/tasks", params={"category": category, "action": action, **params}, content=body, headers=headers
    )


def created(client: httpx.Client, prefix: str, *args, **kwargs) -> dict:
    answer = create(client, prefix, *args, **kwargs)
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]["_read_only"]


def error(answer: httpx.Response, status: int, message: str):
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == JSON
    body = answer.json()
    assert body["status"] == "error"
    assert body["error"] == str(status)
    assert body["message"] == message
    assert "revision" not in body
    return body["data"]


# ------------------------------------------------------------------------------ envelope, help


def test_help_open_to_all_and_narrowed(shared_server: Server) -> None:
    with shared_server.client() as anonymous:
        whole = anonymous.get("/v2/tasks")
        assert whole.status_code == 200
        assert whole.headers["content-type"] == JSON
        body = whole.json()
        assert body["status"] == "success"
        assert body["data"]["tasks"]["skel"]["id2"] == {
            "description": "The identity task",
            "doc": "Takes 2 columns and returns them.",
            "expected_content": "text/csv",
            "mandatory": ["col1", "col2"],
            "optional": [],
        }
        assert "apitest" in body["data"]["tasks"]
        category = anonymous.get("/v2/tasks", params={"category": "skel"}).json()["data"]["tasks"]
        assert set(category) == {"skel"} and "count" in category["skel"]
        one = anonymous.get("/v2/tasks", params={"category": "skel", "action": "count"}).json()
        assert list(one["data"]["tasks"]["skel"]) == ["count"]
        assert one["data"]["tasks"]["skel"]["count"]["expected_content"] is None
        for params in ({"category": "nope"}, {"category": "skel", "action": "nope"}, {"action": "id2"}):
            data = error(anonymous.get("/v2/tasks", params=params), 404, "bad identifier")
            assert data == ["unknown category or action"]


def test_envelope_keys(client: httpx.Client, account: str) -> None:
    answer = client.get(f"/v2/accounts/{account}/tasks", headers={"X-Request-ID": "req-42"})
    body = answer.json()
    assert set(body) == {
        "status",
        "data",
        "revision",
        "request_id",
        "auth_token",
        "node",
        "timestamp",
        "version",
        "page_size",
    }
    assert body["request_id"] == "req-42" == answer.headers["x-request-id"]
    assert body["auth_token"] == client.headers["X-Auth-Token"]
    assert body["page_size"] == 0 and body["data"] == []
    assert len(body["timestamp"]) == 20 and body["timestamp"].endswith("Z")
    # No request id given: one is made.
    assert client.get(f"/v2/accounts/{account}/tasks").json()["request_id"]


# ------------------------------------------------------------------------------ create


@pytest.mark.parametrize("form", FORMS)
def test_create_csv(client: httpx.Client, account: str, form: str) -> None:
    answer = create(client, base(form, account), file_name="my.csv")
    assert answer.status_code == 201
    assert answer.headers["content-type"] == JSON
    task = answer.json()["data"]["_read_only"]
    assert task["account_id"] == account and task["auth_account_id"] == account
    assert (task["category"], task["action"], task["status"]) == ("skel", "id2", "pending")
    assert task["total_count"] == 2 and task["file_name"] == "my.csv"
    assert task["created"] > GREGORIAN_OFFSET + 1_700_000_000
    assert "start_timestamp" not in task and "node" not in task  # nulls left out
    for content_type in ("text/comma-separated-values", "application/octet-stream", "text/csv; charset=utf-8"):
        assert create(client, base(form, account), content_type=content_type).status_code == 201


@pytest.mark.parametrize("form", FORMS)
def test_create_json_and_noinput(client: httpx.Client, account: str, form: str) -> None:
    prefix = base(form, account)
    doc = {"data": {"records": [{"col1": "a", "col2": "b"}, {"col1": "c", "col2": 2}], "file_name": "x.json"}}
    task = created(client, prefix, json.dumps(doc).encode(), content_type=JSON)
    assert task["total_count"] == 2 and task["file_name"] == "x.json"
    stored = client.get(f"{prefix}/tasks/{task['id']}/input")
    assert stored.text == "col1,col2\na,b\nc,2\n"
    bare_array = created(client, prefix, b'[{"col1": "a", "col2": "b"}]', content_type="application/x-json")
    assert bare_array["total_count"] == 1
    noinput = created(client, prefix, None, action="count")
    assert "total_count" not in noinput and noinput["status"] == "pending"


@pytest.mark.parametrize("form", FORMS)
def test_create_errors(client: httpx.Client, account: str, form: str) -> None:
    prefix = base(form, account)
    for missing in ("category", "action"):
        params = {"category": "skel", "action": "id2"}
        del params[missing]
        answer = client.put(f"{prefix}/tasks", params=params, content=CSV, headers={"Content-Type": "text/csv"})
        data = error(answer, 400, "validation error")
        assert list(data) == [missing] and "message" in data[missing]["required"]
    assert error(create(client, prefix, category="nope"), 404, "bad identifier") == ["unknown_category_action"]
    assert error(create(client, prefix, action="nope"), 404, "bad identifier") == ["unknown_category_action"]
    data = error(create(client, prefix, b"col1\na\n"), 400, "bad request")
    assert data == {"missing_mandatory_fields": ["col2"]}
    data = error(create(client, prefix, b"col1,col2\na,b\n,d\ne,f\ng,\n"), 400, "bad request")
    assert data == {"missing_mandatory_values": [",d", "g,"]}
    records = {"data": {"records": [{"col1": "a", "col2": None}, {"col1": "b", "col2": "c"}]}}
    data = error(create(client, prefix, json.dumps(records).encode(), content_type=JSON), 400, "bad request")
    assert data == {"missing_mandatory_values": ["a,"]}
    data = error(create(client, prefix, None), 400, "bad request")
    assert data == {"expected_content": "text/csv", "missing_mandatory_fields": ["col1", "col2"]}
    data = error(create(client, prefix, CSV, action="count"), 400, "bad request")
    assert data == {"expected_content": "none"}
    data = error(create(client, prefix, b'col1,col2\n"a,b\n'), 400, "validation error")
    assert data == {"csv": {"format": {"message": data["csv"]["format"]["message"], "line": 2}}}
    data = error(create(client, prefix, b"col1,col2\na,b\nc\n"), 400, "validation error")
    assert data["csv"]["format"]["line"] == 3
    data = error(create(client, prefix, b"{nope", content_type=JSON), 400, "validation error")
    assert data["csv"]["format"]["message"].startswith("invalid JSON")
    data = error(
        create(client, prefix, CSV, content_type="application/x-www-form-urlencoded"), 415, "unsupported media type"
    )
    assert "text/csv" in data["accepted"]
    # A rejected job stores nothing.
    listing = client.get(f"/v2/accounts/{account}/tasks").json()
    assert listing["data"] == []


# ------------------------------------------------------------------------------ the job


@pytest.mark.parametrize("form", FORMS)
def test_flow_of_the_original_api_tests(shared_server: Server, form: str) -> None:
    """pqc_cb_tasks: create with a CSV as superadmin, start, poll until success, download every
    file in csvs, delete."""
    account = new_account()
    with shared_server.login(new_account(), superadmin=True) as admin:
        prefix = base("account", account) if form == "account" else "/v2"
        task = created(admin, prefix, b"col1,col2\na,b\nc,d\ne,f\n")
        owner = account if form == "account" else task["account_id"]
        prefix = base("account", owner)
        started = admin.patch(f"{prefix}/tasks/{task['id']}", content=b"ignored")
        assert started.status_code == 200
        assert started.json()["data"]["_read_only"]["id"] == task["id"]
        done = wait_for(admin, f"{prefix}/tasks/{task['id']}", lambda t: t["status"] in FINISHED)
        assert done["status"] == "success"
        assert (done["total_count"], done["success_count"], done["failure_count"]) == (3, 3, 0)
        assert done["start_timestamp"] >= done["created"] > GREGORIAN_OFFSET and done["node"]
        assert done["csvs"] == ["in.csv", "out.csv"]
        files = {}
        for name in done["csvs"]:
            answer = admin.get(
                f"{prefix}/tasks/{task['id']}", params={"csv_name": name}, headers={"Accept": "text/csv"}
            )
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "text/csv"
            suffix = name.replace(".", "_").replace("_csv", ".csv")
            assert answer.headers["content-disposition"] == f'attachment; filename="skel_id2_{task["id"]}_{suffix}"'
            files[name] = answer.text
        assert files == {"in.csv": "col1,col2\na,b\nc,d\ne,f\n", "out.csv": "Col1,Col2,error\na,b,\nc,d,\ne,f,\n"}
        removed = admin.delete(f"{prefix}/tasks/{task['id']}")
        assert removed.status_code == 200
        assert removed.json()["data"]["_read_only"]["status"] == "success"
        assert error(admin.get(f"{prefix}/tasks/{task['id']}"), 404, "bad identifier") == [task["id"]]


@pytest.mark.parametrize("form", FORMS)
def test_downloads(client: httpx.Client, account: str, form: str) -> None:
    prefix = base(form, account)
    task = created(client, prefix)
    path = f"{prefix}/tasks/{task['id']}"
    # Pending: an input, no output yet.
    data = error(client.get(f"{path}/output"), 404, "bad_identifier")
    assert data == {"cause": task["id"], "message": "bad identifier"}
    assert error(client.get(path, params={"accept": "csv"}), 404, "bad_identifier")["cause"] == task["id"]
    assert client.get(f"{path}/input").content == CSV
    assert client.get(path, params={"accept": "csv", "csv_name": "in.csv"}).content == CSV
    assert client.get(path, params={"csv_name": "in.csv"}, headers={"Accept": "text/csv"}).content == CSV
    # Kazoo's order: the first media type known decides.
    assert client.get(path, headers={"Accept": "application/json, text/csv"}).headers["content-type"] == JSON
    assert (
        client.get(
            path, params={"csv_name": "in.csv"}, headers={"Accept": "text/html, application/octet-stream"}
        ).content
        == CSV
    )
    assert (
        client.get(
            path, params={"csv_name": "in.csv", "accept": "application/json"}, headers={"Accept": "text/csv"}
        ).headers["content-type"]
        == JSON
    )
    # A name is never a path.
    for name in ("../../kzconsole.db", "/etc/passwd", "..", "in.csv/../in.csv"):
        assert client.get(path, params={"csv_name": name, "accept": "csv"}).status_code == 404
    assert client.patch(path).status_code == 200
    done = wait_for(client, path, lambda t: t["status"] in FINISHED)
    assert done["csvs"] == ["in.csv", "out.csv"]
    assert client.get(f"{path}/output").text == "Col1,Col2,error\na,b,\nc,d,\n"
    assert client.get(path, params={"accept": "csv"}).text == "Col1,Col2,error\na,b,\nc,d,\n"
    # No input (a noinput job): 404.
    noinput = created(client, prefix, None, action="count")
    assert error(client.get(f"{prefix}/tasks/{noinput['id']}/input"), 404, "bad_identifier")


@pytest.mark.parametrize("form", FORMS)
def test_start_stop_delete_rules(client: httpx.Client, account: str, form: str) -> None:
    prefix = base(form, account)
    # Stop a pending job: stopped at once; then start: already finished.
    pending = created(client, prefix)
    path = f"{prefix}/tasks/{pending['id']}"
    stopped = client.patch(f"{path}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["data"]["_read_only"]["status"] == "stopped"
    data = error(client.patch(path), 404, "bad_identifier")
    assert data == {"reason": "task already started", "cause": pending["id"], "message": "bad identifier"}
    data = error(client.patch(f"{path}/stop"), 404, "bad_identifier")
    assert data == {"reason": "task is not running", "cause": pending["id"], "message": "bad identifier"}
    # An executing job: delete refused, stop answers once it is stopped.
    held = created(client, prefix, b"n\n1\nhold\n3\n", category="apitest", action="hold")
    path = f"{prefix}/tasks/{held['id']}"
    client.patch(path)
    wait_for(client, path, lambda t: t["status"] == "executing" and t.get("success_count") == 1)
    data = error(client.delete(path), 404, "bad_identifier")
    assert data == {"cause": held["id"], "message": "bad identifier"}
    assert error(client.patch(path), 404, "bad_identifier")["reason"] == "task already started"
    answer = client.patch(f"{path}/stop")
    assert answer.status_code == 200
    task = answer.json()["data"]["_read_only"]
    assert task["status"] == "stopped" and task["end_timestamp"] >= task["start_timestamp"]
    assert task["success_count"] == 2  # the held row ended with the stop
    assert client.get(f"{path}/output").text == "n,error\n1,\nhold,\n"
    assert client.delete(path).status_code == 200
    assert error(client.delete(path), 404, "bad identifier") == [held["id"]]


@pytest.mark.parametrize("form", FORMS)
def test_unknown_job_and_405(client: httpx.Client, account: str, form: str) -> None:
    prefix = base(form, account)
    missing = uuid.uuid4().hex
    for method, suffix in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("PATCH", "/stop"),
        ("GET", "/input"),
        ("GET", "/output"),
    ):
        answer = client.request(method, f"{prefix}/tasks/{missing}{suffix}")
        assert error(answer, 404, "bad identifier") == [missing]
    assert error(client.get(f"{prefix}/tasks/not-an-id"), 404, "bad identifier") == ["not-an-id"]
    task = created(client, prefix)
    for method, suffix, allowed in (
        ("POST", "", ["DELETE", "GET", "PATCH"]),
        ("PUT", "", ["DELETE", "GET", "PATCH"]),
        ("GET", "/stop", ["PATCH"]),
        ("DELETE", "/input", ["GET"]),
        ("PATCH", "/output", ["GET"]),
    ):
        answer = client.request(method, f"{prefix}/tasks/{task['id']}{suffix}")
        assert error(answer, 405, "method not allowed") == {"allowed": allowed}
        verbs = sorted([*allowed, "HEAD"]) if "GET" in allowed else allowed  # HEAD is GET without content
        assert answer.headers["allow"] == ", ".join([*verbs, "OPTIONS"])
    allowed = ["GET", "PUT"]
    assert error(client.delete(f"{prefix}/tasks"), 405, "method not allowed") == {"allowed": allowed}
    assert error(client.get("/v2/api_auth"), 405, "method not allowed") == {"allowed": ["PUT"]}
    data = error(client.get("/v2/nothing/here"), 404, "not found")
    assert "/v2/nothing/here" in data["message"]


# ------------------------------------------------------------------------------ listing


def test_paging_250_jobs(shared_server: Server, account: str) -> None:
    with shared_server.login(account) as client:
        made = [created(client, base("account", account), None, action="count")["id"] for _ in range(250)]
        seen: list[str] = []
        sizes = []
        params: dict[str, str] = {"page_size": "100"}
        while True:
            body = client.get(f"/v2/accounts/{account}/tasks", params=params).json()
            sizes.append(body["page_size"])
            assert body.get("start_key") == params.get("start_key")
            seen += [task["id"] for task in body["data"]]
            assert all(task["account_id"] == account for task in body["data"])
            if "next_start_key" not in body:
                break
            assert body["next_start_key"] != params.get("start_key")
            params = {"page_size": "100", "start_key": body["next_start_key"]}
        assert sizes == [100, 100, 50]
        assert seen == list(reversed(made))  # newest first, each once
        default = client.get(f"/v2/accounts/{account}/tasks").json()
        assert default["page_size"] == 50 and "next_start_key" in default  # api.page_size
        everything = client.get(f"/v2/accounts/{account}/tasks", params={"paginate": "false"})
        assert everything.headers["content-type"] == JSON
        body = everything.json()
        assert body["page_size"] == 250 and [t["id"] for t in body["data"]] == seen
        assert "next_start_key" not in body
        too_deep = base64.urlsafe_b64encode(b"[" * 1400).decode()  # nested past the JSON parser's depth
        for bad in (
            {"start_key": "garbage!"},
            {"start_key": "bzE6eA"},
            {"start_key": too_deep},
            {"page_size": "0"},
            {"page_size": "ten"},
        ):
            data = error(client.get(f"/v2/accounts/{account}/tasks", params=bad), 400, "validation error")
            assert list(data) == [next(iter(bad))]


def _pages(client: httpx.Client, account: str, page_size: int, between=None) -> list[list[str]]:
    """Every page of the account's listing, following next_start_key; ``between(n)`` runs after
    the n-th page is read."""
    pages: list[list[str]] = []
    params: dict[str, str] = {"page_size": str(page_size)}
    while True:
        body = client.get(f"/v2/accounts/{account}/tasks", params=params).json()
        pages.append([task["id"] for task in body["data"]])
        if between is not None:
            between(len(pages))
        if "next_start_key" not in body:
            return pages
        params = {"page_size": str(page_size), "start_key": body["next_start_key"]}


def test_paging_is_stable_while_jobs_are_created_and_removed(shared_server: Server, account: str) -> None:
    """next_start_key is a position in the listing, not an offset: jobs created or removed between
    two pages put no job on two pages and leave none off (with an offset, each job created before
    the next page would repeat one, each removed would skip one)."""
    prefix = base("account", account)
    with shared_server.login(account) as client:
        made = [created(client, prefix, None, action="count")["id"] for _ in range(120)]
        newest_first = list(reversed(made))
        added: list[str] = []
        removed: list[str] = []

        def between(n: int) -> None:
            if n == 1:  # after the first page: 7 new jobs, 3 of the first page's removed
                added.extend(created(client, prefix, None, action="count")["id"] for _ in range(7))
                for job_id in newest_first[10:13]:
                    assert client.delete(f"{prefix}/tasks/{job_id}").status_code == 200
                    removed.append(job_id)
            if n == 2:  # after the second: 3 of the third page's removed, 2 more created
                for job_id in newest_first[100:103]:
                    assert client.delete(f"{prefix}/tasks/{job_id}").status_code == 200
                    removed.append(job_id)
                added.extend(created(client, prefix, None, action="count")["id"] for _ in range(2))

        pages = _pages(client, account, 50, between)
        seen = [job_id for page in pages for job_id in page]
        assert len(seen) == len(set(seen))  # none repeated
        assert not set(added) & set(seen[50:])  # jobs newer than the first page never show later
        # Every job that existed throughout is there, in order; the removed ones of later pages not.
        assert seen == [j for j in newest_first if j not in removed[3:]]
        assert [len(page) for page in pages] == [50, 50, 17]
        # A fresh listing starts with the new jobs and holds every job once.
        again = [job_id for page in _pages(client, account, 50) for job_id in page]
        assert again == [j for j in reversed([*made, *added]) if j not in removed]


def test_listing_rows_are_the_jobs_as_get_shows_them(shared_server: Server, account: str) -> None:
    """A listing row is the job as GET shows it, csvs included (the listing tells csvs from the
    records: in.csv with input rows, out.csv once output is stored)."""
    prefix = base("account", account)
    with shared_server.login(account) as client:
        pending_csv = created(client, prefix)["id"]
        pending_noinput = created(client, prefix, None, action="count")["id"]
        done_csv = created(client, prefix)["id"]
        done_noinput = created(client, prefix, None, action="count")["id"]
        held = created(client, prefix, b"n\n1\nhold\n3\n", category="apitest", action="hold")["id"]
        for job_id in (done_csv, done_noinput):
            assert client.patch(f"{prefix}/tasks/{job_id}").status_code == 200
            wait_for(client, f"{prefix}/tasks/{job_id}", lambda t: t["status"] in FINISHED)
        assert client.patch(f"{prefix}/tasks/{held}").status_code == 200
        wait_for(client, f"{prefix}/tasks/{held}", lambda t: t["status"] == "executing" and t.get("success_count") == 1)
        try:
            listing = client.get(f"/v2/accounts/{account}/tasks").json()["data"]
            one_by_one = {
                job_id: client.get(f"{prefix}/tasks/{job_id}").json()["data"]["_read_only"]
                for job_id in (pending_csv, pending_noinput, done_csv, done_noinput, held)
            }
            rows = {row["id"]: row for row in listing}
            for job_id, job in one_by_one.items():
                assert rows[job_id] == job
            assert rows[pending_csv]["csvs"] == ["in.csv"]
            assert "csvs" not in rows[pending_noinput]
            assert rows[done_csv]["csvs"] == ["in.csv", "out.csv"]
            assert rows[done_noinput]["csvs"] == ["out.csv"]
            assert rows[held]["csvs"] == ["in.csv", "out.csv"]  # a running job's output so far
            for job_id, row in rows.items():
                for name in row.get("csvs", []):
                    answer = client.get(f"{prefix}/tasks/{job_id}", params={"csv_name": name, "accept": "csv"})
                    assert answer.status_code == 200, (job_id, name)
        finally:
            client.patch(f"{prefix}/tasks/{held}/stop")
