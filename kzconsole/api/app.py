"""The ASGI application of ``kzconsole serve`` (contract 8.2 to 8.5).

Every answer is Crossbar's envelope (:func:`envelope`); every job operation is one call of the
engine facade, whose exceptions map onto the errors of 8.5 (:func:`_job_error`). Work that touches
the store or a file runs in Starlette's thread pool, so a slow disk or a store waiting for a lock
never stalls the event loop; the loop itself only moves bytes (uploads into a spool file,
downloads out of a stream) and waits (a stop that is being honoured).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import functools
import hashlib
import io
import itertools
import json
import logging
import operator
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, BinaryIO

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kzconsole import __version__
from kzconsole.api import keys
from kzconsole.api.listing_cache import ListingCache, Page
from kzconsole.engine import (
    PUBLIC_JOB_KEYS,
    ApiKey,
    Engine,
    EngineError,
    InvalidJobState,
    InvalidQuery,
    JobNotFound,
    JobQuery,
    JobRecord,
    JobRejected,
    JobStatus,
    StoreError,
)

log = logging.getLogger("kzconsole.api")

GREGORIAN_OFFSET = 62167219200  # seconds from 0000-01-01 (Erlang's calendar) to 1970-01-01
JSON = "application/json"  # exactly: the Monster UI SDK parses an error body only then
CSV_TYPES = ("text/csv", "text/comma-separated-values", "application/octet-stream")
JSON_TYPES = ("application/json", "application/x-json")
_JSON_ANSWER_TYPES = ("application/json", "application/x-json", "*/*")
CORS_METHODS = "GET, PUT, POST, PATCH, DELETE, OPTIONS"
# Ours, then the rest of Crossbar's list (api_util:get_cors_headers): Monster UI sends
# X-Kazoo-Cluster-ID with every request when kazooClusterId is configured, and a browser refuses a
# call whose preflight does not allow each header it carries.
CORS_HEADERS = (
    "Content-Type, Content-Length, X-Auth-Token, X-Request-ID, Accept, Authorization,"
    " Origin, If-Match, X-HTTP-Method-Override, X-Kazoo-Cluster-ID, X-Requested-With,"
    " Cache-Control, If-Modified-Since, X-File-Name, X-File-Size, Depth, User-Agent"
)
CORS_EXPOSED = "Content-Disposition, Content-Type, X-Request-ID, Location"
_CHUNK = 1 << 20
# A request head larger than this is refused (431). serve's HTTP protocol refuses a head still
# incomplete past it (h11's limit); this refuses one that arrived at once.
MAX_HEAD_BYTES = 16 * 1024
_SMALL_BODY = 64 * 1024  # PUT /v2/api_auth: a key in a small JSON document
_ACCOUNT = re.compile(r"[0-9a-f]{32}")
# A number in a query or a header: ASCII digits only (str.isdigit() also holds for "²", which
# int() refuses, and int() reads "١٠" and "1_0").
_NUMBER = re.compile(r"[0-9]+")
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_STOP_WAIT_S = 2.0
_PRUNE_TOKENS_EVERY = 100
_BODY_IDLE_S = 30.0  # an upload that sends nothing for this long is cut off (408)
_ROWS_PER_WRITE = 1000  # paginate=false: jobs per chunk written
_QUERIES_KEPT = 1024  # first-page queries kept (accounts x page sizes)


def gregorian(ts: float | None) -> int | None:
    return None if ts is None else int(ts) + GREGORIAN_OFFSET


_TIMESTAMPS = ("created", "start_timestamp", "end_timestamp")

# What tells which files a job has (csvs), after the public record: a listing reads each job as
# its JSON text built by the store (Store.iter_job_documents) followed by these columns.
FILE_COLUMNS = ("id", "created", "total_count", "output_offset", "output_path", "status")
_KEY_COLUMNS = ("id", "created")  # a page's keys, read from the index, when its jobs are kept
_EXECUTING = JobStatus.EXECUTING.value
# A listing job's JSON text ends with its object's "}": csvs goes in its place.
_CSVS_MEMBER = {
    (True, True): ',"csvs":["in.csv","out.csv"]}',
    (True, False): ',"csvs":["in.csv"]}',
    (False, True): ',"csvs":["out.csv"]}',
}


def _public_json(values: Sequence[Any]) -> dict[str, Any]:
    """The public keys' values (in PUBLIC_JOB_KEYS order) as JSON: nulls left out, timestamps in
    whole Gregorian seconds, the status as its string."""
    out = {key: value for key, value in zip(PUBLIC_JOB_KEYS, values, strict=False) if value is not None}
    for key in _TIMESTAMPS:
        value = out.get(key)
        if value is not None:
            out[key] = int(value) + GREGORIAN_OFFSET
    return out


_PUBLIC_VALUES = operator.attrgetter(*PUBLIC_JOB_KEYS)
_STATUS = PUBLIC_JOB_KEYS.index("status")


def task_json(job: JobRecord) -> dict[str, Any]:
    """Contract 8.4's ``task``: the public record, Gregorian timestamps, nulls left out."""
    values = list(_PUBLIC_VALUES(job))  # one attrgetter: a third of building public() first
    values[_STATUS] = job.status.value
    return _public_json(values)


