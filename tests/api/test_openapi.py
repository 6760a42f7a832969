"""GET /v2/openapi.json matches what the server does: schemathesis fuzzes every operation of the
document against a real server and checks each answer (no 5xx; status, content type, headers and
body as documented; schema-violating requests refused; no answer without a valid token)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.api.conftest import Server


def test_every_path_and_verb_is_documented(shared_server: Server) -> None:
    from kzconsole.api.app import ROUTES

    with shared_server.client() as client:
        doc = client.get("/v2/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    served = {path: {verb.lower() for verb in verbs} for path, verbs in ROUTES}
    documented = {path: set(item) - {"parameters"} for path, item in doc["paths"].items()}
    assert documented == served
    create = doc["paths"]["/v2/tasks"]["put"]
    category = next(p for p in create["parameters"] if p["name"] == "category")
    assert "skel" in category["schema"]["enum"] and "apitest" in category["schema"]["enum"]


def test_schemathesis_finds_nothing(shared_server: Server, tmp_path: Path) -> None:
    admin = shared_server.add_key(superadmin=True)
    token = shared_server.token(admin["key"])
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{shared_server.url}/v2/openapi.json",
        "--header",
        f"X-Auth-Token: {token}",
        # positive_data_acceptance expects every schema-valid request to succeed; a CSV body's
        # validity (contract 3.3) is not something a schema can say, so its 400s are correct.
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "10",
        "--generation-deterministic",
        "--no-color",
        # One worker: with two, hypothesis crashed now and then inside the tool while describing
        # schemathesis's filter lambdas from their source (a thread race in `.filter`,
        # HypothesisWorks/hypothesis#4521), which failed this test for nothing of ours.
        "--workers",
        "1",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
