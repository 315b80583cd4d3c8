"""HTTP face of the function server: the admin API (bearer token) and the public invocation routes.

Admin:  POST   /api/functions/{name}/versions?new_version=true|false&public=true|false   body: bundle .tar.gz
        GET    /api/functions            GET /api/functions/{name}            DELETE /api/functions/{name}
        POST   /api/functions/{name}/rollback?to=N          GET /api/functions/{name}/logs?version=N&lines=200
Public: POST   /functions/{name}         (proxied to a worker of the live version, Authorization included)
        GET    /functions/{name}         GET /functions/{name}/openapi.json   GET /functions/{name}/docs
        GET    /healthz                  GET /api/prove?nonce=HEX (proof of holding the admin token)
Admin:  GET    /metrics (Prometheus, gathered from the workers; bearer admin token)

Invocations handed off by the front door never reach this app; the ones that do are proxied, and
the worker checks the key either way (docs/bundle-format.md, "Invocation keys"). Only a worker whose
runtime predates keys (runtime contract 1) gets its key checked here instead.

Every request first passes ``HostGuard``: a Host the server does not answer to (DNS rebinding) or a
request from another site's page (``Origin``, ``Sec-Fetch-Site``) is refused 403 ``forbidden_origin``
before routing; workers apply the same rules to the connections handed to them.
``GET /api/prove?nonce=N`` (no auth) answers ``server_proof(token, N)``: how the local target makes
sure the server named by server.json holds the token before it sends it (state/proof.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Optional

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import PublishError
from ..state.proof import NONCE_PATTERN, server_proof
from . import metrics
from .auth import bearer_matches
from .core import FunctionService, check_name, sha256_hex
from .workers import WorkerPool, WorkerStartError

log = logging.getLogger("jupyterlab_publish.functions")

# Bundles carry pickled models, which can be large, but the disk is not unlimited.
MAX_BUNDLE_BYTES = 2 * 1024**3
DEFAULT_LOG_LINES = 200
# Version numbers and line counts in a query: anything larger is a mistake, not a version.
MAX_QUERY_NUMBER = 2**31 - 1
# A staged version waits at most this long for its client's promote (publish with ?hold=SECONDS).
MAX_HOLD_SECONDS = 900
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


# -- Host and Origin: who may talk to this server ------------------------------------------------


def server_host_names(bind_host: str, extra=()) -> tuple:
    """The Host names served: loopback names, the bound address (not a wildcard), then ``extra``.

    A name without a port matches any port; ``name:port`` only that port.
    """
    names = list(LOOPBACK_HOSTS)
    host = (bind_host or "").strip().lower()
    if host not in _WILDCARD_HOSTS:
        names.append(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    names += [name.lower() for name in extra]
    return tuple(dict.fromkeys(names))


def _split_host(host: str) -> tuple:
    """(name, port or None) of a Host header value or allow-list entry."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else None
    else:
        name, colon, port = host.rpartition(":")
        if not colon or not port.isdigit():
            name, port = host, None
    return name, port


class HostGuard:
    """ASGI middleware: refuse (403 ``forbidden_origin``) what a browser sends on another site's behalf
    (and, 400, a request without a Host).

    - ``Host`` must be one of ``allowed`` (``server_host_names``): a page of evil.example whose name
      was rebound to 127.0.0.1 still says ``Host: evil.example``.
    - ``Origin``, when sent, must be this request's own origin (``http(s)://`` + its Host).
    - ``Sec-Fetch-Site: cross-site`` is refused, except a top-level navigation that only reads
      (``Sec-Fetch-Mode: navigate``, GET/HEAD): a link to a docs page opens; it cannot send a key.
    """

    def __init__(self, app, allowed: tuple):
        self.app = app
        self.any_port = frozenset(_split_host(name)[0] for name in allowed if _split_host(name)[1] is None)
        self.exact = frozenset(name for name in allowed if _split_host(name)[1] is not None)
        self.allowed = allowed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope["method"], scope["headers"])
            if refusal is not None:
                answer = JSONResponse(refusal.http_body(), status_code=refusal.http_status,
                                      headers={"connection": "close"})
                return await answer(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers) -> Optional[PublishError]:
        host = origin = site = mode = None
        for name, value in headers:
            if name == b"host":
                host = value.decode("latin-1").strip().lower()
            elif name == b"origin":
                origin = value.decode("latin-1").strip().lower()
            elif name == b"sec-fetch-site":
                site = value.decode("latin-1").strip().lower()
            elif name == b"sec-fetch-mode":
                mode = value.decode("latin-1").strip().lower()
        if not host:  # not a browser's doing, just a malformed request (as the workers answer it)
            return PublishError("bad_request", "the request has no Host header, which HTTP/1.1 requires",
                                "send the Host header, e.g. Host: 127.0.0.1:<port>")
        if host not in self.exact and _split_host(host)[0] not in self.any_port:
            return _forbidden(
                f"this function server does not answer to the host name {host[:100]!r} (it answers to "
                f"{', '.join(self.allowed)})",
                "use http://127.0.0.1:<port>, or start the server with --allowed-host NAME "
                "(or $JUPYTERLAB_PUBLISH_ALLOWED_HOSTS) to serve it under that name")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return _forbidden(f"requests from pages of {origin[:100]} are refused: only this server's own pages "
                              "may call it from a browser",
                              "call the function from a server or a script, not from another site's page")
        if site == "cross-site" and not (mode == "navigate" and method in ("GET", "HEAD")):
            return _forbidden("a cross-site request from a browser is refused",
                              "call the function from a server or a script, not from another site's page")
        return None