def _reads_files(output_offset: int, output_path: str | None, status: str) -> bool:
    """Whether :meth:`Api.files` must look for the job's output file to tell."""
    if output_path is None:
        return status == _EXECUTING and output_offset <= 0
    return True


class ApiError(Exception):
    """An error answer of contract 8.5."""

    def __init__(self, status: int, message: str, data: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.headers = headers or {}


def bad_identifier(job_id: str) -> ApiError:
    return ApiError(404, "bad identifier", [job_id])


def _bad_job(job_id: str, reason: str | None = None) -> ApiError:
    data: dict[str, Any] = {"cause": job_id, "message": "bad identifier"}
    if reason is not None:
        data = {"reason": reason, **data}
    return ApiError(404, "bad_identifier", data)


def _validation(field: str, rule: str, message: str) -> ApiError:
    return ApiError(400, "validation error", {field: {rule: {"message": message}}})


INVALID_CREDENTIALS = ApiError(401, "invalid_credentials", {"message": "invalid credentials"})
FORBIDDEN = ApiError(403, "forbidden", {"message": "forbidden"})


# ------------------------------------------------------------------------------- envelope


@dataclass
class Call:
    """One request as the handlers see it."""

    request: Request
    request_id: str
    token: str | None = None
    key: ApiKey | None = None
    account_id: str | None = None  # the account acted on (the path's, or the token's)
    position: int | None = None  # the changes feed's, read before the token was checked


def _dumps(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8. orjson: a listing page's 50 jobs in a tenth of the
    standard library's time (which was the largest part of a page's answer); the standard library
    for what orjson refuses (integers past 64 bits, say, in a plugin's help)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def revision(body: bytes) -> bytes:
    """The envelope's ``revision`` of a ``data`` in JSON: a client may compare two to tell a change.
    32 hex digits, as Crossbar's MD5; of SHA-256, which this machine's CPU hashes in a quarter of
    MD5's time (a page's 22 KB: 15 against 50 us)."""
    return hashlib.sha256(body).hexdigest()[:32].encode()


class _Clock:
    """The envelope's ``timestamp``: formatted once a second, not once an answer."""

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def stamp(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._text = time.strftime('"%Y-%m-%dT%H:%M:%SZ"', time.gmtime(now)).encode()
            self._second = now
        return self._text


def _header_text(value: str) -> str:
    """A header's value as its sender wrote it: the server reads header bytes as Latin-1, so
    UTF-8 text ("réq") reads as "rÃ©q"; bytes that are not UTF-8 stay as read."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class Envelope:
    """Builds Crossbar's envelope: ``status``, ``data``, ``revision``, ``request_id``,
    ``auth_token``, ``node``, ``timestamp``, ``version`` (keys whose value is null left out)."""

    def __init__(self, node: str) -> None:
        self._tail = _dumps({"node": node, "version": __version__})[1:-1]
        self._clock = _Clock()

    def meta(self, call: Call, extra: dict[str, Any] | None) -> bytes:
        """The envelope's keys after ``data``, as JSON members (no braces)."""
        meta: dict[str, Any] = {"request_id": _header_text(call.request_id)}
        if call.token is not None:
            meta["auth_token"] = call.token
        if extra:
            meta.update((k, v) for k, v in extra.items() if v is not None)
        return b'%s,%s,"timestamp":%s' % (_dumps(meta)[1:-1], self._tail, self._clock.stamp())

    def success(
        self,
        call: Call,
        data: Any,
        *,
        status: int = 200,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = _dumps(data)
        return self.success_json(call, body, revision(body), status=status, extra=extra, headers=headers)

    def success_json(
        self,
        call: Call,
        body: bytes,
        revision: bytes,
        *,
        status: int = 200,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """:meth:`success` of ``data`` already in JSON (``body``) and its :func:`revision`."""
        text = b'{"status":"success","data":%s,"revision":"%s",%s}' % (body, revision, self.meta(call, extra))
        return self._response(text, status, call, headers)

    def error(self, call: Call, err: ApiError) -> Response:
        head = _dumps({"status": "error", "error": str(err.status), "message": err.message, "data": err.data})
        return self._response(head[:-1] + b"," + self.meta(call, None) + b"}", err.status, call, err.headers)

    @staticmethod
    def _response(text: bytes, status: int, call: Call, headers: dict[str, str] | None) -> Response:
        given = {"content-type": JSON, "x-request-id": call.request_id}
        return Response(text, status_code=status, headers={**headers, **given} if headers else given)


# ------------------------------------------------------------------------------- the API


def _media_types(value: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in value.split(",") if part.strip()]


def _wants_csv(request: Request) -> bool:
    """Kazoo's rule: ``accept`` in the query (``csv`` means ``text/csv``) overrides the header;
    media types are tried in order; the first known one decides; JSON otherwise."""
    accept = request.query_params.get("accept") if request.scope["query_string"] else None
    if accept is not None:
        value = "text/csv" if accept.strip().lower() == "csv" else accept
    else:
        value = request.headers.get("accept", JSON)
        if value in _JSON_ANSWER_TYPES:  # what clients send when they say nothing particular
            return False
    for media in _media_types(value):
        if media in _JSON_ANSWER_TYPES:
            return False
        if media in CSV_TYPES:
            return True
    return False


_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _content_disposition(job: JobRecord, name: str) -> str:
    suffix = {"in.csv": "in.csv", "out.csv": "out.csv"}[name]
    # A plugin's category or action may hold any character but "/", "." and spaces: nothing
    # that could end the quoted name (or the header) reaches it.
    stem = _UNSAFE_IN_FILE_NAME.sub("_", f"{job.category}_{job.action}")
    return f'attachment; filename="{stem}_{job.id}_{suffix}"'


def _read_chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``stream`` in chunks, then closed: the size seen when the download
    started, so a running job's growing output never disagrees with Content-Length."""
    try:
        left = size
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        stream.close()


def csv_lines_at(path: str, fmt: str, lines: list[int]) -> list[str]:
    """The records of an input that start at the given lines (CSV: physical lines; JSON: record
    numbers), each as one CSV line: what Kazoo's ``missing_mandatory_values`` lists."""
    wanted = set(lines)
    found: dict[int, list[str]] = {}
    if fmt == "csv":
        with open(path, encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text, strict=True)
            line = 0
            for row in reader:
                if line + 1 in wanted and row:
                    found[line + 1] = row
                    if len(found) == len(wanted):
                        break
                line = reader.line_num
    else:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8-sig"), parse_int=str, parse_float=str)
        records = doc if isinstance(doc, list) else (doc.get("data") or {}).get("records") or []
        columns = list(dict.fromkeys(k.strip() for r in records if isinstance(r, dict) for k in r))
        for number in sorted(wanted):
            record = records[number - 1] if 0 < number <= len(records) else None
            if isinstance(record, dict):
                cells = {k.strip(): v for k, v in record.items()}
                found[number] = [_json_text(cells.get(c)) for c in columns]
    out = []
    for number in lines:
        if number in found:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(found[number])
            out.append(buffer.getvalue())
    return out


_FORM = "application/x-www-form-urlencoded"
_UNSUPPORTED_MEDIA = ApiError(
    415,
    "unsupported media type",
    {"message": "the body must be CSV (text/csv) or JSON (application/json)", "accepted": [*CSV_TYPES, *JSON_TYPES]},
)
_SNIFF_BYTES = 4096
_BLANK = b" \t\r\n"


def _sniff_format(spool: BinaryIO) -> str:
    """The format of a body sent without Content-Type: JSON when it starts with ``{`` or ``[``
    (after a byte-order mark and blanks), CSV otherwise. Crossbar takes such a body as JSON, so
    Kazoo scripts send JSON without one; a CSV header never starts so."""
    head = spool.read(_SNIFF_BYTES)
    spool.seek(0)
    return "json" if head.removeprefix(codecs.BOM_UTF8).lstrip(_BLANK)[:1] in (b"{", b"[") else "csv"


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _dumps(value).decode("utf-8")
    return str(value)


class Api:
    """The endpoints of contract 8.4 over one engine."""

    def __init__(self, engine: Engine, settings: Any) -> None:
        self.engine = engine
        self.settings = settings.api
        self.envelope = Envelope(engine.node)
        self.spool_dir = os.path.join(str(engine.data_dir), "uploads")
        # Store and file work runs here. A plain executor, not Starlette's anyio thread pool:
        # measured at half the cost per trip (about 45 against 85-185 us), and most answers are
        # one trip.
        self._issued = 0
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kzconsole-api")
        store = engine.store
        # A store whose reads never wait (SQLite) is read on the event loop for the answers that
        # read a bounded amount (GET one job, a page of up to _INLINE_ROWS jobs): the trip to a
        # worker thread and back, and the two threads taking turns at the GIL at every row SQLite
        # hands over, cost more than the answer's own work (bench/bench_api.py,
        # docs/performance.md). Anything that may wait (writes: SQLite's write lock; PostgreSQL)
        # goes to the workers.
        self.local_reads = store.local_reads
        page_bytes = self.settings.page_cache_mb * 1024 * 1024
        job_bytes = self.settings.job_cache_mb * 1024 * 1024
        self.listings = (
            ListingCache(store, page_bytes=page_bytes, job_bytes=job_bytes)
            if (page_bytes or job_bytes) and store.ordered_changes
            else None
        )
        self._queries: dict[tuple[str | None, int], JobQuery] = {}
        self.tokens = keys.VerifiedTokens(store) if store.ordered_changes else None

    def close(self) -> None:
        """Once the server stopped: let the worker threads go (they are not daemons, and a thread
        left alive at exit reads as a plugin's to the command line)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    # ---- plumbing

    def _token(self, request: Request) -> str | None:
        token = request.headers.get("x-auth-token") or request.query_params.get("auth_token")
        if not token:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
        return token or None

    def authenticate(self, call: Call, path_account: str | None) -> None:
        """Contract 8.2: a valid token; the path's account is the token's, unless superadmin."""
        token = self._token(call.request)
        if token is None:
            raise INVALID_CREDENTIALS
        if self.tokens is not None:
            call.position = self.engine.store.changes(None)[0]
            key = self.tokens.key(token, call.position)
        else:
            key = keys.key_for_token(self.engine.store, token)
        if key is None:
            raise INVALID_CREDENTIALS
        call.token, call.key = token, key
        if path_account is None:
            call.account_id = key.account_id
            return
        if not _ACCOUNT.fullmatch(path_account):
            raise ApiError(404, "bad identifier", [path_account])
        if path_account != key.account_id and not key.superadmin:
            raise FORBIDDEN
        call.account_id = path_account

    def job(self, call: Call, job_id: str) -> JobRecord:
        """The job, through the account (Kazoo reads it through its account-scoped view)."""
        if not _JOB_ID.fullmatch(job_id):
            raise bad_identifier(job_id)
        try:
            job = self.engine.get_job(job_id)
        except JobNotFound:
            raise bad_identifier(job_id) from None
        if job.account_id != call.account_id:
            raise bad_identifier(job_id)
        return job

    def files(
        self, job_id: str, total_count: int | None, output_offset: int, output_path: str | None, status: str
    ) -> tuple[bool, bool]:
        """Which of in.csv and out.csv a job has stored, told by its record, so that a listing
        opens no file:

        - a job has its input exactly when it has input rows (``total_count``: the record and the
          input are stored together, contract 4.1 and 3.3);
        - ``output_offset`` is the length of the stored output at the job's last checkpoint and at
          its end (the runner stores the output with each of them), so a job whose record counts
          output bytes has its output.

        Only two kinds of job are looked at: one whose output went to an engine's local fallback
        file (contract 4.3: there only if this node can read it), and a running job that has not
        checkpointed yet (its output may be stored ahead of its record, for at most a checkpoint
        interval). There are at most as many of those as running slots, whatever the page."""
        if output_path is None and output_offset > 0:
            has_output = True
        elif _reads_files(output_offset, output_path, status):
            has_output = self._has_output(job_id)
        else:
            has_output = False
        return total_count is not None, has_output

    def _has_output(self, job_id: str) -> bool:
        try:
            stream = self.engine.open_output(self.engine.get_job(job_id))
        except JobNotFound:
            return False
        if stream is None:
            return False
        stream.close()
        return True

    def job_view(self, job: JobRecord) -> dict[str, Any]:
        """A job as ``GET`` shows it: ``task`` plus ``csvs`` when it has files (what a listing
        shows of it too, built by the store there: :meth:`listed`)."""
        view = task_json(job)
        has_input, has_output = self.files(
            job.id, job.total_count, job.output_offset, job.output_path, job.status.value
        )
        if has_input or has_output:
            view["csvs"] = ["in.csv"] * has_input + ["out.csv"] * has_output
        return view

    def listed(self, rows: Iterable[Sequence[Any]]) -> list[str]:
        """A listing's rows (each job's JSON text from the store, then :data:`FILE_COLUMNS`) as the
        JSON texts of :meth:`job_view`."""
        texts = []
        for document, job_id, _, total_count, output_offset, output_path, status in rows:
            if output_path is None and output_offset > 0:  # a finished job's case, inline
                member = _CSVS_MEMBER[total_count is not None, True]
            else:
                member = _CSVS_MEMBER.get(self.files(job_id, total_count, output_offset, output_path, status))
            texts.append(document if member is None else document[:-1] + member)
        return texts

    # ---- help and auth

    def help(self, call: Call) -> Response:
        category = call.request.query_params.get("category")
        action = call.request.query_params.get("action")
        if action is not None and category is None:
            raise ApiError(404, "bad identifier", ["unknown category or action"])
        try:
            doc = self.engine.help(category, action)
        except EngineError:
            raise ApiError(404, "bad identifier", ["unknown category or action"]) from None
        return self.envelope.success(call, {"tasks": doc})

    def api_auth(self, call: Call, body: bytes) -> Response:
        try:
            doc = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "invalid json", {"message": "the body is not valid JSON"}) from None
        data = doc.get("data") if isinstance(doc, dict) else None
        api_key = data.get("api_key") if isinstance(data, dict) else None
        if not isinstance(api_key, str) or not api_key:
            raise _validation("api_key", "required", "Field is required but missing")
        issued = keys.issue_token(self.engine.store, api_key, ttl_s=self.settings.token_ttl_s)
        if issued is None:
            raise INVALID_CREDENTIALS
        key, token, expires = issued
        call.token = token
        self._issued += 1
        if self._issued % _PRUNE_TOKENS_EVERY == 1:
            self.engine.store.prune_api_tokens()  # expired tokens would pile up, one per login
        return self.envelope.success(
            call,
            {
                "account_id": key.account_id,
                "api_key_id": key.id,
                "is_superadmin": key.superadmin,
                "expires": gregorian(expires),
            },
            status=201,
        )

    # ---- jobs

    def list_jobs(self, call: Call) -> Response:
        query = call.request.query_params
        paginate_value = query.get("paginate", "true")
        if paginate_value not in ("true", "false"):
            raise _validation("paginate", "enum", "paginate must be true or false")
        paginate = paginate_value == "true"
        raw_size = query.get("page_size")
        if raw_size is None:
            page_size = self.settings.page_size
        elif _NUMBER.fullmatch(raw_size) and 1 <= int(raw_size) <= 10000:
            page_size = int(raw_size)
        else:
            raise _validation("page_size", "type", "page_size must be an integer from 1 to 10000")
        start_key = query.get("start_key")
        if not paginate:
            return self._list_all(call)
        cache, key = self.listings, (call.account_id, page_size, start_key)
        at = 0  # the position the cache is at (when there is one)
        if cache is not None:
            # The feed's position read before the page's query (when the token was checked): what
            # is committed from then on shows in the feed the next time the cache catches up.
            position = call.position if call.position is not None else self.engine.store.changes(None)[0]
            at = cache.catch_up(position)
            page = cache.page(key)
            if page is not None:
                return self.envelope.success_json(call, page.body, page.revision, extra=page.extra)
        # Newest first (contract 8.4); one row more than the page tells whether another follows.
        listing = self._first_page(call.account_id, page_size)
        if start_key:
            # next_start_key is JobQuery's keyset position, opaque to clients (as Crossbar's
            # is): the next page starts after the last job shown, so jobs created (or removed)
            # between two pages never put a job on two pages, nor leave one off both.
            try:
                listing = listing.resume(start_key)
            except InvalidQuery:
                raise _validation("start_key", "type", "not a start_key given by this server") from None
        if cache is not None and cache.keeps_jobs:
            ids, texts, last, keepable = self._page_of_kept_jobs(cache, at, listing, page_size)
        else:
            ids, texts, last, keepable = self._page_read(listing, page_size)
        next_key = None if last is None else listing.page_token(SimpleNamespace(id=last[0], created=last[1]))
        body = b"[" + b",".join(texts) + b"]"
        page = Page(body, revision(body), {"page_size": len(texts), "start_key": start_key, "next_start_key": next_key})
        if cache is not None and keepable:
            assert call.account_id is not None
            cache.put_page(at, key, call.account_id, ids, page)
        return self.envelope.success_json(call, page.body, page.revision, extra=page.extra)

    def _page_read(
        self, listing: JobQuery, page_size: int
    ) -> tuple[list[str], list[bytes], tuple[str, float] | None, bool]:
        """A listing page read from the store: its jobs' ids and texts, the (id, created) of its
        last job when another page follows, and whether the page may be kept. A page whose csvs
        came from a file (a running job, an output in a fallback file) can change with no change
        in the feed (output appended before a checkpoint): it is never kept."""
        with self.engine.iter_job_documents(
            listing, epoch=GREGORIAN_OFFSET, nulls=False, columns=FILE_COLUMNS
        ) as found:
            rows = list(found)
        more = len(rows) > page_size
        del rows[page_size:]
        last = (rows[-1][1], rows[-1][2]) if more else None
        texts = [text.encode() for text in self.listed(rows)]
        return [row[1] for row in rows], texts, last, not any(_reads_files(*row[4:]) for row in rows)

    def _page_of_kept_jobs(
        self, cache: ListingCache, at: int, listing: JobQuery, page_size: int
    ) -> tuple[list[str], list[bytes], tuple[str, float] | None, bool]:
        """:meth:`_page_read` with the jobs' texts the cache keeps: the page's keys from the
        store's index, and from the store only the jobs not kept (changed since, or never read).
        A job whose csvs came from a file is not kept, nor is its page."""
        with self.engine.iter_jobs(listing, _KEY_COLUMNS) as found:
            keys = list(found)
        more = len(keys) > page_size
        del keys[page_size:]
        ids = [job_id for job_id, _ in keys]
        texts = cache.texts(ids)
        keepable = True
        if None in texts:
            rows = self.engine.job_documents(
                [job_id for job_id, text in zip(ids, texts, strict=True) if text is None],
                epoch=GREGORIAN_OFFSET,
                nulls=False,
                columns=FILE_COLUMNS,
            )
            read = dict(zip(rows, (text.encode() for text in self.listed(rows.values())), strict=True))
            for job_id, row in rows.items():
                if _reads_files(*row[4:]):
                    keepable = False
                else:
                    cache.put_text(at, job_id, read[job_id])
            texts = [text if text is not None else read.get(job_id) for job_id, text in zip(ids, texts, strict=True)]
        # A job removed between the two reads is left out, as a page read a moment later would
        # (the feed moved: put_page will not keep the page).
        shown = [(job_id, text) for job_id, text in zip(ids, texts, strict=True) if text is not None]
        last = (keys[-1][0], keys[-1][1]) if more else None
        return [job_id for job_id, _ in shown], [text for _, text in shown], last, keepable

    def _first_page(self, account_id: str | None, page_size: int) -> JobQuery:
        """The query of an account's first page (one row more than the page), kept: building and
        checking a JobQuery was a tenth of a page's own work."""
        key = (account_id, page_size)
        query = self._queries.get(key)
        if query is None:
            if len(self._queries) >= _QUERIES_KEPT:
                self._queries.clear()
            query = self._queries[key] = JobQuery(account_id=account_id, limit=page_size + 1)
        return query

    def _list_all(self, call: Call) -> Response:
        """``paginate=false``: every job of the account, newest first, streamed from one store
        query, so 100,000 jobs never sit in memory at once (``page_size`` follows the data)."""
        envelope = self.envelope
        rows = self.engine.iter_job_documents(
            JobQuery(account_id=call.account_id), epoch=GREGORIAN_OFFSET, nulls=False, columns=FILE_COLUMNS
        )

        def body() -> Iterator[bytes]:
            # The revision follows the data (contract 8.3), hashed as it streams: the same as
            # revision() of the whole data, which a page of the same jobs answers.
            count = 0
            digest = hashlib.sha256(b"[")
            yield b'{"status":"success","data":['
            with rows:
                while batch := self.listed(itertools.islice(rows, _ROWS_PER_WRITE)):
                    chunk = (b"," if count else b"") + ",".join(batch).encode()
                    digest.update(chunk)
                    yield chunk
                    count += len(batch)
            digest.update(b"]")
            revision = digest.hexdigest()[:32].encode()
            yield b'],"revision":"%s",%s}' % (revision, envelope.meta(call, {"page_size": count}))

        return StreamingResponse(body(), headers={"content-type": JSON, "x-request-id": call.request_id})

    def get_job(self, call: Call, job_id: str) -> Response:
        job = self.job(call, job_id)
        if _wants_csv(call.request):
            return self.download(call, job, call.request.query_params.get("csv_name") or "out.csv")
        return self.envelope.success(call, {"_read_only": self.job_view(job)})

    def download(self, call: Call, job: JobRecord, name: str) -> Response:
        if name == "in.csv":
            stream = self.engine.open_input(job)
        elif name == "out.csv":
            stream = self.engine.open_output(job)
        else:  # a name is never a path: only the two files a job has
            stream = None
        if stream is None:
            raise _bad_job(job.id)
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        if size == 0:
            stream.close()
            return Response(status_code=204, headers={"x-request-id": call.request_id})
        headers = {
            "content-type": "text/csv",
            "content-length": str(size),
            "content-disposition": _content_disposition(job, name),
            "x-request-id": call.request_id,
        }
        if call.request.method == "HEAD":  # the size and the name, not the file
            stream.close()
            return Response(headers=headers)
        return StreamingResponse(_read_chunks(stream, size), headers=headers)

    def start(self, call: Call, job_id: str) -> Response:
        job = self.job(call, job_id)
        try:
            job = self.engine.start_job(job.id, once=True)
        except InvalidJobState:
            raise _bad_job(job.id, "task already started") from None
        return self.envelope.success(call, {"_read_only": task_json(job)})

    def remove(self, call: Call, job_id: str) -> Response:
        job = self.job(call, job_id)
        try:
            job = self.engine.remove_job(job.id)
        except InvalidJobState:
            raise _bad_job(job.id) from None
        return self.envelope.success(call, {"_read_only": task_json(job)})

    async def stop(self, call: Call, job_id: str) -> Response:
        job = await self.run(self.job, call, job_id)
        try:
            job = await self.run(self.engine.stop_job, job.id)
        except InvalidJobState:
            raise _bad_job(job.id, "task is not running") from None
        # Contract 8.4: answer once the job is stopped, or after 2 s with the job as it then is.
        # The engine that runs it may be another process: its store row is the truth.
        deadline = time.monotonic() + _STOP_WAIT_S
        while job.status is JobStatus.EXECUTING and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            try:
                job = await self.run(self.engine.get_job, job.id)
            except JobNotFound:
                raise bad_identifier(job_id) from None
        return self.envelope.success(call, {"_read_only": task_json(job)})

    async def create(self, call: Call) -> Response:
        query = call.request.query_params
        category, action = query.get("category"), query.get("action")
        for name, value in (("category", category), ("action", action)):
            if not value:
                raise _validation(name, "required", "Field is required but missing")
        assert category is not None and action is not None
        if await self.run(self.engine.task, category, action) is None:
            raise ApiError(404, "bad identifier", ["unknown_category_action"])
        fmt = self._body_format(call.request)
        spool = await self._spool(call.request)
        try:
            if fmt is None or fmt == _FORM:
                sniffed = "csv" if spool is None else _sniff_format(spool)
                if fmt == _FORM and sniffed != "json" and spool is not None:
                    raise _UNSUPPORTED_MEDIA
                fmt = sniffed
            return await self.run(self._add, call, category, action, spool, fmt, query.get("file_name"))
        finally:
            if spool is not None:
                spool.close()
                os.unlink(spool.name)

    @staticmethod
    def _body_format(request: Request) -> str | None:
        """``csv`` or ``json`` by the Content-Type; None when there is none, and :data:`_FORM`
        for curl's default type, which Crossbar reads as JSON when it is not a form (the JSON
        example of Kazoo's tasks.md sends it): the body tells (:func:`_sniff_format`)."""
        media = _media_types(request.headers.get("content-type", ""))
        if not media:
            return None
        if media[0] in CSV_TYPES:
            return "csv"
        if media[0] in JSON_TYPES:
            return "json"
        if media[0] == _FORM:
            return _FORM
        raise _UNSUPPORTED_MEDIA

    async def _spool(self, request: Request) -> Any:
        """The body in a private temporary file (None when empty), read in chunks: never whole
        in memory. Over ``api.max_upload_bytes`` it is refused before anything is stored."""
        limit = self.settings.max_upload_bytes
        too_large = ApiError(413, "request entity too large", {"max_bytes": limit})
        declared = request.headers.get("content-length")
        if declared is not None and _NUMBER.fullmatch(declared) and int(declared) > limit:
            raise too_large
        os.makedirs(self.spool_dir, mode=0o700, exist_ok=True)
        # Not a with block: the open spool is what this returns (the caller closes and unlinks it).
        spool = tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="upload.", delete=False)
        size = 0
        chunks = request.stream().__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout(_BODY_IDLE_S):  # a client dripping its body
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise ApiError(
                        408, "request timeout", {"message": f"no part of the body arrived for {_BODY_IDLE_S:g} s"}
                    ) from None
                size += len(chunk)
                if size > limit:
                    raise too_large
                spool.write(chunk)
            spool.flush()
        except BaseException:
            spool.close()
            os.unlink(spool.name)
            raise
        if size == 0:
            spool.close()
            os.unlink(spool.name)
            return None
        spool.seek(0)
        return spool

    def _add(self, call: Call, category: str, action: str, spool: Any, fmt: str, file_name: str | None) -> Response:
        assert call.key is not None
        try:
            job = self.engine.add_job(
                category,
                action,
                input=spool,
                fmt=fmt,
                file_name=file_name,
                account_id=call.account_id,
                auth_account_id=call.key.account_id,
            )
        except JobRejected as exc:
            raise self._rejected(exc.errors, spool, fmt) from None
        return self.envelope.success(call, {"_read_only": task_json(job)}, status=201)

    @staticmethod
    def _rejected(errors: dict[str, Any], spool: Any, fmt: str) -> ApiError:
        if "unknown_task" in errors:
            return ApiError(404, "bad identifier", ["unknown_category_action"])
        if "csv" in errors:
            err = errors["csv"]
            return ApiError(
                400, "validation error", {"csv": {"format": {"message": err["message"], "line": err["line"]}}}
            )
        data: dict[str, Any] = {}
        for name in ("missing_mandatory_fields", "expected_content"):
            if name in errors:
                data[name] = errors[name]
        if "missing_mandatory_values" in errors and spool is not None:
            data["missing_mandatory_values"] = csv_lines_at(
                spool.name, fmt, errors["missing_mandatory_values"]["lines"]
            )
        return ApiError(400, "bad request", data)


# ------------------------------------------------------------------------------- routing


Handler = Callable[[Api, Call, dict[str, str]], Awaitable[Response]]


def _sync(
    method: Callable[..., Response], *, auth: bool = True, bounded: Callable[[Api, Call], bool] | None = None
) -> Handler:
    """A handler whose whole work (authentication included) is one trip to the thread pool; or,
    when ``bounded`` says the answer reads little and the store's reads never wait
    (:attr:`Api.local_reads`), no trip: done on the event loop."""

    async def handler(api: Api, call: Call, params: dict[str, str]) -> Response:
        def work() -> Response:
            if auth:
                api.authenticate(call, params.get("account_id"))
            args = [params["job_id"]] if "job_id" in params else []
            return method(api, call, *args)

        if bounded is not None and api.local_reads and bounded(api, call):
            return work()
        return await api.run(work)

    return handler


_INLINE_ROWS = 100  # a listing page of at most this many jobs is read on the event loop


def _always(api: Api, call: Call) -> bool:
    return True


def _small_page(api: Api, call: Call) -> bool:
    query = call.request.query_params
    size = query.get("page_size")
    if query.get("paginate") == "false":
        return False
    if size is None:
        return api.settings.page_size <= _INLINE_ROWS
    return not _NUMBER.fullmatch(size) or int(size) <= _INLINE_ROWS  # a bad page_size is refused at once


def _async(method: Callable[..., Awaitable[Response]]) -> Handler:
    async def handler(api: Api, call: Call, params: dict[str, str]) -> Response:
        await api.run(api.authenticate, call, params.get("account_id"))
        args = [params["job_id"]] if "job_id" in params else []
        return await method(api, call, *args)

    return handler


async def _api_auth(api: Api, call: Call, params: dict[str, str]) -> Response:
    body = bytearray()
    async for chunk in call.request.stream():
        body += chunk
        if len(body) > _SMALL_BODY:
            raise ApiError(413, "request entity too large", {"max_bytes": _SMALL_BODY})
    return await api.run(api.api_auth, call, bytes(body))


async def _openapi(api: Api, call: Call, params: dict[str, str]) -> Response:
    from kzconsole.api.openapi import document

    catalog = await api.run(api.engine.help)
    return Response(_dumps(document(api.settings, catalog, ROUTES)), headers={"content-type": JSON})


def _download(name: str) -> Callable[..., Response]:
    def method(api: Api, call: Call, job_id: str) -> Response:
        return api.download(call, api.job(call, job_id), name)

    return method


# (path without the /v2/accounts/{account_id} part, {verb: handler}); each path is served with
# and without that part (contract 8.4).
_JOB_PATHS: list[tuple[str, dict[str, Handler]]] = [
    (
        "/tasks/{job_id}",
        {"GET": _sync(Api.get_job, bounded=_always), "PATCH": _sync(Api.start), "DELETE": _sync(Api.remove)},
    ),
    ("/tasks/{job_id}/stop", {"PATCH": _async(Api.stop)}),
    ("/tasks/{job_id}/input", {"GET": _sync(_download("in.csv"))}),
    ("/tasks/{job_id}/output", {"GET": _sync(_download("out.csv"))}),
]

# Tried in order: what front ends poll most (an account's jobs, one job) first.
ROUTES: list[tuple[str, dict[str, Handler]]] = [
    ("/v2/accounts/{account_id}/tasks", {"GET": _sync(Api.list_jobs, bounded=_small_page), "PUT": _async(Api.create)}),
    *((f"/v2/accounts/{{account_id}}{path}", verbs) for path, verbs in _JOB_PATHS),
    ("/v2/tasks", {"GET": _sync(Api.help, auth=False), "PUT": _async(Api.create)}),
    *((f"/v2{path}", verbs) for path, verbs in _JOB_PATHS),
    ("/v2/api_auth", {"PUT": _api_auth}),
    ("/v2/openapi.json", {"GET": _openapi}),
]


# A request id only has to be unique (it names a request in logs, as Crossbar's do): a random
# prefix for this process and a counter, where 16 random bytes a request cost a system call.
_REQUEST_PREFIX = os.urandom(8).hex()
_REQUEST_COUNTER = itertools.count(1)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    # Echoed in a header: keep it printable and short.
    if given and len(given) <= 200 and given.isprintable():
        return given
    return f"{_REQUEST_PREFIX}{next(_REQUEST_COUNTER):016x}"


class _Endpoint:
    """One path's ASGI app. An object, not a function, so that Starlette routes every verb to it
    and the 405 (with the verbs allowed) is ours, in the envelope."""

    def __init__(self, api: Api, verbs: dict[str, Handler]) -> None:
        self.api = api
        self.allowed = sorted(verbs)  # Kazoo's list, as the 405's data gives it
        # HEAD is GET without the content (RFC 9110 9.3.2): the same handler, whose answer the
        # server sends without its body (a download reads no file: Api.download).
        self.verbs = {**verbs, "HEAD": verbs["GET"]} if "GET" in verbs else verbs
        self.allow = ", ".join([*sorted(self.verbs), "OPTIONS"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(Request(scope, receive))
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        api, verbs, allowed = self.api, self.verbs, self.allowed
        call = Call(request=request, request_id=_request_id(request))
        method = request.method
        if method == "POST":
            # Crossbar's tunnel for clients that cannot send PUT, PATCH or DELETE: POST with
            # ?verb=... (api_util:get_http_verb), or the X-HTTP-Method-Override header CORS allows.
            tunnelled = request.query_params.get("verb") or request.headers.get("x-http-method-override")
            if tunnelled:
                method = tunnelled.strip().upper()
        handler = verbs.get(method)
        try:
            if handler is None:
                raise ApiError(405, "method not allowed", {"allowed": allowed}, headers={"allow": self.allow})
            return await handler(api, call, dict(request.path_params))
        except ApiError as err:
            return api.envelope.error(call, err)
        except StoreError as exc:
            log.error("store error answering %s %s: %s", request.method, request.url.path, exc)
            return api.envelope.error(call, ApiError(503, "store unavailable", {"message": str(exc)}))
        except EngineError as exc:
            return api.envelope.error(call, ApiError(400, "bad request", {"message": str(exc)}))


_CORS_COMMON = (
    (b"access-control-allow-methods", CORS_METHODS.encode()),
    (b"access-control-allow-headers", CORS_HEADERS.encode()),
    (b"access-control-expose-headers", CORS_EXPOSED.encode()),
    (b"access-control-max-age", b"86400"),
)
_CORS_ANY_ORIGIN = [*_CORS_COMMON, (b"access-control-allow-origin", b"*")]


class Cors:
    """CORS on every answer, and a 200 to every ``OPTIONS`` (a preflight needs no token):
    Monster UI is served from another origin than the API (contract 8.3)."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(o.encode("latin-1") for o in origins)

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        if self.any_origin:
            return _CORS_ANY_ORIGIN
        headers = list(_CORS_COMMON)
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin in self.origins:
            headers.append((b"access-control-allow-origin", origin))
        headers.append((b"vary", b"Origin"))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers(scope)
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200, "headers": [*extra, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def build_app(api: Api) -> ASGIApp:
    """The ASGI application serving ``api``'s engine (started or not: ``--no-engine`` serves the
    store)."""
    routes = [Route(path, _Endpoint(api, verbs)) for path, verbs in ROUTES]

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        call = Call(request=request, request_id=_request_id(request))
        err = ApiError(404, "not found", {"message": f"no such path: {request.url.path}"})
        await api.envelope.error(call, err)(scope, receive, send)

    # No redirect for a trailing slash (Starlette's default, a 307 without an envelope that a PUT
    # would have to send again): as in Crossbar, /v2/tasks/ is /v2/tasks (_TrailingSlash).
    router = Router(routes=routes, default=not_found, redirect_slashes=False)
    return Cors(_HeadLimit(_TrailingSlash(_Errors(router, api)), api), tuple(api.settings.cors_origins))


class _HeadLimit:
    """A request whose head (request line and header fields) is over :data:`MAX_HEAD_BYTES` is
    a 431, in the envelope."""

    def __init__(self, app: ASGIApp, api: Api) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > MAX_HEAD_BYTES:
                request = Request(scope, receive)
                call = Call(request=request, request_id=_request_id(request))
                err = ApiError(431, "request header fields too large", {"max_bytes": MAX_HEAD_BYTES})
                await self.api.envelope.error(call, err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TrailingSlash:
    """A path ending in ``/`` is answered as the same path without it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


class _Errors:
    """A bug in a handler still answers a JSON envelope (500) and is logged with its traceback."""

    def __init__(self, app: ASGIApp, api: Api) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:
            # The client hung up while sending its body: nothing to answer, nothing stored (the
            # spool is gone), and no bug of the server's.
            log.info("%s %s: the client went away before its body was read", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("error answering %s %s", scope.get("method"), scope.get("path"))
            if started or scope["type"] != "http":
                raise
            request = Request(scope, receive)
            call = Call(request=request, request_id=_request_id(request))
            err = ApiError(500, "internal error", {"message": "internal error (logged by the server)"})
            await self.api.envelope.error(call, err)(scope, receive, send)
