"""HTTP face of the function server: the admin API (bearer token) and the public invocation routes.

Admin:  POST   /api/functions/{name}/versions?new_version=true|false&public=true|false   body: bundle .tar.gz
        GET    /api/functions            GET /api/functions/{name}            DELETE /api/functions/{name}
        POST   /api/functions/{name}/rollback?to=N          GET /api/functions/{name}/logs?version=N&lines=200
Public: POST   /functions/{name}         (proxied to a worker of the live version, Authorization included)
        GET    /functions/{name}         GET /functions/{name}/openapi.json   GET /functions/{name}/docs
        GET    /healthz                  GET /metrics (Prometheus, gathered from the workers)

Invocations handed off by the front door never reach this app; the ones that do are proxied, and
the worker checks the key either way (docs/bundle-format.md, "Invocation keys"). Only a worker whose
runtime predates keys (runtime contract 1) gets its key checked here instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Optional

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import PublishError
from . import metrics
from .auth import bearer_matches
from .core import FunctionService, check_name, sha256_hex
from .workers import WorkerPool, WorkerStartError

log = logging.getLogger("jupyterlab_publish.functions")

# Bundles carry pickled models, which can be large, but the disk is not unlimited.
MAX_BUNDLE_BYTES = 2 * 1024**3
DEFAULT_LOG_LINES = 200


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


def _number(request: Request, name: str, default: Optional[int]) -> Optional[int]:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise PublishError("bad_request", f"{name}={value!r} is not a whole number", f"e.g. {name}=2") from None


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
        async with _received_upload(request, service.layout.uploads) as archive:
            answer = await service.publish(name, archive, new_version, _base_url(request), public=public)
        return JSONResponse(answer, status_code=201)

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
        return JSONResponse(service.public_info(request.path_params["name"], _base_url(request)))

    async def openapi(request: Request):
        _, worker = await _running_worker(service, request.path_params["name"])
        answer = await service.client.get(worker.url + "/openapi.json")
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    async def docs(request: Request):
        _, worker = await _running_worker(service, request.path_params["name"])
        answer = await service.client.get(worker.url + "/docs")
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type", "text/html; charset=utf-8"))

    async def healthz(request: Request):
        return JSONResponse({
            "status": "ok", "pid": os.getpid(), "functions": len(service.workers),
            "handed_off": service.counters.get("handed_off", 0),
        })

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
            Route("/api/functions", list_functions, methods=["GET"]),
            Route("/api/functions/{name}", describe, methods=["GET"]),
            Route("/api/functions/{name}", delete, methods=["DELETE"]),
            Route("/api/functions/{name}/versions", publish, methods=["POST"]),
            Route("/api/functions/{name}/rollback", rollback, methods=["POST"]),
            Route("/api/functions/{name}/logs", logs, methods=["GET"]),
            Route("/functions/{name}", invoke, methods=["POST"]),
            Route("/functions/{name}", info, methods=["GET"]),
            Route("/functions/{name}/openapi.json", openapi, methods=["GET"]),
            Route("/functions/{name}/docs", docs, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
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
