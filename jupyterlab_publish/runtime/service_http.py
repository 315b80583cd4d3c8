"""The HTTP face of a served function: auth, invocations, pages, and relaying foreign paths.

Part of the runtime copied into every bundle (see ``service.py``); standard library, plus starlette
for the pages. An invocation takes a lean ASGI path (one pass over the headers for auth and length,
the body, the call, precomputed response headers); the pages (info, OpenAPI, docs, /healthz,
/stats) are a Starlette app behind it. On a connection the function server handed over, a path
that is not this function's belongs to the server and is relayed to ``--upstream``.
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
import tempfile
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
RELAY_IN_MEMORY = 8 * 1024 * 1024  # a relayed body larger than this (a bundle upload) waits on disk
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


_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                         b"trailer", b"trailers", b"transfer-encoding", b"upgrade"})
_NO_ARGS: tuple = ()
_NO_KWARGS: dict = {}  # shared: ``fn(**kwargs)`` copies it, so nothing can change it
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # the endpoint-name rule


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


async def _spool_body(receive) -> tuple:
    """The request body in a file (memory first, then disk) and its size, for relaying it."""
    spool, size = tempfile.SpooledTemporaryFile(max_size=RELAY_IN_MEMORY), 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            spool.close()
            raise _ClientGone
        chunk = message.get("body", b"")
        spool.write(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            spool.seek(0)
            return spool, size


def _relay_blocking(upstream: tuple, scope: dict, body, size: int) -> tuple:
    """Send one request to the function server and return its (status, headers, body). In a thread."""
    import http.client  # it loads ssl; only relaying needs it, and the kernel imports the runtime too

    method = scope["method"]
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    connection = http.client.HTTPConnection(*upstream, timeout=FORWARD_TIMEOUT)
    try:
        connection.putrequest(method, target.decode("latin-1"), skip_host=True, skip_accept_encoding=True)
        forwarded_for = b""
        for name, value in scope["headers"]:
            name = name.lower()
            if name in _HOP_BY_HOP or name == b"content-length":
                continue
            if name == b"x-forwarded-for":
                forwarded_for = value + b", "
                continue
            connection.putheader(name, value)
        if scope.get("client"):
            # The server sees this worker as the peer: name the real client, so no one mistakes a
            # relayed request for a local one.
            connection.putheader(b"x-forwarded-for", forwarded_for + scope["client"][0].encode("latin-1"))
        if size or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            connection.putheader(b"content-length", str(size).encode("ascii"))
        connection.endheaders()
        if size:
            connection.send(body)  # a file: sent in blocks
        response = connection.getresponse()
        data = response.read()
        headers = []
        for name, value in response.getheaders():
            key = name.lower().encode("latin-1")
            # uvicorn adds its own date and server headers; the length is the one we send
            if key in _HOP_BY_HOP or key in (b"date", b"server") or (key == b"content-length" and method != "HEAD"):
                continue
            headers.append((key, value.encode("latin-1")))
        if method != "HEAD":
            headers.append((b"content-length", str(len(data)).encode("ascii")))
        return response.status, headers, data
    finally:
        connection.close()


class FunctionEndpoint:
    """One bundle's function served over HTTP: auth, counters, the call path, and the ASGI apps over them.

    ``private_app`` answers on the worker's own port: ``/`` and ``/functions/NAME`` (invoke, info,
    ``openapi.json``, ``docs``), ``/healthz`` and ``/stats``. ``handoff_app`` serves connections the
    function server handed over: only ``/functions/NAME...``; any other path goes to ``--upstream``.
    """

    def __init__(self, served: contract.ServedBundle, *, name: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 timeout: float | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 key_digests: tuple = (), upstream: str | None = None):
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
        self.stats = calls.Stats()
        self.handoff = False  # set once handed-off connections are being served
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

    async def invoke(self, scope, receive, send) -> None:
        stats = self.stats
        started = time.perf_counter()
        stats.in_flight += 1
        status = 500
        try:
            status, body = await self._answer(scope, receive)
            await send({"type": "http.response.start", "status": status, "headers": self._headers(status, len(body))})
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
            payload = json.loads(body)
        except ValueError as exc:
            how = contract.batch_contract(self.item_name) if self.batcher is not None else contract.CONTRACT
            return errors.answer("bad_request", f"the body is not valid JSON ({exc}): {how}")
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

    async def relay(self, scope, receive, send) -> None:
        if self.upstream is None:
            message = f"{scope['path']} is not served here: this worker serves {self.prefix}"
            return await _send(send, *errors.answer("not_found", message))
        try:
            body, size = await _spool_body(receive)
        except _ClientGone:
            return
        loop = asyncio.get_running_loop()
        try:
            status, headers, data = await loop.run_in_executor(None, _relay_blocking, self.upstream, scope, body, size)
        except Exception as exc:  # OSError, http.client.HTTPException: the server did not answer
            host, port = self.upstream
            return await _send(send, *errors.answer(
                "bad_gateway", f"the function server at http://{host}:{port} did not answer: {exc}"))
        finally:
            body.close()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

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

        served, auth = self.served, self.keys is not None

        def json_bytes(value) -> bytes:
            return json.dumps(value, ensure_ascii=False).encode("utf-8")

        described = served.info()
        described["parameters"] = [{k: v for k, v in p.items() if k != "schema"} for p in self.parameters]
        info_body = json_bytes(described)
        documents = {
            base: json_bytes(describe.openapi_document(served, path=base or "/", auth=auth, parameters=self.parameters,
                                                       timeout=self.timeout is not None))
            for base in ("", self.prefix)
        }

        async def info(request):
            return Response(info_body, media_type="application/json")

        async def openapi(request):
            base = self.prefix if request.url.path.startswith(self.prefix) else ""
            return Response(documents[base], media_type="application/json")

        async def docs(request):
            path = request.url.path[: -len("/docs")] or "/"
            host = request.headers.get("host") or "{}:{}".format(*(request.scope.get("server") or ("localhost", 80)))
            url = f"{request.url.scheme}://{host}{path}"
            page = describe.docs_page(served, self.parameters, invoke_url=url, auth=auth)
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


async def _send(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
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
            path = scope["path"]
            if scope["method"] == "POST" and path in self.invoke_paths:
                return await self.service.invoke(scope, receive, send)
            if self.own_paths is not None and path not in self.own_paths:
                return await self.service.relay(scope, receive, send)
        await self.pages(scope, receive, send)
