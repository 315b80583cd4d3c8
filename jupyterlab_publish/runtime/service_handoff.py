"""Serving with uvicorn, including connections the function server accepted and handed over.

Part of the runtime copied into every bundle (see ``service.py``); standard library and uvicorn.

Contract: the server accepts a client's TCP connection, peeks at its request line (nothing is
consumed) and, for ``/functions/NAME...``, passes the descriptor over an AF_UNIX socket this process
inherited (``--handoff-fd``), one byte per descriptor (``socket.send_fds``). Each one is served by
uvicorn's own HTTP protocol class through ``loop.connect_accepted_socket``, keep-alive included,
with the protocol factory built the way uvicorn's ``Server.startup`` builds it. If that cannot be
done with the installed uvicorn, /healthz says ``"handoff": false`` and the server keeps proxying.
When the server closes its end (it exited), this worker shuts down.

Contract 3 adds the slot table (``--slots-fd``): the server keeps its own copy of every descriptor
it hands over and sends a slot number with it (``SLOT_PAYLOAD``) instead of the byte; the worker
writes each connection's state into that slot of a file both map (``SlotTable``). When the worker
dies, the server reads the table: a connection whose call was running gets a JSON 502, one never
taken up or idle is served by the server from then on, the rest are closed; slots marked closed are
reused. A draining worker (SIGTERM) releases its idle connections to the server instead of closing
them, so their next requests reach a running worker. A slot write is a store into shared memory:
no system call per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import mmap
import os
import socket
import struct

try:
    from . import service_errors as errors
except ImportError:  # in a bundle directory the runtime's modules sit side by side
    import service_errors as errors

log = logging.getLogger("jupyterlab_publish.service")

# A handed-off client is an outside one: the head of each of its requests must arrive whole within
# HEAD_TIMEOUT and fit in HEAD_LIMIT (uvicorn's httptools parser has neither bound), else 431 or close.
HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 10.0

# The slot table (contract 3): one byte per slot, the server's and the worker's view of a connection.
SLOT_FREE = 0  # no connection (the server holds no descriptor for it)
SLOT_HANDED = 1  # sent to the worker, not yet taken up (the server wrote it)
SLOT_IDLE = 2  # served by the worker, between requests
SLOT_RUNNING = 3  # a request is being answered: the call (or a relayed request) runs
SLOT_WRITING = 4  # the answer is being written
SLOT_CLOSED = 5  # the worker closed the connection; the server closes its copy and frees the slot
SLOT_RELEASED = 6  # the worker (draining) let go of an idle connection: the server serves it from now on
SLOT_TUNNEL = 7  # its bytes go to the server unparsed (Tunnel): should the worker die, the server closes it
SLOT_PAYLOAD = struct.Struct("<I")  # what the server sends with each descriptor: its slot number
UNTRACKED = 0xFFFFFFFF  # a descriptor sent without a slot (the table was full)


class SlotTable:
    """This worker's side of the slot table the server created and passed as ``--slots-fd``."""

    def __init__(self, fd: int):
        try:
            size = os.fstat(fd).st_size
            if size < 1:
                raise ValueError(f"--slots-fd {fd} is an empty file; the server sizes it before starting the worker")
            self.map = mmap.mmap(fd, size)  # MAP_SHARED, read and write: the server sees every store
        finally:
            os.close(fd)  # the mapping keeps the file
        self.size = size

    def set(self, slot: int, state: int) -> None:
        self.map[slot] = state

    def begin(self, slot_of: dict, scope) -> int | None:
        """Mark the connection of ``scope`` as running a request; its slot, or None if untracked."""
        slot = slot_of.get(scope.get("client"))
        if slot is not None:
            self.map[slot] = SLOT_RUNNING
        return slot

    def writing(self, slot: int) -> None:
        self.map[slot] = SLOT_WRITING

    def idle(self, slot: int) -> None:
        self.map[slot] = SLOT_IDLE


def uvicorn_config(app, **options):
    import uvicorn  # only serving needs it: the kernel imports the runtime where uvicorn may be missing

    # proxy_headers off: the worker's peers are the server and handed-off clients, never a proxy to
    # trust; it also keeps a middleware off the hot path. Access logs cost more than a trivial call.
    return uvicorn.Config(app, http="auto", ws="none", interface="asgi3", proxy_headers=False,
                          access_log=False, log_level="warning", **options)


