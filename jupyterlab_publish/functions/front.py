"""The server's front door: accept connections and give invocations straight to their worker.

A proxy hop in Python costs more than a trivial function call (measured: a bare Starlette endpoint
on httptools+uvloop answers ~29k requests/s on 2 cores; the same endpoint behind any Python proxy
reaches well under half). So the front accepts each TCP connection itself, *peeks* at its request
line (nothing is consumed), and when it is a call of a function whose worker can take connections,
passes the socket to that worker process (SCM_RIGHTS over the worker's AF_UNIX control socket). The
worker then serves that client directly for the connection's whole keep-alive life: its routing,
auth and metrics run there. Everything else (admin API, /healthz, /metrics, a function whose worker
is not running yet) is served by the server's own Starlette app through uvicorn's protocol.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Callable, Optional

from ..names import ENDPOINT_NAME

log = logging.getLogger("jupyterlab_publish.functions")

# Only calls: `POST /functions/<name>` (names follow the one endpoint-name rule). The function's pages
# (GET) are answered by the server, which knows its versions; a connection that starts with one
# simply stays with the server, whose proxy serves any calls made on it later.
_NAME = ENDPOINT_NAME.pattern.removeprefix("^").removesuffix("$").encode("ascii")
_FUNCTION_REQUEST = re.compile(rb"^POST /functions/(" + _NAME + rb")(?:[/?# ]|$)")
_PEEK_BYTES = 4096
# A client that connects and says nothing is dropped after this; one that is slow to send its
# request line is handed to uvicorn, whose parser copes with any pace.
FIRST_BYTES_TIMEOUT = 30.0
_REQUEST_LINE_WAIT = 1.0


def function_name(head: bytes) -> Optional[str]:
    """The function a request line addresses, if it is one a worker can serve, else None."""
    match = _FUNCTION_REQUEST.match(head)
    return match.group(1).decode("ascii") if match else None


async def _peek_request_line(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> Optional[bytes]:
    """The first line of the request without consuming it; b"" if the client closed; None if unknown."""
    started = time.monotonic()
    while True:
        readable = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, FIRST_BYTES_TIMEOUT)
        finally:
            loop.remove_reader(conn.fileno())
        try:
            head = conn.recv(_PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        if not head or b"\n" in head or len(head) >= _PEEK_BYTES:
            return head
        # Part of a request line: the rest is on its way. Readiness stays level-triggered while
        # the bytes sit unread, so wait a little instead of spinning on the selector.
        if time.monotonic() - started > _REQUEST_LINE_WAIT:
            return None
        await asyncio.sleep(0.002)


class Front:
    """Accept loop over the public socket. ``serve_locally(conn)`` hands a socket to uvicorn."""

    def __init__(self, listener: socket.socket, workers: dict, serve_locally: Callable[[socket.socket], None],
                 counters: Optional[dict] = None):
        self.listener = listener
        self.workers = workers  # name -> the live version's worker pool (FunctionService.workers)
        self.serve_locally = serve_locally
        self.counters = counters if counters is not None else {}
        self.counters.setdefault("handed_off", 0)
        self._tasks: set = set()
        self._accepting: Optional[asyncio.Task] = None

    def start(self, backlog: int = 2048) -> None:
        self.listener.listen(backlog)  # bound, not yet listening: uvicorn used to do this for us
        self.listener.setblocking(False)
        self._accepting = asyncio.get_running_loop().create_task(self._accept_forever())

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.listener)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._route(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _route(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = await _peek_request_line(loop, conn)
        except (asyncio.TimeoutError, OSError):
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        if head == b"":
            conn.close()
            return
        name = function_name(head) if head else None
        if name is not None and self._hand_off(name, conn):
            return
        try:
            self.serve_locally(conn)
        except Exception:
            log.exception("could not serve a connection")
            conn.close()

    def _hand_off(self, name: str, conn: socket.socket) -> bool:
        pool = self.workers.get(name)
        if pool is None:
            return False
        worker = pool.next_handoff_worker()
        # False: the worker is gone or its queue is full, and our app serves this one (and restarts
        # it). True: the worker serves it; we keep a copy only where the runtime shares its slot
        # table (contract 3), to answer the client should the worker die mid-call, or to serve it
        # here should the worker die while it is idle.
        if worker is None or not worker.hand_off(conn, self.serve_locally):
            return False
        self.counters["handed_off"] += 1
        return True


def uvicorn_protocol_factory(server) -> Callable:
    """The protocol factory uvicorn's own startup builds, for connections we accept ourselves."""
    config = server.config

    def create_protocol(_loop=None):
        return config.http_protocol_class(
            config=config, server_state=server.server_state, app_state=server.lifespan.state, _loop=_loop
        )

    return create_protocol


__all__ = ["FIRST_BYTES_TIMEOUT", "Front", "function_name", "uvicorn_protocol_factory"]
