"""HTTP face of the function server: the admin API (bearer token) and the public invocation routes.

Admin:  POST   /api/functions/{name}/versions?new_version=true|false   body: bundle .tar.gz
        GET    /api/functions            GET /api/functions/{name}            DELETE /api/functions/{name}
Public: POST   /functions/{name}         (proxied to the live version's worker)
        GET    /functions/{name}         GET /functions/{name}/openapi.json   GET /healthz
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import bearer_matches
from .core import FunctionService, Rejected, check_name
from .workers import WorkerStartError

log = logging.getLogger("jupyterlab_publish.functions")

# Bundles carry pickled models, which can be large, but the disk is not unlimited.
MAX_BUNDLE_BYTES = 2 * 1024**3
# The worker enforces its own (smaller) limit; this one only bounds what the proxy buffers.
MAX_CALL_BYTES = 64 * 1024**2


def _error(status: int, error: str, message: str, hint: str = "", **extra) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "hint": hint, **extra}, status_code=status)


def _base_url(request: Request) -> str:
    # The address the client used to reach us is the one it can use to call the function.
    return str(request.base_url).rstrip("/")


def _handles_rejections(handler):
    @functools.wraps(handler)
    async def wrapped(request: Request):
        try:
            return await handler(request)
        except Rejected as exc:
            return JSONResponse(exc.body, status_code=exc.status)

    return wrapped


def create_app(service: FunctionService, token: str, on_startup=None, on_shutdown=None) -> Starlette:
    def admin(handler):
        @functools.wraps(handler)
        async def wrapped(request: Request):
            if not bearer_matches(request.headers.get("authorization"), token):
                return _error(
                    401, "unauthorized", "the admin API needs 'Authorization: Bearer <admin token>'",
                    "the token is in the server's state directory, file 'token'",
                )
            try:
                return await handler(request)
            except Rejected:
                raise
            except Exception as exc:
                # A bug or an environmental failure (disk full...): answer JSON the client can show.
                log.exception("admin request %s %s failed", request.method, request.url.path)
                return _error(500, "internal", f"the function server failed: {type(exc).__name__}: {exc}",
                              "see the server's log (server.log in its state directory)")

        return _handles_rejections(wrapped)

    @admin
    async def publish(request: Request):
        name = request.path_params["name"]
        check_name(name)
        new_version = request.query_params.get("new_version", "false").lower() in ("1", "true", "yes")
        if service.store.function_exists(name) and not new_version:
            raise service.name_taken(name)  # answer before receiving a possibly large upload
        async with _received_upload(request, service.layout.uploads) as archive:
            answer = await service.publish(name, archive, new_version, _base_url(request))
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

    @_handles_rejections
    async def invoke(request: Request):
        name = request.path_params["name"]
        worker = await _live_worker(service, name)
        body = await request.body()
        if len(body) > MAX_CALL_BYTES:
            return _error(413, "payload_too_large", f"the request body exceeds {MAX_CALL_BYTES} bytes")
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        try:
            try:
                answer = await service.client.post(worker.url + "/", content=body, headers=headers)
            except httpx.ConnectError:
                # Nothing reached the worker (it died since it was checked): restart it, retry once.
                # Only a connect error is retried: after that the function may already have run.
                # A worker that refuses connections is broken even if its process lingers: stop it
                # (this waits for a dying one to be reaped) so ensure_worker starts a fresh one.
                await worker.stop(timeout=2.0)
                worker = await _live_worker(service, name)
                answer = await service.client.post(worker.url + "/", content=body, headers=headers)
        except httpx.TimeoutException:
            return _error(504, "timeout", f"{name} did not answer in time")
        except httpx.HTTPError as exc:
            return _error(502, "worker_failed", f"the worker serving {name} failed during the call: {exc!r}",
                          "see its worker.log; the next request restarts it", log=worker.log_tail())
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type", "application/json"))

    @_handles_rejections
    async def info(request: Request):
        return JSONResponse(service.public_info(request.path_params["name"], _base_url(request)))

    @_handles_rejections
    async def openapi(request: Request):
        worker = await _live_worker(service, request.path_params["name"])
        answer = await service.client.get(worker.url + "/openapi.json")
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    async def healthz(request: Request):
        return JSONResponse({"status": "ok", "pid": os.getpid(), "functions": len(service.workers)})

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
            Route("/api/functions", list_functions, methods=["GET"]),
            Route("/api/functions/{name}", describe, methods=["GET"]),
            Route("/api/functions/{name}", delete, methods=["DELETE"]),
            Route("/api/functions/{name}/versions", publish, methods=["POST"]),
            Route("/functions/{name}", invoke, methods=["POST"]),
            Route("/functions/{name}", info, methods=["GET"]),
            Route("/functions/{name}/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def _live_worker(service: FunctionService, name: str):
    try:
        return await service.ensure_worker(name)
    except WorkerStartError as exc:
        raise Rejected(503, "unavailable", f"{name} is not running and could not be restarted: {exc.message}",
                       "see the log below; publish a fixed version", log=exc.log) from exc


@contextlib.asynccontextmanager
async def _received_upload(request: Request, directory: Path):
    """Stream the request body to a temporary file (bounded), yield its path, then delete it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BUNDLE_BYTES:
        raise Rejected(413, "bad_request", f"the bundle exceeds {MAX_BUNDLE_BYTES} bytes")
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar.gz", dir=str(directory))
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BUNDLE_BYTES:
                    raise Rejected(413, "bad_request", f"the bundle exceeds {MAX_BUNDLE_BYTES} bytes")
                handle.write(chunk)
        if size == 0:
            raise Rejected(400, "invalid_bundle", "the request has no body; send the bundle as .tar.gz",
                           "pack the bundle with pack_bundle")
        yield path
    finally:
        path.unlink(missing_ok=True)