def handoff_protocol_factory(server, app, own_paths=None, upstream=None):
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

    own = None if own_paths is None else frozenset(path.encode("utf-8") for path in own_paths)

    def create_protocol(_loop=None):
        protocol = protocol_class(**options, _loop=_loop) if takes_loop else protocol_class(**options)
        HeadGuard(protocol, own, upstream)
        return protocol

    probe = create_protocol(asyncio.get_running_loop())  # a uvicorn whose protocol changed fails here
    if not hasattr(probe, "cycle"):
        raise RuntimeError(f"{protocol_class.__name__} has no cycle attribute to bound request heads by")
    return create_protocol


class HeadGuard:
    """Bounds the size and arrival time of each request head on one handed-off connection, and
    answers a request uvicorn cannot parse with a JSON 400 (its own is text).

    Wraps the protocol's ``data_received``: bytes that arrive while no request body is due (no
    request yet, or the current one's body complete: uvicorn's ``cycle.more_body``) belong to a head
    and are counted; a new cycle means the head was parsed, and the count starts over. Too many bytes
    get a JSON 431 and the connection ends; a head still incomplete after HEAD_TIMEOUT ends it too.
    """

    _TOO_LARGE = None

    def __init__(self, protocol, own: frozenset | None = None, upstream: tuple | None = None):
        self.protocol = protocol
        self.received = protocol.data_received
        self.head = 0
        self.timer = None
        self.slots = self.slot = None  # set for a connection the server shares (HandoffReceiver._tracked)
        self.on_lost = None  # what the connection's end must also do (HandoffReceiver._tracked)
        self.own = own  # this function's paths (bytes): a request for another goes to the server unparsed
        # The usual request line starts, checked in one C call before the full parse of the line.
        self.calls = tuple(b"POST " + path + end for path in own or () for end in (b" ", b"?"))
        self.upstream = upstream
        protocol.data_received = self.data_received
        protocol.send_400_response = self.send_400_response
        protocol.head_guard = self

    def send_400_response(self, msg: str) -> None:
        transport = self._transport()
        if transport is None:
            return
        _, body = errors.answer("bad_request", f"the request is not valid HTTP/1.1: {msg}")
        transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                        b"connection: close\r\n\r\n" % len(body) + body)
        transport.close()

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        cycle = protocol.cycle
        in_head = cycle is None or not cycle.more_body
        if in_head:
            if self.slot is not None:
                # From its first byte a request is this worker's to answer: should it die now, the
                # server answers 502 rather than wait on a connection whose request was read here.
                self.slots.map[self.slot] = SLOT_RUNNING
            if (not self.head and self.own is not None and not data.startswith(self.calls)
                    and not _own_request(data, self.own)):
                return self._tunnel(data)
            self.head += len(data)
        self.received(data)  # one read's worth at most is parsed before the check below
        if protocol.cycle is not cycle:  # a head was parsed: the next one is counted afresh
            self.head = 0
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        elif in_head:
            if self.head > HEAD_LIMIT:
                self._refuse()
            elif self.timer is None:
                self.timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._expire)

    def _tunnel(self, data: bytes) -> None:
        """Pass this connection, from this request on, unparsed to the server (see Tunnel)."""
        protocol, transport = self.protocol, self._transport()
        if transport is None:
            return
        cycle = protocol.cycle
        if cycle is not None and not cycle.response_complete:
            transport.close()  # pipelined behind an answer still being made: the client starts over
            return
        if self.upstream is None:
            _, body = errors.answer("not_found", "this path is not served here: this worker serves only its "
                                    "function's paths, and has no --upstream to pass others to")
            transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                            b"connection: close\r\n\r\n" % len(body) + body)
            transport.close()
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        # uvicorn lets go of it: no longer one of this worker's HTTP connections (nor drained as one)
        unset = getattr(protocol, "_unset_keepalive_if_required", None)
        if unset is not None:
            unset()
        protocol.server_state.connections.discard(protocol)
        if self.slot is not None:
            self.slots.map[self.slot] = SLOT_TUNNEL  # no request boundary is known here any more
        tunnel = Tunnel(transport, data, self.on_lost)
        transport.set_protocol(tunnel)
        asyncio.get_running_loop().create_task(tunnel.connect(self.upstream))

    def _transport(self):
        transport = getattr(self.protocol, "transport", None)
        return transport if transport is not None and not transport.is_closing() else None

    def _refuse(self) -> None:
        transport = self._transport()
        if transport is None:
            return
        if HeadGuard._TOO_LARGE is None:
            status, body = errors.answer("headers_too_large", f"the request head exceeds {HEAD_LIMIT} bytes; send "
                                         "fewer or shorter headers")
            HeadGuard._TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json"
                                    b"\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body
        if self.timer is not None:
            self.timer.cancel()
        transport.write(HeadGuard._TOO_LARGE)
        self._linger(transport)

    def _linger(self, transport) -> None:
        """End the connection after an answer without resetting it: closing with the client's bytes
        unread would send a reset, which can destroy the answer before the client reads it. So the
        write side is shut (the client sees the answer, then the end) and what still arrives is
        dropped for LINGER seconds at most, then the connection closes."""
        protocol = self.protocol
        unset = getattr(protocol, "_unset_keepalive_if_required", None)
        if unset is not None:
            unset()
        protocol.server_state.connections.discard(protocol)
        lingering = _Lingering(transport, self.on_lost)
        transport.set_protocol(lingering)
        if transport.can_write_eof():
            transport.write_eof()
        lingering.timer = asyncio.get_running_loop().call_later(LINGER, transport.close)

    def _expire(self) -> None:
        self.timer = None
        cycle = self.protocol.cycle
        transport = self._transport()
        if transport is not None and self.head and (cycle is None or not cycle.more_body):
            log.info("a handed-off client did not send a whole request head within %g s; closing", HEAD_TIMEOUT)
            transport.close()


