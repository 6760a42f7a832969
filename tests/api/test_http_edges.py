"""What HTTP clients do besides the verbs of contract 8.4, through a real server and client: HEAD,
a path written with a trailing slash, the whole listing (``paginate=false``)."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest

from tests.api.conftest import FINISHED, Server, wait_for

CSV = b"col1,col2\na,b\nc,d\n"
JSON = "application/json"


@pytest.fixture
def account() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def client(shared_server: Server, account: str) -> httpx.Client:
    with shared_server.login(account) as client:
        yield client


def _finished_job(client: httpx.Client, account: str) -> dict:
    answer = client.put(
        f"/v2/accounts/{account}/tasks",
        params={"category": "skel", "action": "id2"},
        content=CSV,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 201, answer.text
    job = answer.json()["data"]["_read_only"]
    assert client.patch(f"/v2/accounts/{account}/tasks/{job['id']}").status_code == 200
    return wait_for(client, f"/v2/accounts/{account}/tasks/{job['id']}", lambda t: t["status"] in FINISHED)


def test_head_is_answered_as_get_without_a_body(client: httpx.Client, account: str) -> None:
    # RFC 9110 9.3.2: HEAD is GET without the content (`curl -I` for a download's size and name).
    job = _finished_job(client, account)
    for path in (
        "/v2/tasks",
        f"/v2/accounts/{account}/tasks",
        f"/v2/accounts/{account}/tasks/{job['id']}",
        f"/v2/tasks/{job['id']}/input",
        f"/v2/accounts/{account}/tasks/{job['id']}/output",
    ):
        got = client.get(path)
        head = client.head(path)
        assert got.status_code == head.status_code == 200, (path, head.status_code, head.text)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
    output = f"/v2/tasks/{job['id']}/output"
    got, head = client.get(output), client.head(output)
    assert head.headers["content-type"] == "text/csv"
    assert head.headers["content-length"] == str(len(got.content)) == got.headers["content-length"]
    assert head.headers["content-disposition"] == got.headers["content-disposition"]
    download = client.head(f"/v2/tasks/{job['id']}", params={"accept": "csv", "csv_name": "in.csv"})
    assert download.status_code == 200 and download.headers["content-length"] == str(len(CSV))
    # The checks of GET hold for HEAD: a token, the account, the job.
    with httpx.Client(base_url=client.base_url) as anonymous:
        assert anonymous.head(f"/v2/tasks/{job['id']}").status_code == 401
    assert client.head(f"/v2/tasks/{uuid.uuid4().hex}").status_code == 404
    # Where GET is not allowed, neither is HEAD; where it is, Allow says HEAD too (data.allowed
    # stays Kazoo's list of verbs).
    refused = client.head("/v2/api_auth")
    assert refused.status_code == 405 and refused.headers["allow"] == "PUT, OPTIONS"
    refused = client.post(f"/v2/tasks/{job['id']}")
    assert refused.headers["allow"] == "DELETE, GET, HEAD, PATCH, OPTIONS"
    assert refused.json()["data"] == {"allowed": ["DELETE", "GET", "PATCH"]}


def test_a_trailing_slash_is_the_same_path(client: httpx.Client, account: str) -> None:
    # Crossbar ignores a trailing slash; a redirect (307, no envelope) is what a script that
    # builds its URLs with one would trip on, a PUT's body included.
    made = client.put(
        f"/v2/accounts/{account}/tasks/",
        params={"category": "skel", "action": "id2"},
        content=CSV,
        headers={"Content-Type": "text/csv"},
    )
    assert made.status_code == 201, (made.status_code, made.headers, made.text)
    job = made.json()["data"]["_read_only"]
    for path in (
        "/v2/tasks/",
        f"/v2/accounts/{account}/tasks/",
        f"/v2/tasks/{job['id']}/",
        f"/v2/accounts/{account}/tasks/{job['id']}/input/",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.headers)
    assert client.get(f"/v2/tasks/{job['id']}/").json()["data"]["_read_only"]["id"] == job["id"]
    missing = client.get("/v2/nothing/")
    assert missing.status_code == 404 and missing.headers["content-type"] == JSON


def test_the_whole_listing_has_a_revision(client: httpx.Client, account: str) -> None:
    # Contract 8.3: a success envelope carries revision; paginate=false streams its data but is
    # one answer like any other, with the revision a page of the same jobs has.
    for _ in range(3):
        assert (
            client.put(f"/v2/accounts/{account}/tasks", params={"category": "skel", "action": "count"}).status_code
            == 201
        )
    whole = client.get(f"/v2/accounts/{account}/tasks", params={"paginate": "false"}).json()
    page = client.get(f"/v2/accounts/{account}/tasks", params={"page_size": "10"}).json()
    assert whole["data"] == page["data"] and whole["page_size"] == 3
    assert whole["revision"] == page["revision"]
    assert list(whole)[:3] == ["status", "data", "revision"]
    empty = client.get(f"/v2/accounts/{uuid.uuid4().hex}/tasks", params={"paginate": "false"})
    assert empty.status_code == 403  # another account: refused before anything is streamed


def test_a_client_that_goes_away_mid_upload_is_not_a_server_error(shared_server: Server, account: str) -> None:
    # A client that hangs up while sending its body (a script killed, a dropped link) is an
    # ordinary event: noted on one line, never an ERROR with a traceback as if the server had a bug.
    token = shared_server.token(shared_server.add_key(account)["key"])
    url = httpx.URL(shared_server.url)
    path = f"/v2/accounts/{account}/tasks"
    head = (
        f"PUT {path}?category=skel&action=id2 HTTP/1.1\r\nHost: {url.host}\r\nX-Auth-Token: {token}\r\n"
        "Content-Type: text/csv\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port)) as raw:
        raw.sendall(head.encode() + b"col1,col2\na,b\n")
    deadline = time.monotonic() + 60  # only bounds a failing test
    while not any(path in line for line in shared_server.stderr):
        assert time.monotonic() < deadline, "".join(shared_server.stderr)
        time.sleep(0.01)
    logged = [line for line in shared_server.stderr if path in line]
    assert all(" ERROR " not in line for line in logged), logged
    assert not any("ClientDisconnect" in line for line in shared_server.stderr)
    with shared_server.client(token) as client:
        assert client.get(path).json()["data"] == []  # nothing was stored


@pytest.mark.parametrize("size", ["²", "①", "１０", "٣", " 5", "5 ", "+5", "1_0"])
def test_page_size_is_ascii_digits(client: httpx.Client, account: str, size: str) -> None:
    # str.isdigit() holds for "²" (int() then raised: a 500) and int() reads "１０" and "1_0":
    # page_size is written in ASCII digits, anything else is the 400 of a bad page_size.
    answer = client.get(f"/v2/accounts/{account}/tasks", params={"page_size": size})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == JSON
    assert answer.json()["message"] == "validation error"
    assert list(answer.json()["data"]) == ["page_size"]


def test_a_preflight_allows_the_headers_kazoo_clients_send(shared_server: Server) -> None:
    # Monster UI adds X-Kazoo-Cluster-ID to every request when kazooClusterId is configured, and
    # jQuery-era clients X-Requested-With, Cache-Control, If-Modified-Since: a browser refuses the
    # call when its preflight does not list each. These are Crossbar's allowed headers.
    crossbar = [
        "Content-Type",
        "Depth",
        "User-Agent",
        "X-HTTP-Method-Override",
        "X-File-Size",
        "X-Requested-With",
        "If-Modified-Since",
        "X-File-Name",
        "Cache-Control",
        "X-Auth-Token",
        "X-Kazoo-Cluster-ID",
        "If-Match",
        "Authorization",
    ]
    with shared_server.client() as client:
        preflight = client.options(
            "/v2/accounts/0123456789abcdef0123456789abcdef/tasks",
            headers={
                "Origin": "https://monster.example.com",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": ", ".join(h.lower() for h in crossbar),
            },
        )
    assert preflight.status_code == 200
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {h.lower() for h in crossbar} <= allowed, sorted({h.lower() for h in crossbar} - allowed)
    assert {"x-request-id", "content-type", "x-auth-token"} <= allowed  # contract 8.3


@pytest.mark.parametrize(
    "body",
    [
        b'[{"col1": "a", "col2": "b"}, {"col1": "\\ud800", "col2": "b"}]',
        b'[{"col1": "a", "col2": "b", "\\udfff": "c"}]',
        b'[{"col1": "a", "col2": "b"}, {"col1": "c", "col2": "d", "\\udfff": "e"}]',  # a key record 1 lacks
    ],
)
def test_json_text_that_is_not_unicode_is_invalid_input(client: httpx.Client, account: str, body: bytes) -> None:
    # "\ud800" is valid JSON syntax but no character (a lone surrogate): it cannot be stored as
    # UTF-8. It was a 500 with a UnicodeEncodeError traceback; it is input that is not valid
    # (contract 3.2, 8.5), named by its record number.
    answer = client.put(
        f"/v2/accounts/{account}/tasks",
        params={"category": "skel", "action": "id2"},
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == "validation error"
    problem = answer.json()["data"]["csv"]["format"]
    assert problem["line"] == body.count(b"col1")
    assert "surrogate" in problem["message"]
    assert client.get(f"/v2/accounts/{account}/tasks").json()["data"] == []


@pytest.mark.parametrize("key", ["\\ud800", "\\udcff", "\\u00e9", "\\u0000"])
def test_a_key_that_is_no_key_is_a_wrong_key(shared_server: Server, key: str) -> None:
    # {"api_key": "\ud800"} (a lone surrogate, valid JSON) was a 500: hashing it raised. Any
    # string that is not a key is the 401 of a wrong key (contract 8.2).
    with shared_server.client() as client:
        answer = client.put(
            "/v2/api_auth",
            content=b'{"data": {"api_key": "%s"}}' % key.encode(),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 401, answer.text
    assert answer.json()["message"] == "invalid_credentials"


def test_a_body_without_content_type_is_json_when_it_looks_like_json(client: httpx.Client, account: str) -> None:
    # Crossbar takes a body without Content-Type as JSON, so Kazoo scripts send JSON without one
    # (Python's requests.put(url, data=json.dumps(...)) does); it was read as CSV here (a 400
    # "no data rows", or "expected_content": "none" for {"data": {}} to a task without input).
    # A body starting with { or [ is JSON; anything else is still CSV.
    path = f"/v2/accounts/{account}/tasks"
    envelope = b'{"data": {"records": [{"col1": "a", "col2": "b"}], "file_name": "x.json"}}'
    for body in (envelope, b'\xef\xbb\xbf\r\n [{"col1": "a", "col2": "b"}]'):
        answer = client.put(path, params={"category": "skel", "action": "id2"}, content=body)
        assert answer.status_code == 201, answer.text
        job = answer.json()["data"]["_read_only"]
        assert job["total_count"] == 1
        assert client.get(f"{path}/{job['id']}/input").content == b"col1,col2\na,b\n"
    assert answer.request.headers.get("content-type") is None
    noinput = client.put(path, params={"category": "skel", "action": "count"}, content=b'{"data": {}}')
    assert noinput.status_code == 201, noinput.text
    csv = client.put(path, params={"category": "skel", "action": "id2"}, content=CSV)
    assert csv.status_code == 201 and csv.json()["data"]["_read_only"]["total_count"] == 2


def test_the_json_example_of_kazoo_tasks_md_works(client: httpx.Client, account: str) -> None:
    # Kazoo's tasks.md creates a job from JSON with `curl -X PUT -d '{"data": {"records": ...}}'`:
    # no Content-Type, so curl sends application/x-www-form-urlencoded, which Crossbar reads as
    # JSON when it is not a form. It was a 415 here (contract 8: scripts following tasks.md work
    # unchanged). A form body that is not JSON is still the 415 (curl's -d also drops a CSV's
    # line breaks: no guess is made).
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    path = f"/v2/accounts/{account}/tasks"
    body = b'{"data": {"records": [{"col1": "a", "col2": "b"}, {"col1": "c", "col2": "d"}], "file_name": "in.json"}}'
    answer = client.put(path, params={"category": "skel", "action": "id2"}, content=body, headers=form)
    assert answer.status_code == 201, answer.text
    job = answer.json()["data"]["_read_only"]
    assert (job["total_count"], job["file_name"]) == (2, "in.json")
    noinput = client.put(path, params={"category": "skel", "action": "count"}, content=b'{"data": {}}', headers=form)
    assert noinput.status_code == 201, noinput.text
    refused = client.put(path, params={"category": "skel", "action": "id2"}, content=CSV, headers=form)
    assert refused.status_code == 415 and refused.json()["message"] == "unsupported media type"
    assert len(client.get(path).json()["data"]) == 2


def test_post_tunnels_the_verb_given_as_crossbar_does(client: httpx.Client, account: str) -> None:
    # Crossbar: a client that cannot send PUT, PATCH or DELETE POSTs with ?verb=... (or the
    # X-HTTP-Method-Override header that CORS allows); it was a 405 here.
    path = f"/v2/accounts/{account}/tasks"
    made = client.post(path, params={"verb": "put", "category": "skel", "action": "count"})
    assert made.status_code == 201, made.text
    job = made.json()["data"]["_read_only"]["id"]
    started = client.post(f"{path}/{job}", headers={"X-HTTP-Method-Override": "PATCH"})
    assert started.status_code == 200, started.text
    wait_for(client, f"{path}/{job}", lambda t: t["status"] in FINISHED)
    assert client.post(f"{path}/{job}", params={"verb": "GET"}).json()["data"]["_read_only"]["id"] == job
    assert client.post(f"{path}/{job}", params={"verb": "delete"}).status_code == 200
    assert client.get(f"{path}/{job}").status_code == 404
    # A verb the path does not allow is its 405; only POST tunnels.
    refused = client.post(f"{path}/{job}/stop", params={"verb": "DELETE"})
    assert refused.status_code == 405 and refused.json()["data"] == {"allowed": ["PATCH"]}
    assert client.get(f"{path}/{job}", params={"verb": "DELETE"}).status_code == 404  # a GET stays a GET


def test_a_request_head_over_16_kib_is_refused_even_when_it_arrives_at_once(shared_server: Server) -> None:
    # docs/api.md: a request head is at most 16 KiB. One that arrived in a single read was
    # served whatever its size (the limit held only while a head was incomplete).
    url = httpx.URL(shared_server.url)
    for head in (
        b"GET /v2/tasks HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /v2/tasks?" + b"a=b&" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        with socket.create_connection((url.host, url.port)) as raw:
            raw.sendall(head)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = raw.recv(65536)
                assert chunk, answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"content-type: application/json\r\n" in answer.lower()
    with shared_server.client() as client:
        near = client.get("/v2/tasks", headers={"X-Big": "a" * 15_000})
    assert near.status_code == 200


def test_a_request_id_in_utf_8_is_echoed_as_sent(shared_server: Server) -> None:
    # The header's bytes were read as Latin-1 (HTTP's legacy), so "réq-1" came back in the
    # envelope as "rÃ©q-1" while the X-Request-ID header echoed the bytes sent.
    sent = "réq-1-ü".encode()
    with shared_server.client() as client:
        answer = client.get("/v2/tasks", headers={"X-Request-ID": sent})
    assert answer.status_code == 200
    assert answer.json()["request_id"] == "réq-1-ü"
    assert dict(answer.headers.raw)[b"x-request-id"] == sent
