"""``kzconsole serve``: the API on uvicorn, with the engine embedded unless ``--no-engine``.

The listening socket is bound here, before uvicorn starts, so that ``--listen 127.0.0.1:0`` gets
a free port and the line printed on stderr names the real address (tests and scripts read it).
SIGINT and SIGTERM are uvicorn's: it stops accepting, lets answers in flight finish (at most
``_GRACE_S``), and returns; then the engine stops as ``kzconsole engine`` does (running jobs
checkpoint and resume at the next start).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

from kzconsole.config import split_listen

log = logging.getLogger("kzconsole.api")

_GRACE_S = 10  # a download in flight at shutdown gets this long to finish
_KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long
_HEAD_TIMEOUT_S = 5  # so is one whose request head is not complete this long after it began
_MAX_HEADER_BYTES = 16 * 1024  # = app.MAX_HEAD_BYTES: a head still incomplete past it is refused (h11's limit)


class ServeError(Exception):
    pass


_HEAD_BYTES = 8 * 1024  # a write this short may be a response's head: held for the body


class _HeadWithBody:
    """A connection's transport, as uvicorn's protocol writes to it, where a short write (a
    response's status line and headers) is held until the next write (the body) or the end of the
    event loop's step, and the two go out as one. uvicorn writes the head and the body apart: two
    system calls and, with Nagle's algorithm off (see :func:`bind`), the head alone in a packet
    of its own, which wakes the client once for the head and again for the body. Measured on the
    bare endpoint's 22 KB page: 5,300 -> 8,700 requests/s, 110 -> 95 us of server CPU a request."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif len(data) <= _HEAD_BYTES:
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:  # in order with what is held (uvicorn does not call it)
        self.write(b"".join(chunks))

    def close(self) -> None:
        self._flush()  # what is held goes out before the connection closes
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


def _protocol() -> type:
    """uvicorn's HTTP/1.1 protocol with a deadline on request heads.

    uvicorn closes idle keep-alive connections, but waits without end for a request head that
    never completes: a client that connects and says nothing, or drips a header a byte at a time,
    holds a connection for ever (and enough of them hold the server). Here every head must be
    complete ``_HEAD_TIMEOUT_S`` after the connection opened or the previous answer ended.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadlineProtocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(_HeadWithBody(transport, self.loop))
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._arm()  # still waiting for (the rest of) a head
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(_HEAD_TIMEOUT_S, self._head_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineProtocol


def bind(listen: str) -> socket.socket:
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        raise ServeError(f"--listen: {exc}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that
    # say they are TCP; without it every answer written in two parts waited ~40 ms for an ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_tls(cert: str, key: str) -> None:
    """Load the certificate and key now, so that a wrong path or a key that does not match the
    certificate is an error naming them, before anything starts."""
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ServeError(f"api.tls_cert {cert} / api.tls_key {key}: cannot be used: {reason}") from None


def make_server(app: Any, *, tls_cert: str | None = None, tls_key: str | None = None) -> Any:
    """The uvicorn server of ``kzconsole serve`` for ``app`` (the benchmark's bare endpoint is
    served by the same one)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_config=None,  # kzconsole's logging: one format on stderr
        access_log=False,
        lifespan="off",
        http=_protocol(),
        timeout_keep_alive=_KEEP_ALIVE_S,
        timeout_graceful_shutdown=_GRACE_S,
        h11_max_incomplete_event_size=_MAX_HEADER_BYTES,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        server_header=False,
    )
    return uvicorn.Server(config)


def serve(settings: Any, *, listen: str | None, run_engine: bool, node: str | None = None) -> int:
    from kzconsole.api.app import Api, build_app
    from kzconsole.engine import Engine

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    if settings.api.tls_cert:
        check_tls(settings.api.tls_cert, settings.api.tls_key)
    sock = bind(listen or settings.api.listen)
    engine = Engine(settings, node=node)
    api = None
    try:
        _ = engine.catalog  # plugins load now, not in the first request
        if run_engine:
            engine.start()
        host, port = sock.getsockname()[:2]
        scheme = "https" if settings.api.tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        api = Api(engine, settings)
        server = make_server(build_app(api), tls_cert=settings.api.tls_cert, tls_key=settings.api.tls_key)

        def on_signal(signum: int, frame: Any) -> None:
            server.should_exit = True

        # uvicorn handles SIGINT/SIGTERM while it serves, then restores the handlers it found and
        # raises the signal again: with the defaults that would kill the process before the
        # engine stopped. These make the re-raised signal a no-op, and stop a server not started.
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        log.info(
            "serving the API on %s://%s:%d/v2 (%s); Ctrl-C to stop",
            scheme,
            shown,
            port,
            f"engine {engine.node}" if run_engine else "no engine: another process runs the jobs",
        )
        sys.stderr.flush()
        server.run(sockets=[sock])
    finally:
        sock.close()
        if api is not None:
            api.close()
        stuck = engine.stop()
        if stuck:
            log.warning(
                "jobs still inside a row at exit (they resume from their last checkpoint): %s", ", ".join(stuck)
            )
        engine.close()
    return 0
