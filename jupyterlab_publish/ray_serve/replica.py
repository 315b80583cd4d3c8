"""The Serve application of one published function: ``build(args)`` and its replicas.

``build`` is the config's ``import_path``; Serve calls it with the application's ``args`` (see
``targets/ray_config.py``). Each replica, before anything is unpickled:

1. fetches the archive from the bundle store and checks its sha256 against ``args["digest"]``
   (the config pins the exact bytes; only Ray-token holders can write the config);
2. unpacks it with ``bundle.archive.unpack_bundle``, which checks the manifest's signature with
   the key derived from the cluster's own Ray token, and every file's sha256 against the manifest
   as it streams in (a cluster without token auth, allowed only by ``insecure``, skips the
   signature: the pinned digest is then the whole chain);

and only then loads the function with the runtime's own ``load_bundle`` and serves it through the
runtime's ``FunctionEndpoint``: the same calling contract, error bodies (400/401/413/422/500) and
key check (``args["key_digests"]``; Ray's HTTP proxy has no auth) as the function server. A
vectorised function's items are gathered by ``@serve.batch`` and run by the runtime's batch code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from ray import serve
from starlette.responses import Response

from jupyterlab_publish.bundle.archive import unpack_bundle
from jupyterlab_publish.bundle.signature import key_from_token
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.runtime import service_calls, service_contract, service_http
from jupyterlab_publish.targets.bundle_store import BundleStore
from jupyterlab_publish.targets.ray_config import DEPLOYMENT_NAME

log = logging.getLogger("ray.serve")

# Ray's own token sources, in Ray's order (docs.ray.io, token authentication).
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"


class BundleRefused(RuntimeError):
    """The replica refuses to load the bundle; the message says why (Serve shows it as the app's)."""


def cluster_token() -> Optional[str]:
    """The cluster's Ray token as this replica's process sees it, or None."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    if value:
        return value
    for path in (os.environ.get(TOKEN_PATH_ENV), DEFAULT_TOKEN_PATH):
        if path:
            try:
                value = Path(path).expanduser().read_text("utf-8").strip()
            except OSError:
                continue
            if value:
                return value
    return None


def fetch_verified(args: dict, dest: Path) -> Path:
    """Fetch, check and unpack the bundle ``args`` names into ``dest``; nothing is unpickled here."""
    name, digest = args["name"], args["digest"]
    archive = dest.parent / "bundle.tar.gz"
    try:
        # fetch_bundle checks the bytes' sha256 against the digest the config pins as they stream in.
        BundleStore(args["store"], args.get("storage_options") or {}).fetch_bundle(digest, str(archive))
    except PublishError as exc:
        raise BundleRefused(f"{name} v{args['version']}: {exc.message} ({exc.hint})") from None
    token = cluster_token()
    if token is None and not args.get("insecure"):
        raise BundleRefused(
            f"{name} v{args['version']}: this replica cannot read the cluster's Ray token ({TOKEN_ENV}, "
            f"{TOKEN_PATH_ENV} or {DEFAULT_TOKEN_PATH}), so it cannot check the bundle's signature; "
            "give the cluster token auth (RAY_AUTH_MODE=token), or publish with insecure=1 to a cluster without it")
    key = key_from_token(token) if token is not None else None
    try:
        unpack_bundle(archive, dest, key=key)
    except PublishError as exc:
        raise BundleRefused(f"{name} v{args['version']}: the bundle was refused: {exc.message}") from None
    finally:
        archive.unlink(missing_ok=True)
    return dest


class _ServeBatcher:
    """Stands in for the runtime's own batcher: Serve's ``@serve.batch`` gathers the items, the
    runtime's ``Batcher.run_batch`` calls the function on them (validator, per-item answers)."""

    def __init__(self, runner: service_calls.Batcher, batching: dict):
        loop_pool = runner.executor

        async def run(items: list) -> list:
            return await asyncio.get_running_loop().run_in_executor(loop_pool, runner.run_batch, items)

        self._run = serve.batch(max_batch_size=batching["max_batch_size"],
                                batch_wait_timeout_s=batching["max_wait_ms"] / 1000.0)(run)

    async def __call__(self, item) -> tuple:
        return await self._run(item)


@serve.deployment(name=DEPLOYMENT_NAME)
class PublishedFunction:
    def __init__(self, args: dict):
        self.args = args
        self._dir = tempfile.TemporaryDirectory(prefix=f"jupyterlab-publish-{args['name']}-v{args['version']}-")
        bundle_dir = fetch_verified(args, Path(self._dir.name) / "bundle")
        try:
            served = service_contract.load_bundle(bundle_dir)  # the first unpickling, after every check
            digests = tuple(bytes.fromhex(d) for d in args.get("key_digests") or ())
            self.endpoint = service_http.FunctionEndpoint(served, name=args["name"], key_digests=digests)
        except (service_contract.BundleError, service_http.SettingsError) as exc:
            raise BundleRefused(f"{args['name']} v{args['version']}: {exc}") from None
        if self.endpoint.batcher is not None:
            self.endpoint.batcher = _ServeBatcher(self.endpoint.batcher, served.batching)
        self.app = self.endpoint.private_app
        log.info("serving %s version %s (bundle %s)", args["name"], args["version"], args["digest"][:12])

    async def __call__(self, request) -> Response:
        # The runtime's ASGI app answers exactly as the function server's workers do; its messages
        # are gathered into one Response, which Serve's proxy sends.
        started: dict = {}
        body = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(request.scope, request.receive, send)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in started.get("headers", ())
                   if key.lower() not in (b"content-length", b"connection")}
        return Response(b"".join(body), status_code=started.get("status", 500), headers=headers)


def build(args: dict) -> Any:
    """The application builder the Serve config's ``import_path`` names."""
    for field in ("name", "version", "store", "digest"):
        if field not in args:
            raise ValueError(f"the Serve config's args lack {field!r}; publish the function again")
    return PublishedFunction.bind(args)


__all__ = ["BundleRefused", "PublishedFunction", "build", "cluster_token", "fetch_verified"]