def _own_request(data: bytes, own: frozenset) -> bool:
    """Whether the request line at the start of ``data`` names one of ``own`` (paths, bytes); True
    when it cannot tell (a request line split across reads is then parsed here as before)."""
    method_end = data.find(b" ", 0, 24)
    if method_end < 0:
        return True
    target_end = data.find(b" ", method_end + 1, 8192)
    if target_end < 0:
        return True
    return data[method_end + 1:target_end].split(b"?", 1)[0] in own


LINGER = 2.0  # seconds a refused connection's further bytes are read and dropped before it closes


class _Lingering(asyncio.Protocol):
    """A refused connection's last seconds: its bytes are dropped until the client closes it or LINGER."""

    def __init__(self, transport, on_lost):
        self.transport, self.on_lost, self.timer = transport, on_lost, None

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self):
        return False  # the client is done too: close

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.on_lost is not None:
            self.on_lost()


class Tunnel(asyncio.Protocol):
    """A handed-off connection whose requests are not this worker's, passed to the server as bytes.

    Another function's call or the admin API carry keys and the admin token: function code shares
    this process, so those requests are never parsed here (nor their headers held in Python
    objects): from the first foreign request on, the connection's bytes are copied both ways
    between the client and ``--upstream`` (the server's relay listener, which serves them itself).
    """

    PENDING_LIMIT = 1 << 20  # bytes held while the server's connection opens; beyond, reading pauses

    def __init__(self, client, first: bytes, on_lost):
        self.client = client
        self.pending = [first]
        self.pending_size = len(first)
        self.upstream = None
        self.on_lost = on_lost
        self.closed = False

    async def connect(self, address: tuple) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(lambda: _TunnelUpstream(self), *address)
        except OSError as exc:
            _, body = errors.answer("bad_gateway", f"the function server at http://{address[0]}:{address[1]} "
                                    f"did not answer: {exc!r}")
            if not self.client.is_closing():
                self.client.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\n"
                                  b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
                self.client.close()
            return
        if self.closed:
            upstream.close()
            return
        self.upstream = upstream
        upstream.write(b"".join(self.pending))
        self.pending = None
        self.client.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > self.PENDING_LIMIT:
            self.client.pause_reading()

    def eof_received(self):
        if self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()
            return True  # the server's answer may still come
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.upstream is not None:
            self.upstream.close()
        if self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()


class _TunnelUpstream(asyncio.Protocol):
    def __init__(self, tunnel: Tunnel):
        self.tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        self.tunnel.client.write(data)

    def eof_received(self):
        self.tunnel.client.close()  # after what is buffered has been written
        return False

    def connection_lost(self, exc) -> None:
        if not self.tunnel.client.is_closing():
            self.tunnel.client.close()

    def pause_writing(self) -> None:
        self.tunnel.client.pause_reading()

    def resume_writing(self) -> None:
        self.tunnel.client.resume_reading()


def _between_requests(protocol) -> bool:
    """True if the connection's last request is answered and no byte of another has been read."""
    cycle = protocol.cycle
    guard = getattr(protocol, "head_guard", None)
    return (cycle is None or cycle.response_complete) and guard is not None and guard.head == 0


