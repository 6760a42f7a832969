"""Authentication and limits (contract 8.2, 8.4's 413): tokens, keys, accounts, bodies, clients."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import uuid

import httpx

from kzconsole.engine.store import open_store
from tests.api.conftest import ACCOUNT, OTHER, Server
from tests.api.test_endpoints import CSV, create, created, error

CREDENTIALS = {"message": "invalid credentials"}


def test_api_auth(shared_server: Server) -> None:
    key = shared_server.add_key(ACCOUNT, name="ops")
    assert set(key) == {"id", "key", "account_id", "name", "superadmin"}
    assert key["name"] == "ops" and key["superadmin"] is False and len(key["key"]) == 64
    with shared_server.client() as anonymous:
        answer = anonymous.put("/v2/api_auth", json={"data": {"api_key": key["key"]}})
        assert answer.status_code == 201 and answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["auth_token"]
        data = body["data"]
        assert data["account_id"] == ACCOUNT and data["api_key_id"] == key["id"]
        assert data["is_superadmin"] is False
        now = time.time() + 62167219200
        assert now + 3500 < data["expires"] <= now + 3601  # api.token_ttl_s, in Gregorian seconds
        wrong = anonymous.put("/v2/api_auth", json={"data": {"api_key": "0" * 64}})
        assert error(wrong, 401, "invalid_credentials") == CREDENTIALS
        assert "api_key" in error(anonymous.put("/v2/api_auth", json={"data": {}}), 400, "validation error")
        assert error(anonymous.put("/v2/api_auth", content=b"{nope"), 400, "invalid json")
        assert error(anonymous.put("/v2/api_auth", content=b"x" * 100_000), 413, "request entity too large")


def test_the_stored_key_is_a_hash(shared_server: Server) -> None:
    key = shared_server.add_key(ACCOUNT)
    listing = json.loads(shared_server.cli("api-keys", "list", "--json").stdout)
    mine = [k for k in listing if k["id"] == key["id"]]
    assert mine and "key" not in mine[0] and key["key"] not in json.dumps(listing)
    assert key["key"].encode() not in (shared_server.data / "kzconsole.db").read_bytes()
    text = shared_server.cli("api-keys", "list").stdout.decode()
    assert key["id"] in text and key["key"] not in text


def test_no_bad_expired_or_removed_tokens(shared_server: Server) -> None:
    account = uuid.uuid4().hex
    key = shared_server.add_key(account)
    token = shared_server.token(key["key"])
    paths = [f"/v2/accounts/{account}/tasks", f"/v2/tasks/{uuid.uuid4().hex}", f"/v2/tasks/{uuid.uuid4().hex}/output"]
    with shared_server.client() as anonymous:
        for path in paths:
            assert error(anonymous.get(path), 401, "invalid_credentials") == CREDENTIALS
            assert error(anonymous.get(path, headers={"X-Auth-Token": "forged"}), 401, "invalid_credentials")
        assert error(create(anonymous, "/v2"), 401, "invalid_credentials")
        # The token in the query, as Kazoo allows, and as a bearer token.
        assert anonymous.get(paths[0], params={"auth_token": token}).status_code == 200
        assert anonymous.get(paths[0], headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # An expired token (stored by the same store API the server uses, already expired).
    expired = "expired-" + uuid.uuid4().hex
    with open_store(f"sqlite:///{shared_server.data / 'kzconsole.db'}") as store:
        assert store.add_api_token(hashlib.sha256(expired.encode()).hexdigest(), key["id"], -1) is not None
    with shared_server.client(expired) as client:
        assert error(client.get(paths[0]), 401, "invalid_credentials") == CREDENTIALS
    # A removed key: its tokens die at once.
    with shared_server.client(token) as client:
        assert client.get(paths[0]).status_code == 200
        shared_server.cli("api-keys", "remove", key["id"])
        assert error(client.get(paths[0]), 401, "invalid_credentials") == CREDENTIALS
    with shared_server.client() as anonymous:
        answer = anonymous.put("/v2/api_auth", json={"data": {"api_key": key["key"]}})
        assert error(answer, 401, "invalid_credentials")
    proc = shared_server.cli("api-keys", "remove", key["id"], check=2)
    assert b"no API key" in proc.stderr


def test_accounts(shared_server: Server) -> None:
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    with (
        shared_server.login(mine) as me,
        shared_server.login(theirs) as them,
        shared_server.login(uuid.uuid4().hex, superadmin=True) as admin,
    ):
        their_job = created(them, "/v2")
        # Another account's path: 403; another account's job: 404 (as if it did not exist).
        for method, path in (
            ("GET", f"/v2/accounts/{theirs}/tasks"),
            ("PUT", f"/v2/accounts/{theirs}/tasks"),
            ("GET", f"/v2/accounts/{theirs}/tasks/{their_job['id']}"),
            ("PATCH", f"/v2/accounts/{theirs}/tasks/{their_job['id']}/stop"),
        ):
            assert error(me.request(method, path), 403, "forbidden") == {"message": "forbidden"}
        for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("PATCH", "/stop"), ("GET", "/input")):
            for path in (
                f"/v2/tasks/{their_job['id']}{suffix}",
                f"/v2/accounts/{mine}/tasks/{their_job['id']}{suffix}",
            ):
                assert error(me.request(method, path), 404, "bad identifier") == [their_job["id"]]
        assert me.get(f"/v2/accounts/{mine}/tasks").json()["data"] == []
        # A superadmin acts on any account, and creates jobs in them with itself as auth account.
        listing = admin.get(f"/v2/accounts/{theirs}/tasks").json()["data"]
        assert [t["id"] for t in listing] == [their_job["id"]]
        made = created(admin, f"/v2/accounts/{mine}")
        assert made["account_id"] == mine and made["auth_account_id"] != mine
        assert me.get(f"/v2/tasks/{made['id']}").status_code == 200
        # An account id that is not one.
        assert error(admin.get("/v2/accounts/nope/tasks"), 404, "bad identifier") == ["nope"]


def test_oversized_bodies_store_nothing(make_server) -> None:
    server = make_server(api={"max_upload_bytes": 1000})
    with server.login(ACCOUNT) as client:
        big = b"col1,col2\n" + b"a,b\n" * 500
        data = error(create(client, "/v2", big), 413, "request entity too large")
        assert data == {"max_bytes": 1000}

        def chunks():  # no Content-Length: the limit is counted while reading
            for _ in range(50):
                yield b"a,b\n" * 10

        answer = client.put(
            "/v2/tasks",
            params={"category": "skel", "action": "id2"},
            content=chunks(),
            headers={"Content-Type": "text/csv"},
        )
        assert error(answer, 413, "request entity too large") == {"max_bytes": 1000}
        assert client.get(f"/v2/accounts/{ACCOUNT}/tasks").json()["data"] == []
        assert list((server.data / "uploads").iterdir()) == []
        assert created(client, "/v2", CSV)["total_count"] == 2  # under the limit: fine


def test_large_upload_and_download_stream(shared_server: Server) -> None:
    """A 30 MB input goes in and comes out byte for byte (the memory bound is bench_api's)."""
    line = b"+14155550100,0123456789abcdef0123456789abcdef\n"
    body = b"col1,col2\n" + line * (30_000_000 // len(line))
    with shared_server.login(uuid.uuid4().hex) as client:
        task = created(client, "/v2", body)
        assert task["total_count"] == body.count(b"\n") - 1
        digest = hashlib.sha256()
        with client.stream("GET", f"/v2/tasks/{task['id']}/input") as answer:
            assert answer.headers["content-length"] == str(len(body))
            for chunk in answer.iter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(body).hexdigest()


def _connect(server: Server) -> socket.socket:
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    return sock


def _closed_by_server(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data  # the server closed the connection
        data += chunk


def test_slow_and_oversized_clients(shared_server: Server) -> None:
    # A request head over the limit (16 KiB) is refused, not buffered without end.
    with _connect(shared_server) as sock:
        sock.sendall(b"GET /v2/tasks HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000)
        assert _closed_by_server(sock).startswith(b"HTTP/1.1 400")
    # A client that says nothing, one that never finishes its head (a slowloris), and an idle
    # keep-alive one are all disconnected (after 5 s), which frees their connections.
    silent, dripping, idle = _connect(shared_server), _connect(shared_server), _connect(shared_server)
    try:
        dripping.sendall(b"GET /v2/tasks HTTP/1.1\r\nHo")
        idle.sendall(b"GET /v2/tasks HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _closed_by_server(silent) == b""
        assert _closed_by_server(dripping) == b""
        assert _closed_by_server(idle).startswith(b"HTTP/1.1 200")
    finally:
        for sock in (silent, dripping, idle):
            sock.close()
    # Meanwhile other clients are served.
    with shared_server.client() as anonymous:
        assert anonymous.get("/v2/tasks").status_code == 200


def test_tokens_work_on_every_node_of_the_store(make_server) -> None:
    first = make_server("a")
    second = make_server("b", data=first.data, engine=False)
    key = first.add_key(OTHER)
    token = first.token(key["key"])
    with second.client(token) as on_second, first.client(token) as on_first:
        task = created(on_second, "/v2", CSV)
        assert on_first.get(f"/v2/tasks/{task['id']}").json()["data"]["_read_only"]["id"] == task["id"]
        second.cli("api-keys", "remove", key["id"])
        assert error(on_first.get(f"/v2/tasks/{task['id']}"), 401, "invalid_credentials")
        assert error(on_second.get(f"/v2/tasks/{task['id']}"), 401, "invalid_credentials")


def test_tls(make_server, tmp_path) -> None:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = make_server(api={"tls_cert": str(cert), "tls_key": str(key)})
    assert server.url.startswith("https://127.0.0.1:")
    import ssl

    with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(cert))) as client:
        assert client.get("/v2/tasks").status_code == 200
    with httpx.Client(base_url=server.url.replace("https", "http")) as plain:
        try:
            answer = plain.get("/v2/tasks")
        except httpx.HTTPError:
            pass
        else:
            assert answer.status_code >= 400
    # A certificate that cannot be loaded is an error naming it, before anything starts.
    broken = Server(tmp_path / "broken", api={"tls_cert": str(tmp_path / "missing.pem"), "tls_key": str(key)})
    proc = broken.cli("serve", "--listen", "127.0.0.1:0", check=2)
    assert b"missing.pem" in proc.stderr and b"cannot be used" in proc.stderr