def _forbidden(message: str, hint: str) -> PublishError:
    return PublishError("forbidden_origin", message, hint)


# -- errors: every refusal is a PublishError, answered here with its code's status ----------------


async def _publish_error_answer(request: Request, exc: PublishError) -> JSONResponse:
    """The one place the server turns an error into an answer: ``errors.HTTP_STATUS`` and
    ``PublishError.http_body()``; the http target reads the same code back."""
    headers = {"www-authenticate": 'Bearer realm="jupyterlab-publish"'} if exc.code == "unauthorized" else None
    return JSONResponse(exc.http_body(), status_code=exc.http_status, headers=headers)


async def _no_route(request: Request, exc: HTTPException) -> JSONResponse:
    return await _publish_error_answer(request, PublishError(
        "not_found", f"no route {request.url.path} on this function server",
        "the admin API is under /api/functions, functions under /functions/<name>"))


async def _method_not_allowed(request: Request, exc: HTTPException) -> JSONResponse:
    answer = await _publish_error_answer(request, PublishError(
        "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"))
    answer.headers.update(exc.headers or {})  # Starlette's Allow header
    return answer


EXCEPTION_HANDLERS = {PublishError: _publish_error_answer, 404: _no_route, 405: _method_not_allowed}


def _base_url(request: Request) -> str:
    # The address the client used to reach us is the one it can use to call the function.
    return str(request.base_url).rstrip("/")


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise PublishError("bad_request", f"{name}={value!r} is not a boolean", f"write {name}=true or {name}=false")


def _path_version(request: Request) -> int:
    text = request.path_params["version"]
    if not _WHOLE_NUMBER.fullmatch(text) or text.startswith("-") or len(text) > 10:
        raise PublishError("bad_request", f"version {text[:40]!r} is not a version number", "e.g. .../versions/2")
    return int(text)


def _number(request: Request, name: str, default: Optional[int]) -> Optional[int]:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    # Digits only, and few: int() of a 100,000-digit string is slow, and sqlite takes 64 bits at most.
    text = value.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise PublishError("bad_request", f"{name}={value[:40]!r} is not a whole number", f"e.g. {name}=2")
    if len(text.lstrip("-")) > 10 or abs(int(text)) > MAX_QUERY_NUMBER:
        raise PublishError("bad_request", f"{name}={text[:40]}{'...' if len(text) > 40 else ''} is out of range: "
                           f"it must be at most {MAX_QUERY_NUMBER}", f"e.g. {name}=2")
    return int(text)


def _key_accepted(header: Optional[str], keys_sha256: tuple) -> bool:
    """The proxy's own check, for workers whose runtime does not check keys (bundles built before)."""
    if not keys_sha256:
        return True
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    presented = sha256_hex(value.strip())
    return any(secrets.compare_digest(presented, accepted) for accepted in keys_sha256)


def unauthorized_call(name: str) -> PublishError:
    return PublishError("unauthorized", f"calling {name} needs its key: send 'Authorization: Bearer <key>'",
                        f"`jupyter publish show {name}` shows the key; publish with public=true for keyless calls")


