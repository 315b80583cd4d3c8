"""Serving with uvicorn, including connections the function server accepted and handed over.

Part of the runtime copied into every bundle (see ``service.py``); standard library and uvicorn.

Contract: the server accepts a client's TCP connection, peeks at its request line (nothing is
consumed) and, for ``/functions/NAME...``, passes the descriptor over an AF_UNIX socket this process
inherited (``--handoff-fd``), one byte per descriptor (``socket.send_fds``). Each one is served by
uvicorn's own HTTP protocol class through ``loop.connect_accepted_socket``, keep-alive included,
with the protocol factory built the way uvicorn's ``Server.startup`` builds it. If that cannot be
done with the installed uvicorn, /healthz says ``"handoff": false`` and the server keeps proxying.
When the server closes its end (it exited), this worker shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket

log = logging.getLogger("jupyterlab_publish.service")


def uvicorn_config(app, **options):
    import uvicorn  # only serving needs it: the kernel imports the runtime where uvicorn may be missing

    # proxy_headers off: the worker's peers are the server and handed-off clients, never a proxy to
    # trust; it also keeps a middleware off the hot path. Access logs cost more than a trivial call.
    return uvicorn.Config(app, http="auto", ws="none", interface="asgi3", proxy_headers=False,
                          access_log=False, log_level="warning", **options)


def handoff_protocol_factory(server, app):
    """The protocol factory uvicorn's ``Server.startup`` builds, serving ``app``, for our own sockets.

    Handed-off connections share the running server's state (connection set, default headers,
    graceful shutdown). Built from uvicorn's internals, so anything unexpected raises here, once,
    and the worker then reports ``"handoff": false`` instead of failing per connection.
    """
    config = uvicorn_config(app, lifespan="off", log_config=None)
    config.load()
    protocol_class = config.http_protocol_class
    accepted = inspect.signature(protocol_class).parameters
    if "config" not in accepted or "server_state" not in accepted:
        raise RuntimeError(f"{protocol_class.__name__}({', '.join(accepted)}) does not take config and server_state")
    options = {"config": config, "server_state": server.server_state}
    if "app_state" in accepted:
        options["app_state"] = getattr(getattr(server, "lifespan", None), "state", None) or {}
    takes_loop = "_loop" in accepted

    def create_protocol(_loop=None):
        return protocol_class(**options, _loop=_loop) if takes_loop else protocol_class(**options)

    create_protocol(asyncio.get_running_loop())  # a uvicorn whose protocol changed fails here
    return create_protocol


class HandoffReceiver:
    """Receives connection fds over the inherited AF_UNIX socket and serves each with uvicorn.

    The server sends one byte with one descriptor per connection (``socket.send_fds``); the first
    request's bytes are still unread in the connection, so uvicorn parses it as if it had accepted.
    """

    def __init__(self, fd: int, protocol_factory, on_closed):
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.protocol_factory = protocol_factory
        self.on_closed = on_closed
        self.tasks: set = set()
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(self.sock, 1024, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.error("the hand-off socket failed: %s", exc)
                data, fds, flags = b"", [], 0
            for fd in fds:
                self._serve(fd)
            if flags & getattr(socket, "MSG_CTRUNC", 0):
                log.error("connections were lost in hand-off: more arrived in one read than it takes")
            if not data and not fds:  # the server closed its end (it exited)
                self.close()
                self.on_closed()
                return

    def _serve(self, fd: int) -> None:
        try:
            conn = socket.socket(fileno=fd)
        except OSError:  # not a socket: nothing to serve
            os.close(fd)
            return
        task = self.loop.create_task(self._connect(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory, conn)
        except Exception:
            log.exception("could not serve a handed-off connection")
            conn.close()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


def make_server(config, service, handoff_fd: int | None):
    """A uvicorn Server that also serves connections arriving on ``handoff_fd`` with ``service.handoff_app``."""
    import uvicorn  # only serving needs it (see uvicorn_config)

    class Server(uvicorn.Server):
        receiver = None

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            loop = type(asyncio.get_running_loop())
            log.info("serving with %s.%s and %s", loop.__module__, loop.__name__,
                     getattr(self.config, "http_protocol_class", type(None)).__name__)
            if handoff_fd is not None and self.started:
                self.start_handoff()

        def start_handoff(self) -> None:
            try:
                factory = handoff_protocol_factory(self, service.handoff_app)
                self.receiver = HandoffReceiver(handoff_fd, factory, self.handoff_closed)
            except Exception as exc:
                log.error("cannot serve handed-off connections (%s: %s); /healthz says \"handoff\": false and "
                          "the server keeps proxying", type(exc).__name__, exc)
                with contextlib.suppress(OSError):
                    os.close(handoff_fd)  # the server's send_fds now fails at once instead of queueing
                return
            service.handoff = True

        def handoff_closed(self) -> None:
            service.handoff = False
            log.warning("the function server closed the hand-off socket; this worker stops")
            self.should_exit = True

        async def shutdown(self, sockets=None):
            if self.receiver is not None:
                self.receiver.close()
            await super().shutdown(sockets=sockets)

    return Server(config)


def run_event_loop(coroutine) -> None:
    """Run ``coroutine`` on uvloop when it is installed (it is a requirement line of every bundle)."""
    try:
        import uvloop  # optional: the asyncio loop serves without it
    except ImportError:
        uvloop = None
    if uvloop is not None and hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coroutine)
        return
    if uvloop is not None:
        uvloop.install()  # Python < 3.11 has no Runner; install() is not yet deprecated there
    asyncio.run(coroutine)
