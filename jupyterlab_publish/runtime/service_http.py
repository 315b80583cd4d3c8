"""The HTTP face of a served function: auth, invocations, pages, and relaying foreign paths.

Part of the runtime copied into every bundle (see ``service.py``); standard library, plus starlette
for the pages. An invocation takes a lean ASGI path (one pass over the headers for auth and length,
the body, the call, precomputed response headers); the pages (info, OpenAPI, docs, /healthz,
/stats) are a Starlette app behind it. On a connection the function server handed over, a path
that is not this function's belongs to the server: ``service_handoff.HeadGuard`` passes the
connection's bytes to ``--upstream`` unparsed from then on; a request line it could not see whole is
relayed here, streamed (the server's own checks see the headers before any body is read).

Contract 3 adds: ``--allowed-hosts`` (Host and Origin checks against DNS rebinding and cross-site
requests, JSON 403), pages of a keyed function that show the sample only to callers with the key,
pages that name the URL the client used, and per-connection states in the slot table the server shares (``service_handoff.SlotTable``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import platform
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

try:
    from . import service_calls as calls
    from . import service_contract as contract
    from . import service_describe as describe
    from . import service_errors as errors
except ImportError:  # in a bundle directory the runtime's modules sit side by side
    import service_calls as calls
    import service_contract as contract
    import service_describe as describe
    import service_errors as errors

DEFAULT_MAX_BODY = 10 * 1024 * 1024  # 10 MiB: large enough for a batch, small enough to stay safe
DEFAULT_CONCURRENCY = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's own default
FORWARD_TIMEOUT = 900.0  # seconds; relayed admin requests may wait for an environment to build
POOL_PREFIX = "jupyterlab-publish-call"  # names of the pool's threads


class SettingsError(Exception):
    """A flag or environment variable of the service is invalid; the message says how to fix it."""


def read_key_digests(text: str | None, source: str) -> tuple:
    """The sha256 digests of the accepted keys (comma-separated hex, from ``source``); empty: public."""
    digests = []
    for number, part in enumerate((text or "").split(","), start=1):
        part = part.strip().lower()
        if not part:
            continue
        if len(part) != 64 or part.strip("0123456789abcdef"):
            raise SettingsError(f"entry #{number} of {source} is not a hex sha256 digest; set it to the comma-"
                                "separated sha256 hex digests of the accepted keys, or empty for a public function")
        digests.append(bytes.fromhex(part))
    return tuple(digests)


class KeyCheck:
    """``Authorization: Bearer <key>`` against the accepted digests, in constant time."""

    def __init__(self, digests: tuple, name: str):
        self.digests = digests
        self.hint = (f"the key is in `jupyter publish show {name} --json` (field \"key\"); "
                     "send it as Authorization: Bearer <key>")

    def refusal(self, header: bytes | None) -> str | None:
        if header is None:
            return "this function needs a key: send the header Authorization: Bearer <key>"
        scheme, _, key = header.partition(b" ")
        key = key.strip()
        if scheme.lower() != b"bearer" or not key:
            return "the Authorization header must read 'Bearer <key>'"
        digest = hashlib.sha256(key).digest()
        accepted = False
        for expected in self.digests:  # every digest is compared, so timing says nothing about which
            accepted |= hmac.compare_digest(expected, digest)
        return None if accepted else "the key is not valid for this function"


def _split_host(name: str) -> tuple:
    """``host[:port]`` (IPv6 in brackets) as (host, port text); the port is "" when absent."""
    if name.startswith("["):
        end = name.find("]")
        host, rest = name[: end + 1], name[end + 1:]
        return host, rest[1:] if rest.startswith(":") else ""
    host, colon, port = name.rpartition(":")
    return (host, port) if colon else (name, "")


class HostCheck:
    """Refuses what a browser may be tricked into sending (contract 3, ``--allowed-hosts``).

    DNS rebinding: a page on another site whose name now resolves to 127.0.0.1 still sends its own
    name as ``Host``, so only the names this worker is reached by are accepted. Cross-site requests:
    a browser names the page's origin in ``Origin`` and says ``Sec-Fetch-Site: cross-site``; either
    refuses the request (the server does the same; docs/bundle-format.md, "Host and Origin").
    """

    def __init__(self, allowed):
        self.exact, self.any_port = set(), set()
        for name in allowed:
            name = name.strip().lower()
            if not name:
                continue
            if any(c in name for c in "/@ \t,") or not _split_host(name)[0]:
                raise SettingsError(f"--allowed-hosts entry {name!r} is not a host name; give host or host:port "
                                    "names separated by commas (e.g. 127.0.0.1:8765,localhost:8765)")
            host, port = _split_host(name)
            if port and not port.isdigit():
                raise SettingsError(f"--allowed-hosts entry {name!r} has an invalid port")
            (self.exact if port else self.any_port).add(name if port else host)
        self.names = ", ".join(sorted(self.exact | self.any_port))
        self.accepted: set = set()  # raw Host values found allowed already: one set lookup per request

    def allows(self, name: str) -> bool:
        name = name.lower()
        return name in self.exact or _split_host(name)[0] in self.any_port

    def refusal(self, headers, method: str = "POST") -> tuple | None:
        """None, or (error code, message) of the refusal."""
        host = origin = site = mode = None
        for key, value in headers:
            if key == b"host":
                host = value
            elif key == b"origin":
                origin = value
            elif key == b"sec-fetch-site":
                site = value
            elif key == b"sec-fetch-mode":
                mode = value
        if host not in self.accepted:
            if host is None:  # HTTP/1.1 requires one: a malformed request rather than a foreign one
                return "bad_request", ("the request has no Host header, which HTTP/1.1 requires; send the host "
                                       "name you reached the server by")
            name = host.decode("latin-1")
            if not self.allows(name):
                return "forbidden_origin", (f"the Host {name!r} is not a name of this function server (it answers to "
                                            f"{self.names}); a page on another site that points its own name at "
                                            "this machine is refused")
            if len(self.accepted) < 256:
                self.accepted.add(host)
        if site is None and origin is None:
            return None
        if site is not None and site.lower() == b"cross-site":
            # A link followed from another site (a top-level GET, e.g. JupyterLab opening the docs
            # page) is how pages are meant to be reached; anything else a page of another site sends is not.
            navigating = method in ("GET", "HEAD") and mode is not None and mode.lower() == b"navigate"
            if not navigating:
                return "forbidden_origin", ("a request made by a page of another site (Sec-Fetch-Site: cross-site) "
                                            "is refused")
        if origin is not None:
            # Only the page's own origin: another port on this machine is another site (any local dev server).
            text = origin.decode("latin-1")
            parts = urlsplit(text)
            if text == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != host.decode(
                    "latin-1").lower():
                return "forbidden_origin", f"a request made by a page of another origin ({text}) is refused"
        return None


def parse_allowed_hosts(text: str | None):
    """The ``--allowed-hosts`` flag as a HostCheck, or None (not given: no check, as contract 2)."""
    if text is None:
        return None
    return HostCheck(text.split(","))


def _has_body(headers) -> bool:
    for key, value in headers:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip(b" \t0")):
            return True
    return False


_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                         b"trailer", b"trailers", b"transfer-encoding", b"upgrade"})
_NO_ARGS: tuple = ()
_NO_KWARGS: dict = {}  # shared: ``fn(**kwargs)`` copies it, so nothing can change it
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # the endpoint-name rule
_UNREAD_BODY = frozenset({401, 413})  # answers given before the body was (wholly) read
# A number can only overflow a float with an exponent of 3+ digits or 309+ digits: only then are
# floats parsed through _finite_float (slower), so that 1e999 is refused instead of becoming inf.
_MAYBE_INFINITE = re.compile(rb"[eE][+]?\d{3}|\d{309}")


def _not_json_constant(name: str):
    raise ValueError(f"{name} is not JSON (JSON has no NaN or infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:40]} is beyond the range of a float")
    return value


# Built once: json.loads with any option builds a decoder per call, which costs more than a trivial call.
_DECODER = json.JSONDecoder(parse_constant=_not_json_constant)
_FINITE_DECODER = json.JSONDecoder(parse_constant=_not_json_constant, parse_float=_finite_float)


def parse_body(body: bytes):
    """The JSON of a request body (ValueError or RecursionError if it has none)."""
    text = body.decode(json.detect_encoding(body), "surrogatepass")  # as json.loads reads bytes
    return (_DECODER if _MAYBE_INFINITE.search(body) is None else _FINITE_DECODER).decode(text)


class _ClientGone(Exception):
    pass


async def _receive_body(receive, limit) -> bytes | None:
    """The whole request body, or None once it exceeds ``limit`` (the rest is left unread)."""
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else None
    chunks, size = [body], len(body)
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= limit else None
    return None


def _parse_upstream(url: str | None) -> tuple | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsError(f"--upstream {url!r} is not a plain http://host:port URL (the function server's)")
    try:
        return parts.hostname, parts.port or 80
    except ValueError:
        raise SettingsError(f"--upstream {url!r} has an invalid port") from None


def _relay_head(upstream: tuple, scope: dict) -> tuple:
    """The relayed request's target and headers: hop-by-hop headers dropped, the client named."""
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    headers, forwarded_for, has_host, expect = [], b"", False, False
    length = chunked = None
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            chunked = value
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"x-forwarded-for":
            forwarded_for = value + b", "
        elif name not in _HOP_BY_HOP:
            has_host = has_host or name == b"host"
            headers.append((name, value))
    if not has_host:
        headers.append((b"host", ("%s:%d" % upstream).encode("ascii")))
    if scope.get("client"):
        # The server sees this worker as the peer: name the real client, so no one mistakes a
        # relayed request for a local one.
        headers.append((b"x-forwarded-for", forwarded_for + scope["client"][0].encode("latin-1")))
    # The body is streamed as it arrives, framed as the client framed it.
    if chunked is not None:
        headers.append((b"transfer-encoding", b"chunked"))
    elif length is not None:
        headers.append((b"content-length", length))
    elif scope["method"] not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        headers.append((b"content-length", b"0"))
    if expect:
        headers.append((b"expect", b"100-continue"))
    return target, headers, expect