def create_server_app(service: FunctionService, token: str, on_startup=None, on_shutdown=None) -> Starlette:
    """The function server's Starlette app (the runtime's per-bundle app is ``runtime.service.create_app``)."""
    settings = service.settings

    def admin(handler):
        @functools.wraps(handler)
        async def wrapped(request: Request):
            if not bearer_matches(request.headers.get("authorization"), token):
                raise PublishError(
                    "unauthorized", "the admin API needs 'Authorization: Bearer <admin token>'",
                    "the token is in the server's state directory, file 'token'",
                )
            try:
                return await handler(request)
            except PublishError:
                raise
            except Exception as exc:
                # A bug or an environmental failure (disk full...): answer JSON the client can show.
                log.exception("admin request %s %s failed", request.method, request.url.path)
                raise PublishError("internal", f"the function server failed: {type(exc).__name__}: {exc}",
                                   "see the server's log (server.log in its state directory)") from exc

        return wrapped

    @admin
    async def publish(request: Request):
        name = request.path_params["name"]
        check_name(name)
        new_version = _flag(request, "new_version")
        public = _flag(request, "public")
        if service.store.function_exists(name) and not new_version:
            raise service.name_taken(name)  # answer before receiving a possibly large upload
        hold = _number(request, "hold", None)
        if hold is not None and not 1 <= hold <= MAX_HOLD_SECONDS:
            raise PublishError("bad_request", f"hold={hold} is out of range",
                               f"hold a staged version between 1 and {MAX_HOLD_SECONDS} seconds")
        async with _received_upload(request, service.layout.uploads) as archive:
            answer = await service.publish(name, archive, new_version, _base_url(request), public=public, hold=hold)
        # 202: staged and smoke-tested, waiting for promote; 201: live.
        return JSONResponse(answer, status_code=202 if answer.get("staged") else 201)

    @admin
    async def promote(request: Request):
        name = request.path_params["name"]
        check_name(name)
        answer = await service.promote(name, _path_version(request))
        return JSONResponse(answer, status_code=201)

    @admin
    async def abandon(request: Request):
        name = request.path_params["name"]
        check_name(name)
        version = _path_version(request)
        await service.abandon(name, version)
        return JSONResponse({"abandoned": name, "version": version})

    @admin
    async def list_functions(request: Request):
        return JSONResponse({"functions": service.list_functions(_base_url(request))})

    @admin
    async def describe(request: Request):
        return JSONResponse(service.describe(request.path_params["name"], _base_url(request)))

    @admin
    async def delete(request: Request):
        name = request.path_params["name"]
        await service.delete(name)
        return JSONResponse({"deleted": name})

    @admin
    async def rollback(request: Request):
        answer = await service.rollback(request.path_params["name"], _number(request, "to", None), _base_url(request))
        return JSONResponse(answer)

    @admin
    async def logs(request: Request):
        return JSONResponse(service.logs(request.path_params["name"], _number(request, "version", None),
                                         _number(request, "lines", DEFAULT_LOG_LINES)))

    async def invoke(request: Request):
        name = request.path_params["name"]
        pool = await _live_pool(service, name)
        authorization = request.headers.get("authorization")
        if not pool.checks_keys and not _key_accepted(authorization, pool.launch.keys_sha256):
            raise unauthorized_call(name)
        body = await _bounded_body(request, settings.max_body)
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        if authorization is not None:
            headers["authorization"] = authorization  # the worker checks it ("Invocation keys")
        pool, worker = await _running_worker(service, name)
        try:
            try:
                answer = await service.client.post(worker.url + "/", content=body, headers=headers)
            except httpx.ConnectError:
                # Nothing reached the worker (it died since it was picked): have it restarted and
                # retry once on a running one. Only a connect error is retried: after that the
                # function may already have run.
                pool.report_unreachable(worker)
                pool, worker = await _running_worker(service, name)
                answer = await service.client.post(worker.url + "/", content=body, headers=headers)
        except httpx.TimeoutException:
            raise PublishError("timeout", f"{name} did not answer within {settings.request_timeout:g} s",
                               "the server's --request-timeout sets the limit") from None
        except httpx.HTTPError as exc:
            raise PublishError("worker_failed", f"the worker serving {name} failed during the call: {exc!r}",
                               f"see `jupyter publish logs {name}`; it is being restarted",
                               {"log": pool.log_tail()}) from exc
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type", "application/json"))

    async def info(request: Request):
        name = request.path_params["name"]
        # A keyed function's sample is its owner's data: shown only to a caller holding its key.
        return JSONResponse(service.public_info(name, _base_url(request),
                                                with_sample=service.key_opens(name, request.headers.get("authorization"))))

    async def page(request: Request, page_name: str, media_type: str):
        """A page the live worker renders (openapi.json, docs), for the URL the client used."""
        name = request.path_params["name"]
        pool, worker = await _running_worker(service, name)
        authorization = request.headers.get("authorization")
        if pool.launch.features.contract < 3 and not service.key_opens(name, authorization):
            # A runtime older than contract 3 shows a keyed function's sample to anyone: key only.
            raise PublishError("unauthorized", f"the pages of {name} need its key: send "
                               "'Authorization: Bearer <key>'",
                               f"`jupyter publish show {name}` shows the key")
        # The worker names the URL it is asked under: give it the client's Host (already checked).
        headers = {"host": request.headers["host"]}
        if authorization is not None:
            headers["authorization"] = authorization  # the worker shows a keyed sample only with it
        named = "--name" in pool.launch.features.flags  # contract 2 on: the worker serves /functions/NAME/...
        path = f"/functions/{name}/{page_name}" if named else f"/{page_name}"
        answer = await service.client.get(worker.url + path, headers=headers)
        kept = {key: answer.headers[key] for key in ("content-security-policy",) if key in answer.headers}
        return Response(answer.content, status_code=answer.status_code, headers=kept,
                        media_type=answer.headers.get("content-type", media_type))

    async def openapi(request: Request):
        return await page(request, "openapi.json", "application/json")

    async def docs(request: Request):
        return await page(request, "docs", "text/html; charset=utf-8")

    async def prove(request: Request):
        # Unauthenticated on purpose: the answer proves we hold the token without revealing it.
        nonce = request.query_params.get("nonce", "")
        if not NONCE_PATTERN.fullmatch(nonce):
            raise PublishError("bad_request", "nonce must be 32 to 128 hexadecimal digits",
                               "send GET /api/prove?nonce=<random hex>")
        return JSONResponse({"proof": server_proof(token, nonce)})

    async def healthz(request: Request):
        # Whether function code is kept from the server's secrets is worth a glance without the token;
        # the reason and worker user stay in server.json, which only the server's user can read.
        sandbox = settings.sandbox
        return JSONResponse({
            "status": "ok", "pid": os.getpid(), "functions": len(service.workers),
            "handed_off": service.counters.get("handed_off", 0),
            "sandbox": None if sandbox is None else {"mode": sandbox.mode, "secrets_hidden": sandbox.secrets_hidden},
        })

    @admin
    async def prometheus(request: Request):
        # Invocations are counted by the workers that serve them; ask each live process.
        targets = [
            (name, pool.version, url)
            for name, pool in list(service.workers.items())
            for url in pool.worker_urls()
        ]
        stats = await metrics.gather(service.client, targets)
        server = dict(service.counters, live_functions=len(service.store.live_versions()))
        return Response(metrics.render(stats, server), media_type=metrics.CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.open()
        if on_startup is not None:
            on_startup()
        try:
            yield
        finally:
            await service.close()
            if on_shutdown is not None:
                on_shutdown()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/api/prove", prove, methods=["GET"]),
            Route("/api/functions", list_functions, methods=["GET"]),
            Route("/api/functions/{name}", describe, methods=["GET"]),
            Route("/api/functions/{name}", delete, methods=["DELETE"]),
            Route("/api/functions/{name}/versions", publish, methods=["POST"]),
            Route("/api/functions/{name}/versions/{version}/promote", promote, methods=["POST"]),
            Route("/api/functions/{name}/versions/{version}", abandon, methods=["DELETE"]),
            Route("/api/functions/{name}/rollback", rollback, methods=["POST"]),
            Route("/api/functions/{name}/logs", logs, methods=["GET"]),
            Route("/functions/{name}", invoke, methods=["POST"]),
            Route("/functions/{name}", info, methods=["GET"]),
            Route("/functions/{name}/openapi.json", openapi, methods=["GET"]),
            Route("/functions/{name}/docs", docs, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(HostGuard, allowed=settings.allowed_hosts or server_host_names(""))],
    )


