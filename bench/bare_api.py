"""The baseline of bench_api.py: one Starlette endpoint answering a fixed small JSON document,
served by the same uvicorn server as ``kzconsole serve`` (kzconsole.api.serve.make_server).

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


async def bare(request: Request) -> Response:
    return Response(BODY, headers={"content-type": "application/json"})


def main() -> None:
    sock = bind("127.0.0.1:0")  # the socket kzconsole serve makes
    with open(sys.argv[1], "w") as f:
        f.write(str(sock.getsockname()[1]))
    make_server(Starlette(routes=[Route("/bare", bare)])).run(sockets=[sock])


if __name__ == "__main__":
    main()