class _Relay:
    """One request relayed to the function server over its own connection, streamed both ways.

    Nothing is buffered beyond a chunk: the body goes upstream as the client sends it (with the
    client's pace, through ``drain``), so the server's key and size checks apply before the body is
    read, and an early answer (401, 413) ends the relay: the client's connection is then closed
    rather than read further. With ``Expect: 100-continue`` the body waits for the server's 100.
    """

    def __init__(self, upstream: tuple, scope, receive, send, answering=None):
        import h11  # uvicorn's own dependency; only relaying needs it

        self.h11 = h11
        self.upstream, self.scope, self.receive, self.send = upstream, scope, receive, send
        self.answering = answering  # called once the answer starts (the slot's "writing" state)
        self.conn = h11.Connection(h11.CLIENT)
        self.reader = self.writer = None

    async def run(self) -> None:
        h11 = self.h11
        target, headers, expect = _relay_head(self.upstream, self.scope)
        try:
            request = self.conn.send(h11.Request(method=self.scope["method"], target=target, headers=headers))
        except h11.LocalProtocolError as exc:
            return await _send(self.send, *errors.answer("bad_request", f"the request cannot be relayed: {exc}"),
                               close=True)
        try:
            self.reader, self.writer = await asyncio.open_connection(*self.upstream)
            self.writer.write(request)
        except OSError as exc:
            return await self._unreachable(exc, close=_has_body(self.scope["headers"]))
        pump = None
        try:
            if not expect:
                pump = asyncio.ensure_future(self._pump())
            response = await self._response_head(pump)
            if response is None:
                return
            if isinstance(response, h11.InformationalResponse):  # 100 Continue: now the body
                pump = asyncio.ensure_future(self._pump())
                response = await self._response_head(pump)
                if response is None:
                    return
            # An answer before the whole body was sent: stop reading the client and close after it.
            close = pump is None or not pump.done()
            if pump is not None and not pump.done():
                pump.cancel()
            await self._answer(response, close)
        except (OSError, h11.ProtocolError, asyncio.TimeoutError) as exc:
            await self._unreachable(exc, close=True)
        finally:
            if pump is not None and not pump.done():
                pump.cancel()
            self.writer.close()

    async def _pump(self) -> None:
        h11, conn, writer = self.h11, self.conn, self.writer
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk = message.get("body", b"")
            if chunk:
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()  # the client's pace is the server's: nothing piles up here
            if not message.get("more_body", False):
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                return

    async def _next_event(self):
        h11, conn = self.h11, self.conn
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await asyncio.wait_for(self.reader.read(65536), FORWARD_TIMEOUT))

    async def _response_head(self, pump):
        """The next response (informational or final); None if the client left meanwhile."""
        h11 = self.h11
        head = asyncio.ensure_future(self._next_event())
        try:
            while True:
                waiting = {head} if pump is None or pump.done() else {head, pump}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if pump is not None and pump.done() and not pump.cancelled() and pump.exception() is not None:
                    if isinstance(pump.exception(), _ClientGone):
                        return None
                    raise pump.exception()
                if head.done():
                    event = head.result()
                    if isinstance(event, (h11.Response, h11.InformationalResponse)):
                        return event
                    raise h11.RemoteProtocolError(f"the server answered with {type(event).__name__}")
        finally:
            if not head.done():
                head.cancel()

    async def _answer(self, response, close: bool) -> None:
        h11 = self.h11
        headers = []
        for name, value in response.headers:
            name = name.lower()
            # uvicorn adds its own date and server headers, and frames the body itself
            if name in _HOP_BY_HOP or name in (b"date", b"server"):
                continue
            headers.append((name, value))
        if close:
            headers.append((b"connection", b"close"))
        if self.answering is not None:
            self.answering()
        await self.send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                await self.send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
            elif isinstance(event, h11.EndOfMessage):
                await self.send({"type": "http.response.body", "body": b""})
                return
            else:
                raise h11.RemoteProtocolError(f"the server's answer ended with {type(event).__name__}")

    async def _unreachable(self, exc, close: bool) -> None:
        host, port = self.upstream
        try:
            await _send(self.send, *errors.answer(
                "bad_gateway", f"the function server at http://{host}:{port} did not answer: {exc!r}"), close=close)
        except RuntimeError:  # the answer had started: the client sees the connection end instead
            raise exc from None


