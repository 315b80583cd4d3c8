"""The function server's state machine: versions in the store, workers serving the live ones.

HTTP lives in ``app.py``; this module knows nothing about requests. Two kinds of per-name lock:
``_publish_locks`` serialise publishes and deletes of one function (which may take a while), and
``_worker_locks`` guard the short switch of the live worker, so invocations never wait on a publish.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Optional

import httpx

from ..bundle import unpack_bundle
from ..errors import PublishError
from ..targets.base import NAME_PATTERN
from .environment import EnvironmentMismatch, EnvironmentResolver, SharedInterpreter
from .layout import Layout
from .store import Store
from .workers import DEFAULT_START_TIMEOUT, Worker, WorkerStartError, reap_orphan, start_worker

log = logging.getLogger("jupyterlab_publish.functions")

SMOKE_TEST_TIMEOUT = 60.0
_VERSION_DIR = re.compile(r"^v[1-9][0-9]*$")


class Rejected(Exception):
    """A request the server refuses; ``body`` is the JSON answer (``error``, ``message``, ...)."""

    def __init__(self, status: int, error: str, message: str, hint: str = "", **extra):
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, "hint": hint, **extra}


def not_found(name: str) -> Rejected:
    return Rejected(404, "not_found", f"no function named {name}; list them with `jupyter publish list`")


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise Rejected(
            400, "invalid_name", f"{name!r} is not a valid function name",
            "use 1-63 characters: a lowercase letter first, then lowercase letters, digits or '-'",
        )


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    # The function's own directory goes too once its last version is gone: no empty leftovers.
    try:
        path.parent.rmdir()
    except OSError:
        pass


class FunctionService:
    def __init__(self, layout: Layout, resolver: Optional[EnvironmentResolver] = None,
                 start_timeout: float = DEFAULT_START_TIMEOUT):
        self.layout = layout
        self.store = Store(layout.db)
        self.resolver = resolver or SharedInterpreter()
        self.start_timeout = start_timeout
        self.client: Optional[httpx.AsyncClient] = None
        self.workers: dict = {}
        self._publish_locks = collections.defaultdict(asyncio.Lock)
        self._worker_locks = collections.defaultdict(asyncio.Lock)
        self._restore_task: Optional[asyncio.Task] = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        # One pooled client for health checks, smoke tests and proxying; function calls may be
        # slow, so reads get a long timeout while connecting to a local worker must be quick.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(300.0, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._recover()
        # Restart live workers in the background so the server answers /healthz at once; a request
        # that arrives first simply waits for its worker through ensure_worker.
        self._restore_task = asyncio.create_task(self._restore())

    async def close(self) -> None:
        if self._restore_task is not None:
            self._restore_task.cancel()
            await asyncio.gather(self._restore_task, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in self.workers.values()), return_exceptions=True)
        self.workers.clear()
        if self.client is not None:
            await self.client.aclose()
        self.store.close()

    def _recover(self) -> None:
        """Undo what a crashed server left half-done: staging versions, unrecorded directories, orphans."""
        # The run lock guarantees no other server uses this state directory, so any upload is stale.
        for upload in self.layout.uploads.iterdir():
            upload.unlink(missing_ok=True)
        for row in self.store.staging_versions():
            version_dir = Path(row["bundle_dir"]).parent
            reap_orphan(version_dir)
            _remove_tree(version_dir)
            self.store.remove_version(row["name"], row["version"])
        known = {Path(path).parent for path in self.store.known_bundle_dirs()}
        for function_dir in self.layout.functions.iterdir():
            for version_dir in function_dir.iterdir() if function_dir.is_dir() else ():
                if _VERSION_DIR.match(version_dir.name) and version_dir not in known:
                    _remove_tree(version_dir)
        for row in self.store.live_versions():
            reap_orphan(Path(row["bundle_dir"]).parent)

    async def _restore(self) -> None:
        for row in self.store.live_versions():
            try:
                await self.ensure_worker(row["name"])
            except (Rejected, WorkerStartError) as exc:
                log.error("could not restart %s v%s: %s", row["name"], row["version"], exc)

    # -- workers ---------------------------------------------------------------------------------

    async def ensure_worker(self, name: str) -> Worker:
        """The live version's running worker, (re)started if it is not running."""
        async with self._worker_locks[name]:
            worker = self.workers.get(name)
            if worker is not None and worker.alive():
                return worker
            live = self.store.live_version(name)
            if live is None:
                raise not_found(name)
            if worker is not None:
                log.warning("worker for %s v%s died; restarting it", name, worker.version)
                await worker.stop()
            version_dir = Path(live["bundle_dir"]).parent
            environment = await asyncio.to_thread(self.resolver.prepare, live["manifest"], version_dir)
            worker = await start_worker(name, live["version"], version_dir, environment, self.client,
                                        self.start_timeout)
            self.workers[name] = worker
            return worker

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, name: str, archive: Path, new_version: bool, base_url: str) -> dict:
        check_name(name)
        async with self._publish_locks[name]:
            if self.store.function_exists(name) and not new_version:
                raise self.name_taken(name)
            version = self.store.add_staging(name, lambda v: self.layout.version_dir(name, v) / "bundle")
            version_dir = self.layout.version_dir(name, version)
            worker = None
            try:
                shutil.rmtree(version_dir, ignore_errors=True)  # a leftover with our number is stale
                version_dir.mkdir(parents=True, mode=0o700)
                worker, smoke = await self._stage(name, version, version_dir, archive)
                async with self._worker_locks[name]:
                    self.store.promote(name, version)
                    previous = self.workers.get(name)
                    self.workers[name] = worker
            except BaseException:
                # Nothing of the failed version may remain: its worker, its files, its row.
                if worker is not None:
                    await worker.stop()
                _remove_tree(version_dir)
                self.store.remove_version(name, version)
                raise
            if previous is not None:
                await previous.stop()
        return {
            "name": name,
            "version": version,
            "url": f"{base_url}/functions/{name}",
            "bundle_dir": str(version_dir / "bundle"),
            "smoke_test": smoke,
        }

    def name_taken(self, name: str) -> Rejected:
        live = self.store.live_version(name)
        return Rejected(
            409, "name_taken",
            f"a function named {name} exists already (live version {live['version'] if live else '-'})",
            "publish a new version (new_version=true) or choose another name",
            name=name,
        )

    async def _stage(self, name: str, version: int, version_dir: Path, archive: Path):
        """Unpack, verify, start and smoke-test a version; return its worker and the test outcome."""
        try:
            # unpack_bundle checks every file's sha256 before anything could be unpickled.
            bundle = await asyncio.to_thread(unpack_bundle, archive, version_dir / "bundle")
        except PublishError as exc:
            raise Rejected(400, exc.code, exc.message, exc.hint) from exc
        manifest = bundle.manifest
        self.store.set_manifest(name, version, manifest)
        try:
            environment = await asyncio.to_thread(self.resolver.prepare, manifest, version_dir)
        except EnvironmentMismatch as exc:
            raise Rejected(400, "target_error", exc.message, exc.hint) from exc
        try:
            worker = await start_worker(name, version, version_dir, environment, self.client, self.start_timeout)
        except WorkerStartError as exc:
            raise Rejected(422, "smoke_test_failed", exc.message, _SMOKE_HINT, log=exc.log) from exc
        try:
            smoke = await self._smoke_test(worker, manifest)
        except BaseException:
            await worker.stop()
            raise
        return worker, smoke

    async def _smoke_test(self, worker: Worker, manifest: dict) -> str:
        """Call the new worker with the manifest's sample; its answer must match the notebook's."""
        sample = manifest.get("sample")
        if sample is None:
            return "skipped"
        try:
            response = await self.client.post(worker.url + "/", json=sample, timeout=SMOKE_TEST_TIMEOUT)
        except httpx.HTTPError as exc:
            raise self._smoke_failure(worker, f"the sample request to the new version failed: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        if response.status_code != 200:
            detail = answer.get("message") if isinstance(answer, dict) else answer
            raise self._smoke_failure(
                worker, f"the new version answered the sample input {json.dumps(sample)} with HTTP "
                f"{response.status_code}: {detail}"
            )
        if "sample_output" in manifest and answer != manifest["sample_output"]:
            raise self._smoke_failure(
                worker, f"the new version answered the sample input {json.dumps(sample)} with "
                f"{json.dumps(answer)[:500]}, but the notebook computed {json.dumps(manifest['sample_output'])[:500]}"
            )
        return "passed"

    @staticmethod
    def _smoke_failure(worker: Worker, message: str) -> Rejected:
        return Rejected(422, "smoke_test_failed", message, _SMOKE_HINT, log=worker.log_tail())

    # -- reading and deleting --------------------------------------------------------------------

    def list_functions(self, base_url: str) -> list:
        out = []
        for function in self.store.functions():
            live = self.store.live_version(function["name"])
            out.append({
                "name": function["name"],
                "created": function["created"],
                "live_version": live["version"] if live else None,
                "url": f"{base_url}/functions/{function['name']}",
            })
        return out

    def describe(self, name: str, base_url: str) -> dict:
        versions = self.store.versions(name)
        if not self.store.function_exists(name):
            raise not_found(name)
        live = next((v for v in versions if v["status"] == "live"), None)
        return {
            "name": name,
            "url": f"{base_url}/functions/{name}",
            "live_version": live["version"] if live else None,
            "versions": [
                {key: v[key] for key in ("version", "status", "created")} | {"function": v["manifest"].get("function")}
                for v in versions
            ],
        }

    def public_info(self, name: str, base_url: str) -> dict:
        live = self.store.live_version(name)
        if live is None:
            raise not_found(name)
        manifest = live["manifest"]
        return {
            "name": name,
            "version": live["version"],
            "url": f"{base_url}/functions/{name}",
            "function": manifest.get("function"),
            "sample": manifest.get("sample"),
            "created": live["created"],
            "usage": "POST a JSON array (positional arguments) or object (keyword arguments)",
        }

    async def delete(self, name: str) -> None:
        async with self._publish_locks[name]:
            if not self.store.function_exists(name):
                raise not_found(name)
            async with self._worker_locks[name]:
                worker = self.workers.pop(name, None)
                self.store.delete_function(name)
            if worker is not None:
                await worker.stop()
            shutil.rmtree(self.layout.function_dir(name), ignore_errors=True)


_SMOKE_HINT = (
    "the previous version (if any) is still serving; fix the function or its sample input and "
    "publish again. The worker log is attached."
)
