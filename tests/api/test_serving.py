"""Serving (contract 8.1, 8.3): browsers on another origin, --no-engine, signals, many clients."""

from __future__ import annotations

import collections
import signal
import threading

import httpx

from tests.api.conftest import ACCOUNT, FINISHED, Server, wait_for
from tests.api.test_endpoints import CSV, created, error

MONSTER = "https://monster.example.com"


class BrowserLikeClient:
    """What a browser does for a page on ``origin`` calling the API (the Fetch standard's CORS
    checks): a preflight for a request with custom headers or a non-simple method, then the
    request; a response whose CORS headers do not allow it is unreadable (AssertionError)."""

    def __init__(self, base_url: str, origin: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.origin = origin

    def _allowed_origin(self, answer: httpx.Response) -> None:
        allowed = answer.headers.get("access-control-allow-origin")
        assert allowed in ("*", self.origin), f"blocked by CORS: {allowed!r}"

    def fetch(self, method: str, path: str, *, headers: dict[str, str], content: bytes | None = None) -> httpx.Response:
        custom = sorted(h.lower() for h in headers if h.lower() not in ("accept", "content-language"))
        preflight = self.http.options(
            path,
            headers={
                "Origin": self.origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": ", ".join(custom),
            },
        )
        assert preflight.status_code == 200, preflight.text  # a preflight is never authenticated
        self._allowed_origin(preflight)
        methods = {m.strip() for m in preflight.headers["access-control-allow-methods"].split(",")}
        assert method in methods
        allowed_headers = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert set(custom) <= allowed_headers, set(custom) - allowed_headers
        answer = self.http.request(method, path, headers={"Origin": self.origin, **headers}, content=content)
        self._allowed_origin(answer)
        return answer

    def exposed(self, answer: httpx.Response) -> set[str]:
        return {h.strip().lower() for h in answer.headers.get("access-control-expose-headers", "").split(",")}


def test_a_browser_on_another_origin(shared_server: Server) -> None:
    key = shared_server.add_key(ACCOUNT)
    browser = BrowserLikeClient(shared_server.url, MONSTER)
    auth = browser.fetch(
        "PUT",
        "/v2/api_auth",
        headers={"Content-Type": "application/json"},
        content=b'{"data": {"api_key": "%s"}}' % key["key"].encode(),
    )
    token = auth.json()["auth_token"]
    headers = {"X-Auth-Token": token, "X-Request-ID": "monster-1"}
    made = browser.fetch(
        "PUT", "/v2/tasks?category=skel&action=id2", content=CSV, headers={**headers, "Content-Type": "text/csv"}
    )
    assert made.status_code == 201
    job_id = made.json()["data"]["_read_only"]["id"]
    # The Monster UI SDK reads an error's body only when Content-Type is exactly application/json.
    failed = browser.fetch("PATCH", f"/v2/tasks/{job_id}/stop", headers=headers)
    assert failed.status_code == 200
    failed = browser.fetch("PATCH", f"/v2/tasks/{job_id}", headers=headers)
    assert failed.headers["content-type"] == "application/json"
    assert failed.json()["data"]["reason"] == "task already started"
    unauthorized = browser.fetch("GET", f"/v2/accounts/{ACCOUNT}/tasks", headers={"X-Auth-Token": "nope"})
    assert unauthorized.status_code == 401 and unauthorized.headers["content-type"] == "application/json"
    assert unauthorized.json()["message"] == "invalid_credentials"
    download = browser.fetch("GET", f"/v2/tasks/{job_id}/input", headers=headers)
    assert "content-disposition" in browser.exposed(download)
    # A preflight on any path, even one that does not exist.
    assert browser.http.options("/anything", headers={"Origin": MONSTER}).status_code == 200


def test_cors_origins_from_the_config(make_server) -> None:
    server = make_server(api={"cors_origins": [MONSTER]})
    with server.client() as client:
        allowed = client.get("/v2/tasks", headers={"Origin": MONSTER})
        assert allowed.headers["access-control-allow-origin"] == MONSTER
        assert "Origin" in allowed.headers["vary"]
        other = client.get("/v2/tasks", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
    blocked = BrowserLikeClient(server.url, "https://evil.example.com")
    try:
        blocked.fetch("GET", "/v2/tasks", headers={"X-Auth-Token": "x"})
    except AssertionError as exc:
        assert "blocked by CORS" in str(exc)
    else:
        raise AssertionError("another origin was allowed")


def test_no_engine_serves_the_store_and_an_engine_process_runs_the_jobs(make_server) -> None:
    server = make_server(engine=False)
    with server.login(ACCOUNT) as client:
        task = created(client, "/v2", CSV)
        path = f"/v2/tasks/{task['id']}"
        assert client.patch(path).json()["data"]["_read_only"]["status"] == "pending"
        import subprocess

        engine = subprocess.Popen(
            server.command("engine"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server.env
        )
        try:
            assert wait_for(client, path, lambda t: t["status"] in FINISHED)["status"] == "success"
        finally:
            engine.send_signal(signal.SIGTERM)
            assert engine.wait(30) == 0


def test_a_job_waiting_for_a_slot_is_already_started_and_one_of_concurrent_starts_wins(make_server) -> None:
    """Contract 8.5: a start of a started job is 404 ``task already started``, and a job waiting
    for an engine's slot is started. With no engine the job waits: the second start is refused,
    and of ten concurrent starts of another job exactly one is answered with the job."""
    server = make_server(engine=False)
    with server.login(ACCOUNT) as client:
        task = created(client, "/v2", CSV)
        path = f"/v2/tasks/{task['id']}"
        assert client.patch(path).status_code == 200
        data = error(client.patch(path), 404, "bad_identifier")
        assert data == {"reason": "task already started", "cause": task["id"], "message": "bad identifier"}
        other = created(client, "/v2", CSV)
        gate = threading.Barrier(10)

        def start() -> int:
            with server.client(client.headers["X-Auth-Token"]) as own:
                gate.wait()
                return own.patch(f"/v2/tasks/{other['id']}").status_code

        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(start())) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200] + [404] * 9


def test_sigterm_ends_serve_cleanly(make_server) -> None:
    """No thread of the server's own is left at exit (the command line would blame a plugin)."""
    server = make_server()
    with server.login(ACCOUNT) as client:
        assert client.get(f"/v2/accounts/{ACCOUNT}/tasks").status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    assert not [line for line in server.stderr if "left a thread running" in line], server.stderr


def test_sigterm_is_graceful_and_the_job_resumes(make_server) -> None:
    server = make_server()
    with server.login(ACCOUNT) as client:
        task = created(client, "/v2", b"n\n1\nhold\n3\n", category="apitest", action="hold")
        path = f"/v2/tasks/{task['id']}"
        client.patch(path)
        wait_for(client, path, lambda t: t["status"] == "executing" and t.get("success_count") == 1)
    assert server.stop(signal.SIGTERM) == 0
    assert any("Shutting down" in line for line in server.stderr)
    # The next engine resumes the job at its first row without a persisted outcome: row 1 is not
    # run again, the held row is (a row in flight at shutdown runs again, contract 4.3).
    again = Server(server.root, data=server.data).start()
    try:
        with again.login(ACCOUNT) as client:
            resumed = wait_for(
                client,
                path,
                lambda t: t["status"] == "executing" and (server.data / "runs.log").read_text().count("hold") == 2,
            )
            assert resumed["success_count"] == 1
            stopped = client.patch(f"{path}/stop").json()["data"]["_read_only"]
            assert stopped["status"] == "stopped" and stopped["success_count"] == 2
    finally:
        again.stop()
    runs = (server.data / "runs.log").read_text().splitlines()
    assert runs == [f"{task['id']},1", f"{task['id']},hold", f"{task['id']},hold"]


def test_fifty_clients_while_two_engines_run_the_jobs(make_server) -> None:
    first = make_server("a", tasks={"max_running": 3})
    second = make_server("b", data=first.data, tasks={"max_running": 3})
    key = first.add_key(ACCOUNT)
    token = first.token(key["key"])
    made: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def work(index: int) -> None:
        server = (first, second)[index % 2]
        try:
            with server.client(token) as client:
                barrier.wait(60)
                rows = "".join(f"{index}-{n}\n" for n in range(5))
                answer = client.put(
                    "/v2/tasks",
                    params={"category": "apitest", "action": "hold"},
                    content=f"n\n{rows}".encode(),
                    headers={"Content-Type": "text/csv"},
                )
                assert answer.status_code == 201, answer.text
                job_id = answer.json()["data"]["_read_only"]["id"]
                started = client.patch(f"/v2/tasks/{job_id}")
                assert started.status_code == 200, started.text
                with lock:
                    made.append(job_id)
        except BaseException as exc:  # noqa: BLE001 - every client's failure is the test's, reported below
            with lock:
                failures.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(set(made)) == 50
    with first.client(token) as client:
        for job_id in made:
            done = wait_for(client, f"/v2/tasks/{job_id}", lambda t: t["status"] in FINISHED, limit=120)
            assert done["status"] == "success" and done["success_count"] == 5, done
            output = client.get(f"/v2/tasks/{job_id}/output").text.splitlines()
            assert len(output) == 6  # the header and each row once
        listing = client.get(f"/v2/accounts/{ACCOUNT}/tasks", params={"paginate": "false"}).json()
        assert {t["id"] for t in listing["data"]} == set(made)
        nodes = {t["node"] for t in listing["data"]}
    runs = collections.Counter((first.data / "runs.log").read_text().splitlines())
    assert len(runs) == 250 and set(runs.values()) == {1}, "a row ran twice, or never"
    assert len(nodes) == 2, "both engines ran jobs"


def test_request_ids_and_unknown_paths_are_json(shared_server: Server) -> None:
    with shared_server.client() as client:
        answer = client.get("/nope", headers={"X-Request-ID": "abc"})
        assert error(answer, 404, "not found")
        assert answer.json()["request_id"] == "abc"
        assert client.get("/v2/openapi.json").headers["content-type"] == "application/json"


def test_two_nodes_on_a_postgresql_store(make_server, pg_url) -> None:
    """Contract 8.1 and 9: serve on every node of a cluster store gives the same answers; a key
    made on one node, and its tokens, work on the other; a job made on one runs and downloads
    through the other."""
    first = make_server("a", store_url=pg_url)
    second = make_server("b", store_url=pg_url, engine=False)
    key = second.add_key(ACCOUNT)
    token = first.token(key["key"])
    with first.client(token) as on_first, second.client(token) as on_second:
        task = created(on_second, "/v2", CSV)
        assert on_second.patch(f"/v2/tasks/{task['id']}").status_code == 200
        done = wait_for(on_first, f"/v2/tasks/{task['id']}", lambda t: t["status"] in FINISHED)
        assert done["status"] == "success" and done["csvs"] == ["in.csv", "out.csv"]
        assert on_second.get(f"/v2/tasks/{task['id']}/output").text == "Col1,Col2,error\na,b,\nc,d,\n"
        first_list = on_first.get(f"/v2/accounts/{ACCOUNT}/tasks").json()["data"]
        assert first_list == on_second.get(f"/v2/accounts/{ACCOUNT}/tasks").json()["data"]
        first.cli("api-keys", "remove", key["id"])
        assert error(on_second.get(f"/v2/tasks/{task['id']}"), 401, "invalid_credentials")