async def _live_pool(service: FunctionService, name: str) -> WorkerPool:
    try:
        return await service.ensure_worker(name)
    except WorkerStartError as exc:
        raise PublishError("unavailable", f"{name} is not running and could not be restarted: {exc.message}",
                           f"see `jupyter publish logs {name}`; publish a fixed version or roll back",
                           {"log": exc.log}) from exc


async def _running_worker(service: FunctionService, name: str):
    """(pool, worker) to proxy one call to: the next running process of the live version."""
    pool = await _live_pool(service, name)
    worker = pool.next_worker()
    if worker is None:  # it died between the check and now
        pool = await _live_pool(service, name)
        worker = pool.next_worker()
    if worker is None:
        raise PublishError("unavailable", f"{name} is restarting; try again in a moment",
                           f"see `jupyter publish logs {name}`", {"log": pool.log_tail()})
    return pool, worker


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_large = PublishError("payload_too_large", f"the request body exceeds {limit} bytes",
                             "send less data per call, or start the server with a larger --max-body")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _bundle_too_large() -> PublishError:
    return PublishError("payload_too_large", f"the bundle exceeds {MAX_BUNDLE_BYTES} bytes",
                        "leave large data out of the function's captures, or load it from a file or URL at run time")


@contextlib.asynccontextmanager
async def _received_upload(request: Request, directory: Path):
    """Stream the request body to a temporary file (bounded), yield its path, then delete it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BUNDLE_BYTES:
        raise _bundle_too_large()
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar.gz", dir=str(directory))
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BUNDLE_BYTES:
                    raise _bundle_too_large()
                handle.write(chunk)
        if size == 0:
            raise PublishError("invalid_bundle", "the request has no body; send the bundle as .tar.gz",
                               "pack the bundle with pack_bundle")
        yield path
    finally:
        path.unlink(missing_ok=True)
