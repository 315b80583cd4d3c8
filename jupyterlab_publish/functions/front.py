"""The server's front door: accept connections and give invocations straight to their worker.

A proxy hop in Python costs more than a trivial function call (measured: a bare Starlette endpoint
on httptools+uvloop answers ~29k requests/s on 2 cores; the same endpoint behind any Python proxy
reaches well under half). So the front accepts each TCP connection itself, *peeks* at its request
line (nothing is consumed), and when it is a call of a function whose worker can take connections,
passes the socket to that worker process (SCM_RIGHTS over the worker's AF_UNIX control socket). The
worker then serves that client directly for the connection's whole keep-alive life: its routing,
auth and metrics run there. Everything else (admin API, /healthz, /metrics, a function whose worker
is not running yet) is served by the server's own Starlette app through uvicorn's protocol.

Requests a worker relays back to the server (paths that are not its function's) arrive on a second,
private listener whose connections are never handed off: a relayed request cannot loop back to a
worker, whatever its path. Every connection the server serves itself has a bounded head
(``GuardedHead``: 431 past ``max_header_bytes``, closed if the head is not in by ``header_timeout``),
and at most ``max_pending`` connections wait unrouted at once (the oldest is dropped first).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import socket
import time
from typing import Callable, Optional

from ..errors import PublishError
from ..names import ENDPOINT_NAME
from .settings import DEFAULT_HEADER_TIMEOUT

log = logging.getLogger("jupyterlab_publish.functions")

# Only calls: `POST /functions/<name>`, optionally with a query (names follow the one endpoint-name
# rule). Any longer path (`/functions/<name>/x`) is the server's to answer: a worker would relay it
# straight back. The function's pages (GET) are answered by the server, which knows its versions; a
# connection that starts with one simply stays with the server, whose proxy serves any calls made on
# it later.
_NAME = ENDPOINT_NAME.pattern.removeprefix("^").removesuffix("$").encode("ascii")
_FUNCTION_REQUEST = re.compile(rb"^POST /functions/(" + _NAME + rb")(?:[? ]|$)")
_PEEK_BYTES = 8192  # a whole ordinary head; a larger one is read by the server's own parser
# A client must send a whole request head within this many seconds (``serve --header-timeout``);
# one that says nothing is dropped by the front door, one slow to finish is closed by GuardedHead.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024  # request line and headers; 431 beyond
DEFAULT_MAX_PENDING = 512  # connections accepted but not yet routed, at once
_REQUEST_LINE_WAIT = 1.0


def function_name(head: bytes) -> Optional[str]:
    """The function a request line addresses, if it is one a worker can serve, else None."""
    match = _FUNCTION_REQUEST.match(head)
    return match.group(1).decode("ascii") if match else None


def _head_complete(head: bytes) -> bool:
    return b"\r\n\r\n" in head or b"\n\n" in head


async def _peek_head(loop: asyncio.AbstractEventLoop, conn: socket.socket,
                     timeout: float = DEFAULT_HEADER_TIMEOUT) -> Optional[bytes]:
    """The request's first bytes without consuming them, once its head is in (or ``_PEEK_BYTES`` of it);
    b"" if the client closed; None if the head is slow to come (the server's guarded parser reads it).

    Only a connection whose first head is complete is handed to a worker: a slow or oversized head
    stays with the server, whose parser bounds its size and the time it may take (``guarded_head``).
    """
    started = time.monotonic()
    while True:
        readable = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, timeout)
        finally:
            loop.remove_reader(conn.fileno())
        try:
            head = conn.recv(_PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        if not head or _head_complete(head) or len(head) >= _PEEK_BYTES:
            return head
        # Part of a head: the rest is on its way. Readiness stays level-triggered while the bytes
        # sit unread, so wait a little instead of spinning on the selector.
        if time.monotonic() - started > _REQUEST_LINE_WAIT:
            return None
        await asyncio.sleep(0.002)


class Front:
    """Accept loop over the public socket. ``serve_locally(conn)`` hands a socket to uvicorn."""

    def __init__(self, listener: socket.socket, workers: dict, serve_locally: Callable[[socket.socket], None],
                 counters: Optional[dict] = None, *, relay_listener: Optional[socket.socket] = None,
                 header_timeout: float = DEFAULT_HEADER_TIMEOUT, max_pending: int = DEFAULT_MAX_PENDING):
        self.listener = listener
        # Where workers relay the requests that are not theirs (their --upstream): never handed off.
        self.relay_listener = relay_listener
        self.workers = workers  # name -> the live version's worker pool (FunctionService.workers)
        self.serve_locally = serve_locally
        self.counters = counters if counters is not None else {}
        self.counters.setdefault("handed_off", 0)
        self.header_timeout = header_timeout
        self.max_pending = max_pending
        self._pending: "collections.OrderedDict[asyncio.Task, None]" = collections.OrderedDict()
        self._accepting: list = []

    def start(self, backlog: int = 2048) -> None:
        loop = asyncio.get_running_loop()
        for listener, route in ((self.listener, True), (self.relay_listener, False)):
            if listener is None:
                continue
            listener.listen(backlog)  # bound, not yet listening: uvicorn used to do this for us
            listener.setblocking(False)
            self._accepting.append(loop.create_task(self._accept_forever(listener, route)))

    async def close(self) -> None:
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        self._accepting = []
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _accept_forever(self, listener: socket.socket, route: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not route:  # a worker's relayed request: the server answers it, whatever it is
                self._serve_locally(conn)
                continue
            if len(self._pending) >= self.max_pending:
                # Idle connections must not crowd out real clients: the one waiting longest goes.
                oldest = next(iter(self._pending))
                del self._pending[oldest]
                oldest.cancel()
            task = loop.create_task(self._route(conn))
            self._pending[task] = None
            task.add_done_callback(self._routed)

    def _routed(self, task: asyncio.Task) -> None:
        self._pending.pop(task, None)

    def _serve_locally(self, conn: socket.socket) -> None:
        try:
            self.serve_locally(conn)
        except Exception:
            log.exception("could not serve a connection")
            conn.close()

    async def _route(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = await _peek_head(loop, conn, self.header_timeout)
        except (asyncio.TimeoutError, OSError):
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        if head == b"":
            conn.close()
            return
        name = function_name(head) if head and _head_complete(head) else None
        if name is not None and self._hand_off(name, conn):
            return
        self._serve_locally(conn)

    def _hand_off(self, name: str, conn: socket.socket) -> bool:
        pool = self.workers.get(name)
        if pool is None:
            return False
        worker = pool.next_handoff_worker()

        def route_again(taken_back: socket.socket) -> None:
            # A connection its worker let go of between requests (it died, or drained for a new
            # version): routed afresh, so its next request is handed to a running worker.
            task = asyncio.get_running_loop().create_task(self._route(taken_back))
            self._pending[task] = None
            task.add_done_callback(self._routed)

        # False: the worker is gone or its queue is full, and our app serves this one (and restarts
        # it). True: the worker serves it; we keep a copy only where the runtime shares its slot
        # table (contract 3), to answer the client should the worker die mid-call, or to route it
        # again should the worker let it go between requests.
        if worker is None or not worker.hand_off(conn, route_again):
            return False
        self.counters["handed_off"] += 1
        return True


def bind_relay_listener(public: socket.socket) -> tuple:
    """(socket, URL) of the private listener workers relay to: loopback, a port of the system's choosing."""
    family = public.family
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    return sock, f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"


class _HeadTooLarge(Exception):
    pass


def _error_bytes(error: PublishError) -> bytes:
    body = json.dumps(error.http_body()).encode("utf-8")
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (error.http_status, _REASONS.get(error.http_status, b"Error"), len(body))
            + body)