class HandoffReceiver:
    """Receives connection fds over the inherited AF_UNIX socket and serves each with uvicorn.

    The server sends one byte with one descriptor per connection (``socket.send_fds``); the first
    request's bytes are still unread in the connection, so uvicorn parses it as if it had accepted.
    """

    def __init__(self, fd: int, protocol_factory, on_closed, slots: SlotTable | None = None,
                 slot_of: dict | None = None, draining=lambda: False):
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.protocol_factory = protocol_factory
        self.on_closed = on_closed
        self.slots = slots
        self.slot_of = slot_of if slot_of is not None else {}
        self.draining = draining  # () -> bool: the worker is shutting down
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
            # A read stops at the next message carrying descriptors, so the slot numbers read with
            # descriptors are theirs; anything else (a contract-2 byte) serves them untracked.
            slots = None
            if self.slots is not None and fds and len(data) == SLOT_PAYLOAD.size * len(fds):
                slots = [slot for (slot,) in SLOT_PAYLOAD.iter_unpack(data)]
            for index, fd in enumerate(fds):
                slot = slots[index] if slots is not None else None
                self._serve(fd, slot if slot is not None and slot < self.slots.size else None)
            if flags & getattr(socket, "MSG_CTRUNC", 0):
                log.error("connections were lost in hand-off: more arrived in one read than it takes")
            if not data and not fds:  # the server closed its end (it exited)
                self.close()
                self.on_closed()
                return

    def _serve(self, fd: int, slot: int | None) -> None:
        try:
            conn = socket.socket(fileno=fd)
        except OSError:  # not a socket: nothing to serve
            os.close(fd)
            return
        factory = self.protocol_factory if slot is None else self._tracked(conn, slot)
        task = self.loop.create_task(self._connect(conn, factory, slot))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _tracked(self, conn: socket.socket, slot: int):
        """A protocol factory whose connection keeps ``slot`` up to date.

        The server holds a copy of the descriptor, so closing ours would not end the connection:
        when uvicorn lets it go, a copy kept here shuts it down (the client sees the end), then the
        slot says closed and the server drops its copy.
        """
        slots, slot_of = self.slots, self.slot_of
        try:
            peer = conn.getpeername()
            peer = (str(peer[0]), int(peer[1]))  # as uvicorn names the client in the ASGI scope
        except (OSError, IndexError, TypeError):
            peer = None
        keep = conn.dup()
        if peer is not None:
            slot_of[peer] = slot
        slots.set(slot, SLOT_IDLE)

        draining = self.draining

        def closed(protocol=None) -> None:
            if peer is not None and slot_of.get(peer) == slot:
                del slot_of[peer]
            if protocol is not None and draining() and _between_requests(protocol):
                # Nothing of a next request was read: the server takes the connection over.
                keep.close()
                slots.set(slot, SLOT_RELEASED)
                return
            try:
                keep.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client had gone already
            keep.close()
            slots.set(slot, SLOT_CLOSED)

        def create_protocol(_loop=None):
            protocol = self.protocol_factory(_loop)
            guard = getattr(protocol, "head_guard", None)
            if guard is not None:
                guard.slots, guard.slot, guard.on_lost = slots, slot, closed
            lost = protocol.connection_lost

            def connection_lost(exc):
                try:
                    lost(exc)
                finally:
                    closed(protocol if exc is None else None)

            protocol.connection_lost = connection_lost
            return protocol

        create_protocol.closed = closed
        return create_protocol

    async def _connect(self, conn: socket.socket, factory, slot) -> None:
        try:
            await self.loop.connect_accepted_socket(factory, conn)
        except Exception:
            log.exception("could not serve a handed-off connection")
            conn.close()
            if slot is not None:
                factory.closed()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


def make_server(config, service, handoff_fd: int | None):
    """A uvicorn Server that also serves connections arriving on ``handoff_fd`` with ``service.handoff_app``.

    On SIGTERM (or when the server closes the hand-off socket) it drains: no new connections, idle
    ones are closed (or, when the server shares them, released to it), requests already read and
    calls in progress get ``config.timeout_graceful_shutdown`` to finish, then it exits."""
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
                factory = handoff_protocol_factory(self, service.handoff_app, service.handoff_app.own_paths,
                                                   service.upstream)
                self.receiver = HandoffReceiver(handoff_fd, factory, self.handoff_closed, service.slots,
                                                service.slot_of, lambda: service.draining)
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
            service.draining = True
            self.should_exit = True

        def handle_exit(self, sig, frame) -> None:
            service.draining = True  # from now on idle handed-off connections go back to the server
            super().handle_exit(sig, frame)

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
