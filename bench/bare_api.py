"""The baseline of bench_api.py: one Starlette endpoint answering a fixed small JSON document,
served by the same uvicorn server as ``kzconsole serve`` (kzconsole.api.serve.make_server).
``/bare-page`` answers a fixed document the size of a listing page of 50 jobs (~22 KB), which
tells what moving a page's bytes costs this server and the client, with no work at all.

    python bench/bare_api.py PORT_FILE
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kzconsole.api.serve import bind, make_server

BODY = b'{"status":"success","data":{"id":"0123456789abcdef0123456789abcdef"}}'
_JOB = (
    b'{"id":"0123456789abcdef0123456789abcdef","account_id":"00000000000000000000000000000001",'
    b'"auth_account_id":"00000000000000000000000000000001","category":"number_management",'
    b'"action":"import","file_name":"input-12345.csv","status":"success","created":63900000000,'
    b'"start_timestamp":63900000001,"end_timestamp":63900000002,"total_count":1234,'
    b'"success_count":1200,"failure_count":34,"node":"seed:1:000000","output_rows":1234,'
    b'"wait_after_row_ms":0,"csvs":["in.csv","out.csv"]}'
)
PAGE = b'{"status":"success","data":[' + b",".join([_JOB] * 50) + b'],"page_size":50}'


async def bare(request: Request) -> Response:
    return Response(BODY, headers={"content-type": "application/json"})


async def bare_page(request: Request) -> Response:
    return Response(PAGE, headers={"content-type": "application/json"})


def main() -> None:
    sock = bind("127.0.0.1:0")  # the socket kzconsole serve makes
    with open(sys.argv[1], "w") as f:
        f.write(str(sock.getsockname()[1]))
    make_server(Starlette(routes=[Route("/bare", bare), Route("/bare-page", bare_page)])).run(sockets=[sock])


if __name__ == "__main__":
    main()