class FunctionEndpoint:
    """One bundle's function served over HTTP: auth, counters, the call path, and the ASGI apps over them.

    ``private_app`` answers on the worker's own port: ``/`` and ``/functions/NAME`` (invoke, info,
    ``openapi.json``, ``docs``), ``/healthz`` and ``/stats``. ``handoff_app`` serves connections the
    function server handed over: only ``/functions/NAME...``; any other path goes to ``--upstream``.

    ``allowed_hosts`` (``--allowed-hosts``, comma-separated) turns on the Host and Origin checks;
    ``own_hosts`` are the worker's own names (its address and port), always accepted with them.
    """

    def __init__(self, served: contract.ServedBundle, *, name: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 timeout: float | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 key_digests: tuple = (), upstream: str | None = None, allowed_hosts: str | None = None,
                 own_hosts: tuple = ()):
        name = name or served.name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SettingsError(f"--name {name!r} is not an endpoint name (lowercase letters, digits and dashes, "
                                "starting with a letter)")
        for flag, value, least in (("--max-body", max_body, 1), ("--concurrency", concurrency, 1)):
            if type(value) is not int or value < least:
                raise SettingsError(f"{flag} must be a whole number of at least {least}, not {value!r}")
        if timeout is not None and not 0 < timeout < math.inf:
            raise SettingsError(f"--timeout must be a positive number of seconds, not {timeout!r}")
        self.served = served
        self.name = name
        self.prefix = f"/functions/{name}"
        self.max_body = max_body
        self.timeout = timeout
        self.concurrency = concurrency
        self.upstream = _parse_upstream(upstream)
        self.keys = KeyCheck(key_digests, name) if key_digests else None
        self.hosts = parse_allowed_hosts(None if allowed_hosts is None else ",".join((allowed_hosts, *own_hosts)))
        self.stats = calls.Stats()
        self.handoff = False  # set once handed-off connections are being served
        # Set on SIGTERM: no new connections are taken and idle handed-off ones go back to the server;
        # a request already read from a connection still runs (only this worker can answer it).
        self.draining = False
        # The slot table the server shares (--slots-fd) and the slot of each handed-off connection,
        # by its peer address (what ASGI's scope["client"] names): see service_handoff.SlotTable.
        self.slots = None
        self.slot_of: dict = {}
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=POOL_PREFIX)
        self.parameters = describe.describe_parameters(served.function)
        fn, validator = served.function, served.validator
        self.item_name = contract.first_parameter(fn)  # how a batched request names its item
        self.batcher = self.caller = self.binder = None
        if served.batching is not None:
            self.batcher = calls.Batcher(fn, validator, self.executor, timeout, served.batching, self.stats)
        else:
            self.caller, self.binder = calls.Caller(fn, validator, self.executor, timeout), calls.Binder(fn)
        self._ok_headers: dict = {}
        self._too_large = errors.answer(
            "payload_too_large", f"the request body exceeds {max_body} bytes; send less data per call or start "
            "the service with a larger --max-body")
        self.pages = self._pages_app()
        self.private_app = FunctionApp(self, handoff=False)
        self.handoff_app = FunctionApp(self, handoff=True)

    # -- invocation: the hot path

    async def invoke(self, scope, receive, send, slot: int | None = None) -> None:
        """Answer one call; ``slot``: its connection's slot in the server's table (handed off, contract 3)."""
        stats = self.stats
        started = time.perf_counter()
        stats.in_flight += 1
        status = 500
        try:
            status, body = await self._answer(scope, receive)
            headers = self._headers(status, len(body))
            if status in _UNREAD_BODY and _has_body(scope["headers"]):
                # Refused before (all of) the body was read: close rather than read the rest, which
                # must never be taken for the next request either.
                headers = headers + [(b"connection", b"close")]
            if slot is not None:
                self.slots.writing(slot)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except _ClientGone:
            status = 499  # the client left before sending its body (nginx's name for it)
        finally:
            stats.in_flight -= 1
            stats.observe(status, time.perf_counter() - started)

    async def _answer(self, scope, receive) -> tuple:
        authorization = length = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = value
        # Key and declared length are checked before a byte of the body is read; a chunked body is
        # counted as it arrives and refused once it passes the limit.
        if self.keys is not None:
            refusal = self.keys.refusal(authorization)
            if refusal is not None:
                return errors.answer("unauthorized", refusal, hint=self.keys.hint)
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return self._too_large  # refused before reading: the header is trusted to say "too much"
        body = await _receive_body(receive, self.max_body)
        if body is None:
            return self._too_large
        try:
            payload = parse_body(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: arrays or objects nested too deeply
            how = contract.batch_contract(self.item_name) if self.batcher is not None else contract.CONTRACT
            reason = "it nests arrays or objects too deeply" if isinstance(exc, RecursionError) else exc
            return errors.answer("bad_request", f"the body is not valid JSON ({reason}): {how}")
        if self.batcher is not None:
            try:
                item = contract.batch_item(payload, self.item_name)
            except contract.ArgumentError as exc:
                return errors.answer("bad_request", str(exc))
            return await self.batcher(item)
        kind = type(payload)
        if kind is list:
            args, kwargs = payload, _NO_KWARGS
        elif kind is dict:
            args, kwargs = _NO_ARGS, payload
        else:
            return errors.answer("bad_request",
                                 f"expected a JSON array or object, got {kind.__name__}: {contract.CONTRACT}")
        try:
            self.binder.check(args, kwargs)
        except contract.ArgumentError as exc:
            return errors.answer("bad_request", str(exc))
        return await self.caller(args, kwargs)

    def _headers(self, status: int, length: int) -> list:
        if status == 200:
            headers = self._ok_headers.get(length)
            if headers is None:
                headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)]
                if len(self._ok_headers) < 4096:  # answers of a function tend to have few distinct sizes
                    self._ok_headers[length] = headers
            return headers
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="jupyterlab-publish"'))
        return headers

    # -- other paths on a handed-off connection

    async def relay(self, scope, receive, send, slot: int | None = None) -> None:
        if self.upstream is None:
            message = f"{scope['path']} is not served here: this worker serves {self.prefix}"
            return await _send(send, *errors.answer("not_found", message), close=_has_body(scope["headers"]))
        answering = None if slot is None else (lambda: self.slots.writing(slot))
        try:
            await _Relay(self.upstream, scope, receive, send, answering).run()
        except _ClientGone:
            pass

    # -- pages

    @property
    def call_mode(self) -> str:
        return "batch" if self.batcher is not None else self.caller.mode

    def health(self) -> dict:
        return {
            "status": "ok",
            "name": self.served.name,
            "function": (self.served.manifest.get("function") or {}).get("name"),
            "python": platform.python_version(),
            "pid": os.getpid(),
            "handoff": self.handoff,
            "auth": self.keys is not None,
            "calls": self.call_mode,
        }

    def _pages_app(self):
        # Imported when serving: the kernel imports the runtime (json_ready...) without starlette.
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse, Response  # (as above)
        from starlette.routing import Route  # (as above)

        served, auth, keys = self.served, self.keys is not None, self.keys

        def json_bytes(value) -> bytes:
            return json.dumps(value, ensure_ascii=False).encode("utf-8")

        def with_sample(request) -> bool:
            # A keyed function's sample may hold real data: only callers with the key see it.
            return keys is None or keys.refusal(request.headers.get("authorization", "").encode("latin-1")
                                                or None) is None

        described = served.info()
        described["parameters"] = [{k: v for k, v in p.items() if k != "schema"} for p in self.parameters]
        info_bodies = {True: json_bytes(described),
                       False: json_bytes(dict(described, sample=None, sample_output=None))}
        documents = {
            (base, sample): describe.openapi_document(served, path=base or "/", auth=auth, parameters=self.parameters,
                                                      timeout=self.timeout is not None, with_sample=sample)
            for base in ("", self.prefix) for sample in (True, False)
        }

        def public_url(request) -> str:
            # The URL the client used: its Host (checked against --allowed-hosts when given).
            host = request.headers.get("host") or "{}:{}".format(*(request.scope.get("server") or ("localhost", 80)))
            return f"{request.url.scheme}://{host}"

        async def info(request):
            return Response(info_bodies[with_sample(request)], media_type="application/json")

        async def openapi(request):
            base = self.prefix if request.url.path.startswith(self.prefix) else ""
            document = dict(documents[base, with_sample(request)], servers=[{"url": public_url(request)}])
            return Response(json_bytes(document), media_type="application/json")

        async def docs(request):
            path = request.url.path[: -len("/docs")] or "/"
            page = describe.docs_page(served, self.parameters, invoke_url=public_url(request) + path, auth=auth,
                                      with_sample=with_sample(request))
            return HTMLResponse(page, headers={"content-security-policy": describe.DOCS_CSP})

        async def healthz(request):
            return JSONResponse(self.health())

        async def stats(request):
            return JSONResponse(self.stats.snapshot())

        async def not_found(request, exc):
            return JSONResponse(errors.payload("not_found", f"no route {request.url.path}; this worker serves "
                                f"{self.prefix} (POST to call, GET to describe, /docs, /openapi.json)"),
                                errors.STATUS["not_found"])

        async def not_allowed(request, exc):
            return JSONResponse(errors.payload("method_not_allowed", f"{request.method} is not allowed on "
                                f"{request.url.path}"), errors.STATUS["method_not_allowed"],
                                headers=getattr(exc, "headers", None))

        routes = [Route("/healthz", healthz, methods=["GET"]), Route("/stats", stats, methods=["GET"])]
        for base in ("", self.prefix):
            routes += [
                Route(base or "/", info, methods=["GET"]),
                Route(f"{base}/openapi.json", openapi, methods=["GET"]),
                Route(f"{base}/docs", docs, methods=["GET"]),
            ]
        routes.append(Route(f"{self.prefix}/", info, methods=["GET"]))
        app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
        app.state.bundle = served
        app.state.service = self
        return app


