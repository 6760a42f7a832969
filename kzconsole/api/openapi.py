"""``GET /v2/openapi.json``: the OpenAPI 3.1 document of what :mod:`kzconsole.api.app` serves.

Built from the same route table as the server (:data:`kzconsole.api.app.ROUTES`), so a path or a
verb cannot exist in one and not the other; the tests run schemathesis against it, which checks
that every answer's status, content type and body are the ones written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kzconsole import __version__

_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_GREGORIAN = {"type": "integer", "description": "Gregorian seconds (Unix seconds + 62167219200)"}

_TASK = {
    "type": "object",
    "required": ["id", "account_id", "auth_account_id", "category", "action", "status", "created"],
    "properties": {
        "id": _HEX32,
        "account_id": {"type": "string"},
        "auth_account_id": {"type": "string"},
        "category": {"type": "string"},
        "action": {"type": "string"},
        "file_name": {"type": "string"},
        "status": {"enum": ["pending", "executing", "success", "failure", "partial", "stopped", "internal_error"]},
        "created": _GREGORIAN,
        "start_timestamp": _GREGORIAN,
        "end_timestamp": _GREGORIAN,
        "total_count": {"type": "integer"},
        "success_count": {"type": "integer"},
        "failure_count": {"type": "integer"},
        "node": {"type": "string"},
        "output_rows": {"type": "integer"},
        "wait_after_row_ms": {"type": "integer"},
        "error": {"type": "string"},
        "csvs": {"type": "array", "items": {"enum": ["in.csv", "out.csv"]}},
    },
}

_HELP_ENTRY = {
    "type": "object",
    "required": ["description", "doc", "expected_content", "mandatory", "optional"],
    "properties": {
        "description": {"type": "string"},
        "doc": {"type": "string"},
        "expected_content": {"type": ["string", "null"]},
        "mandatory": {"type": "array", "items": {"type": "string"}},
        "optional": {"type": "array", "items": {"type": "string"}},
    },
}


def _envelope(data: dict[str, Any], *, paged: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "status": {"const": "success"},
        "data": data,
        "revision": {"type": "string"},
        "request_id": {"type": "string"},
        "auth_token": {"type": "string"},
        "node": {"type": "string"},
        "timestamp": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
        "version": {"type": "string"},
    }
    if paged:
        properties |= {
            "page_size": {"type": "integer"},
            "start_key": {"type": "string"},
            "next_start_key": {"type": "string"},
        }
    return {"type": "object", "required": ["status", "data", "request_id", "timestamp"], "properties": properties}


_ERROR = {
    "type": "object",
    "required": ["status", "error", "message", "data", "request_id"],
    "properties": {
        "status": {"const": "error"},
        "error": {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
        "message": {"type": "string"},
        "data": {},
        "request_id": {"type": "string"},
        "auth_token": {"type": "string"},
        "node": {"type": "string"},
        "timestamp": {"type": "string"},
        "version": {"type": "string"},
    },
}

_ERROR_TEXT = {
    400: "bad request or validation error (contract 8.5)",
    401: "invalid_credentials: no token, or an unknown or expired one",
    403: "forbidden: the token's key may not act on this account",
    404: "bad identifier: no such task, job or file (or a job of another account)",
    405: "method not allowed",
    408: "request timeout: the body stopped arriving",
    413: "request entity too large (over api.max_upload_bytes)",
    415: "unsupported media type: the body is neither CSV nor JSON",
    503: "the store cannot be used",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json({"$ref": "#/components/schemas/Error"}, _ERROR_TEXT[code]) for code in codes}


_ACCOUNT_PARAM = {"name": "account_id", "in": "path", "required": True, "schema": _HEX32}
_JOB_PARAM = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTHED = (401, 403, 503)


def _job(schema_ref: str = "#/components/schemas/Task") -> dict[str, Any]:
    return _envelope({"type": "object", "required": ["_read_only"], "properties": {"_read_only": {"$ref": schema_ref}}})


def _csv_download(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }


def _operations() -> dict[str, dict[str, Any]]:
    """Operations by (path without the account part); the account form gets the same ones."""
    job_read = {
        "summary": "A job (JSON), or one of its CSV files (Accept: text/csv, or ?accept=csv)",
        "parameters": [
            {
                "name": "accept",
                "in": "query",
                "schema": {"type": "string"},
                "description": "overrides the Accept header; `csv` means text/csv",
            },
            {
                "name": "csv_name",
                "in": "query",
                "schema": {"enum": ["in.csv", "out.csv"]},
                "description": "the file to download (default out.csv)",
            },
        ],
        "responses": {
            "200": {
                "description": "the job, or the file",
                "content": {"application/json": {"schema": _job()}, "text/csv": {"schema": {"type": "string"}}},
            },
            "204": {"description": "the file is empty"},
            **_errors(400, *_AUTHED, 404),
        },
    }
    return {
        "/tasks/{job_id}": {
            "get": job_read,
            "patch": {
                "summary": "Start the job (as `tasks start`; the body is ignored)",
                "responses": {"200": _json(_job(), "the job, queued"), **_errors(*_AUTHED, 404)},
            },
            "delete": {
                "summary": "Remove a job that is not running, with its files",
                "responses": {"200": _json(_job(), "the removed job"), **_errors(*_AUTHED, 404)},
            },
        },
        "/tasks/{job_id}/stop": {
            "patch": {
                "summary": "Stop the job; answers once it is stopped, or after 2 s",
                "responses": {"200": _json(_job(), "the job"), **_errors(*_AUTHED, 404)},
            }
        },
        "/tasks/{job_id}/input": {
            "get": {
                "summary": "The stored input CSV",
                "responses": {
                    "200": _csv_download("the input"),
                    "204": {"description": "empty"},
                    **_errors(*_AUTHED, 404),
                },
            }
        },
        "/tasks/{job_id}/output": {
            "get": {
                "summary": "The output CSV so far",
                "responses": {
                    "200": _csv_download("the output"),
                    "204": {"description": "empty"},
                    **_errors(*_AUTHED, 404),
                },
            }
        },
    }


def _create(account_form: bool, catalog: dict[str, dict[str, Any]]) -> dict[str, Any]:
    categories = sorted(catalog)
    actions = sorted({action for actions in catalog.values() for action in actions})
    owner = "the account in the path" if account_form else "the token's account"
    return {
        "summary": f"Create a job owned by {owner} (the checks of contract 3.3)",
        "parameters": [
            {
                "name": "category",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "minLength": 1, **({"enum": categories} if categories else {})},
                "description": "a category of the catalog (GET /v2/tasks)",
            },
            {
                "name": "action",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "minLength": 1, **({"enum": actions} if actions else {})},
                "description": "one of the category's actions",
            },
            {"name": "file_name", "in": "query", "schema": {"type": "string"}},
        ],
        "requestBody": {
            "required": False,
            "description": 'CSV, JSON records (`{"data": {"records": [...]}}` or an array), or '
            "nothing for a task without input",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/comma-separated-values": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        "responses": {"201": _json(_job(), "the new pending job"), **_errors(400, *_AUTHED, 404, 408, 413, 415)},
    }


def _operation_id(verb: str, path: str) -> str:
    words = [part for part in path.split("/") if part and part != "v2" and not part.startswith("{")]
    return verb + "".join(w.replace("_", " ").replace(".", " ").title().replace(" ", "") for w in words)


def _with_links(response: dict[str, Any], job_path: str, account_form: bool) -> dict[str, Any]:
    """OpenAPI links from a created job to what can be done with it (schemathesis follows them)."""
    parameters = {"job_id": "$response.body#/data/_read_only/id"}
    if account_form:
        parameters["account_id"] = "$request.path.account_id"
    links = {}
    for verb, suffix in (
        ("get", ""),
        ("patch", ""),
        ("patch", "/stop"),
        ("get", "/input"),
        ("get", "/output"),
        ("delete", ""),
    ):
        operation = _operation_id(verb, job_path + suffix)
        links[operation] = {"operationId": operation, "parameters": dict(parameters)}
    return {**response, "links": links}


def document(
    settings: Any, catalog: dict[str, dict[str, Any]], routes: Iterable[tuple[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """The OpenAPI document (``settings`` is the ``[api]`` section; ``catalog`` the help, whose
    categories and actions are the values a job can be created with; ``routes`` the server's
    route table: path, and the handlers by verb)."""
    paths: dict[str, Any] = {}
    help_op = {
        "summary": "The catalog of tasks (open to all)",
        "security": [],
        "parameters": [
            {"name": "category", "in": "query", "schema": {"type": "string"}},
            {"name": "action", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": _json(
                _envelope(
                    {
                        "type": "object",
                        "required": ["tasks"],
                        "properties": {
                            "tasks": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": {"$ref": "#/components/schemas/HelpEntry"},
                                },
                            }
                        },
                    }
                ),
                "the catalog, narrowed as asked",
            ),
            **_errors(404),
        },
    }
    list_op = {
        "summary": "The account's jobs, newest first, paged",
        "parameters": [
            {
                "name": "page_size",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": settings.page_size},
            },
            {
                "name": "start_key",
                "in": "query",
                "schema": {"type": "string"},
                "description": "the previous answer's next_start_key",
            },
            {"name": "paginate", "in": "query", "schema": {"enum": ["true", "false"]}},
        ],
        "responses": {
            "200": _json(
                _envelope({"type": "array", "items": {"$ref": "#/components/schemas/Task"}}, paged=True),
                "one page of jobs",
            ),
            **_errors(400, *_AUTHED, 404),
        },
    }
    auth_op = {
        "summary": "Trade an API key for an auth token (X-Auth-Token)",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "data": {
                                "type": "object",
                                "required": ["api_key"],
                                "properties": {"api_key": {"type": "string", "minLength": 1}},
                            }
                        },
                    }
                }
            },
        },
        "responses": {
            "201": _json(
                _envelope(
                    {
                        "type": "object",
                        "required": ["account_id", "api_key_id", "is_superadmin", "expires"],
                        "properties": {
                            "account_id": {"type": "string"},
                            "api_key_id": _HEX32,
                            "is_superadmin": {"type": "boolean"},
                            "expires": _GREGORIAN,
                        },
                    }
                ),
                "a token, in auth_token",
            ),
            **_errors(400, 401, 413, 503),
        },
    }
    spec_op = {
        "summary": "This document",
        "security": [],
        "responses": {
            "200": {
                "description": "the OpenAPI document",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }
    job_ops = _operations()
    for path, verbs in routes:
        account_form = "{account_id}" in path
        if path == "/v2/tasks":
            ops = {"get": help_op, "put": _create(False, catalog)}
        elif path == "/v2/accounts/{account_id}/tasks":
            ops = {"get": list_op, "put": _create(True, catalog)}
        elif path == "/v2/api_auth":
            ops = {"put": auth_op}
        elif path == "/v2/openapi.json":
            ops = {"get": spec_op}
        else:
            bare = path.split("/v2", 1)[1].replace("/accounts/{account_id}", "")
            ops = job_ops[bare]
        assert {verb.lower() for verb in verbs} == set(ops), path
        params = [_ACCOUNT_PARAM] if account_form else []
        if "{job_id}" in path:
            params = [*params, _JOB_PARAM]
        item: dict[str, Any] = {verb: dict(op) for verb, op in ops.items()}
        for verb, op in item.items():
            op["operationId"] = _operation_id(verb, path)
        if path.endswith("/tasks") and "put" in item:
            item["put"]["responses"] = {
                **item["put"]["responses"],
                "201": _with_links(
                    item["put"]["responses"]["201"], path.replace("/tasks", "/tasks/{job_id}"), account_form
                ),
            }
        if params:
            item["parameters"] = params
        paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kzconsole tasks API (Kazoo cb_tasks compatible)",
            "version": __version__,
            "description": "See docs/api.md. Every answer is Crossbar's envelope.",
        },
        "servers": [{"url": "/"}],
        "security": [{"authToken": []}, {"authTokenQuery": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "authTokenQuery": {"type": "apiKey", "in": "query", "name": "auth_token"},
            },
            "schemas": {"Task": _TASK, "HelpEntry": _HELP_ENTRY, "Error": _ERROR},
        },
    }
