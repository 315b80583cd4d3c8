"""A raw-socket HTTP/1.1 client for attacks: it writes whatever bytes it is given, reads with h11.

Every socket operation is bounded by the probe's deadline, so a server that hangs makes the probe
fail with ``Hung`` instead of hanging the suite. Answers are parsed by h11 (a client-side parser
fed a stand-in request, since the bytes we actually sent may be deliberately invalid).
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

import h11

CLOSED = "closed"  # the server closed (or reset) the connection without an answer


class Hung(Exception):
    """The server neither answered nor closed before the deadline."""


class Garbled(Exception):
    """The server sent bytes that are not an HTTP/1.x response."""


@dataclass
class Response:
    status: int
    headers: dict  # lower-case name -> value (the last one of a repeated name)
    body: bytes
    elapsed: float  # seconds from the probe's start
    raw_headers: list = field(default_factory=list)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


def request(method: str, path: str, body: bytes = b"", *, host: Optional[str] = "127.0.0.1", key: Optional[str] = None,
            headers: Iterable = (), version: str = "HTTP/1.1", length: bool = True) -> bytes:
    """The bytes of one request; ``headers`` are (name, value) pairs added after the defaults."""
    lines = [f"{method} {path} {version}".rstrip()]
    if host is not None:
        lines.append(f"Host: {host}")
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if length and (body or method in ("POST", "PUT")):
        lines.append(f"Content-Length: {len(body)}")
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class RawConnection:
    """One TCP connection to the server under attack, every operation bounded by ``deadline``."""

    def __init__(self, host: str, port: int, deadline: float):
        self.deadline = deadline
        self.started = time.monotonic()
        self.sock = socket.create_connection((host, port), timeout=self._remaining())
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""
        self.eof = False

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Hung("no answer before the probe's deadline")
        return remaining

    def send(self, data: bytes) -> bool:
        """Write all of ``data``; False if the server closed the connection first."""
        self.sock.settimeout(self._remaining())
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise Hung("the server stopped reading") from None
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def send_stream(self, head: bytes, chunk: bytes, count: int) -> int:
        """Send ``head`` then ``chunk`` ``count`` times, stopping as soon as the server answers or
        closes; return how many bytes were sent (so a probe can tell the server did not read it all)."""
        payload = [head] + [chunk] * count
        sent = 0
        self.sock.setblocking(False)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                pending = memoryview(b"")
                while payload or pending:
                    events = selector.select(self._remaining())
                    if not events:
                        continue
                    mask = events[0][1]
                    if mask & selectors.EVENT_READ:
                        break  # an answer (or a close) is waiting: stop sending
                    if not pending:
                        pending = memoryview(payload.pop(0))
                    try:
                        n = self.sock.send(pending)
                    except BlockingIOError:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    sent += n
                    pending = pending[n:]
        finally:
            self.sock.setblocking(True)
        return sent

    def _recv(self) -> bytes:
        if self.eof:
            return b""
        self.sock.settimeout(self._remaining())
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Hung("no answer before the probe's deadline") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        return data

    def read_response(self, method: str = "POST"):
        """The next response, or CLOSED if the connection ended before one began."""
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method=method, target="/", headers=[("Host", "probe")]))
        parser.send(h11.EndOfMessage())
        if self._buffer:
            parser.receive_data(self._buffer)
            self._buffer = b""
        status, headers, raw, body = None, {}, [], []
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise Garbled(f"not an HTTP/1.1 response ({exc})") from None
            if event is h11.NEED_DATA:
                data = self._recv()
                if not data and status is None and not parser.trailing_data[0]:
                    return CLOSED
                parser.receive_data(data)  # b"": h11 ends a close-delimited body or reports truncation
                continue
            if event is h11.PAUSED:
                raise Garbled("the server switched protocols")
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue
            if isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                    headers[key] = text
                    raw.append((key, text))
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._buffer = parser.trailing_data[0]
                return Response(status, headers, b"".join(body), time.monotonic() - self.started, raw)
            elif isinstance(event, h11.ConnectionClosed):
                if status is None:
                    return CLOSED
                return Response(status, headers, b"".join(body), time.monotonic() - self.started, raw)

    def readable_within(self, seconds: float) -> bool:
        """Whether the server sends something (or closes) within ``seconds`` (bounded by the deadline)."""
        if self._buffer or self.eof:
            return True
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            return bool(selector.select(min(seconds, self._remaining())))

    def wait_closed(self) -> tuple:
        """Read until the server closes; (responses read meanwhile, seconds until the close)."""
        responses = []
        while True:
            if self.eof and not self._buffer:
                return responses, time.monotonic() - self.started
            answer = self.read_response()
            if answer == CLOSED:
                return responses, time.monotonic() - self.started
            responses.append(answer)