_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}
_LINGER = 2.0  # seconds a refused client's remaining bytes are read and dropped before closing


def guarded_head(protocol_class: type, max_header_bytes: int, header_timeout: float) -> type:
    """``protocol_class`` (uvicorn's httptools protocol) with a bounded request head.

    A head (request line and headers) over ``max_header_bytes`` is answered 431 and the connection
    closed; a head not complete ``header_timeout`` seconds after the connection opened (or after the
    request began, on a kept-alive connection) closes the connection. Idle kept-alive connections
    are uvicorn's own ``timeout_keep_alive``. Malformed requests get a JSON 400 instead of text.
    Any other protocol class (h11, if httptools were missing) is returned as it is.
    """
    if not all(hasattr(protocol_class, hook) for hook in ("on_url", "on_header", "send_400_response")):
        return protocol_class

    class GuardedHead(protocol_class):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._head_bytes = 0  # of the current head, counted by the parser's callbacks
            self._head_raw = 0  # bytes received while a head was being read (the parser buffers them)
            self._in_head = True
            self._head_done = False
            self._too_large = False
            self._refused = False
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def connection_lost(self, exc) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered: what still comes is discarded until the lingering close
            self._head_done = False
            super().data_received(data)
            if self._in_head and not self._head_done and not self._refused:
                self._head_raw += len(data)
                if self._head_raw > max_header_bytes:
                    self._refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0
            self._in_head = True
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            self._in_head, self._head_done, self._head_raw = False, True, 0
            super().on_headers_complete()

        def _count(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > max_header_bytes:
                self._too_large = True
                raise _HeadTooLarge  # stops the parser; uvicorn answers through send_400_response

        def send_400_response(self, msg: str) -> None:
            if self._too_large:
                error = _head_too_large(max_header_bytes)
            else:
                error = PublishError("bad_request", f"the request is not valid HTTP/1.1: {msg}",
                                     "send a well-formed HTTP/1.1 request")
            self._refused = True
            self.transport.write(_error_bytes(error))
            # A lingering close: closing with the client's bytes unread would send a reset, which can
            # destroy the answer before the client reads it. So say we are done, discard what still
            # comes for a moment, then close.
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.loop.call_later(_LINGER, self.transport.close)
            else:
                self.transport.close()

        def _refuse_head(self) -> None:
            self._too_large = True
            self._stop_head_timer()
            self.send_400_response("")

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._in_head or self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A pipelined head waits (reading paused) behind a response still being made: give
                # that response its time; the head's clock starts again.
                self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)
                return
            self.transport.close()

    return GuardedHead


def _head_too_large(limit: int) -> PublishError:
    return PublishError("headers_too_large", f"the request line and headers exceed {limit} bytes",
                        "send fewer or shorter headers (large data belongs in the body)")


def uvicorn_protocol_factory(server, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                             header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> Callable:
    """The protocol factory uvicorn's own startup builds, for connections we accept ourselves,
    with the head bounded (``guarded_head``)."""
    config = server.config
    protocol_class = guarded_head(config.http_protocol_class, max_header_bytes, header_timeout)

    def create_protocol(_loop=None):
        return protocol_class(
            config=config, server_state=server.server_state, app_state=server.lifespan.state, _loop=_loop
        )

    return create_protocol


__all__ = ["DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_HEADER_BYTES", "DEFAULT_MAX_PENDING", "Front",
           "bind_relay_listener", "function_name", "guarded_head", "uvicorn_protocol_factory"]