async def _send(send, status: int, body: bytes, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FunctionApp:
    """The ASGI app: invocations straight to the service, everything else to Starlette (or upstream)."""

    def __init__(self, service: FunctionEndpoint, *, handoff: bool):
        self.service = service
        self.pages = service.pages
        self.state = service.pages.state
        prefix = service.prefix
        self.invoke_paths = frozenset({prefix, f"{prefix}/"} | (set() if handoff else {"/"}))
        # On a handed-off connection only this function's paths are ours; the rest is the server's.
        own = {prefix, f"{prefix}/", f"{prefix}/openapi.json", f"{prefix}/docs"}
        self.own_paths = frozenset(own) if handoff else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            hosts = self.service.hosts
            if hosts is not None:
                refusal = hosts.refusal(scope["headers"], scope["method"])
                if refusal is not None:
                    return await _send(send, *errors.answer(*refusal), close=True)
            slots = self.service.slots
            if slots is not None and self.own_paths is not None:
                # A handed-off connection: its slot says "running" until the answer is out, so that
                # if this worker dies the server answers the client (or serves it when idle).
                slot = slots.begin(self.service.slot_of, scope)
                try:
                    return await self._route(scope, receive, send, slot)
                finally:
                    if slot is not None:
                        slots.idle(slot)
            if scope["method"] == "POST" and scope["path"] in self.invoke_paths:  # the hot path, one await less
                return await self.service.invoke(scope, receive, send, None)
        return await self._route(scope, receive, send, None)

    async def _route(self, scope, receive, send, slot) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if scope["method"] == "POST" and path in self.invoke_paths:
                return await self.service.invoke(scope, receive, send, slot)
            if self.own_paths is not None and path not in self.own_paths:
                return await self.service.relay(scope, receive, send, slot)
        await self.pages(scope, receive, send)
