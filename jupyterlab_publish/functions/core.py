"""The function server's state machine: versions in the store, worker pools serving the live ones.

HTTP lives in ``app.py``; this module knows nothing about requests. Two kinds of per-name lock:
``_publish_locks`` serialise publishes, rollbacks and deletes of one function (which may take a
while), and ``_worker_locks`` guard the short switch of the live pool, so invocations never wait on
a publish.

``workers`` maps each function name to its live version's ``WorkerPool`` (see ``workers.py`` for the
methods the front door and /metrics use); ``counters`` holds the server-wide counts /metrics shows.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import logging
import re
import secrets
import shutil
import tarfile
import zlib
from pathlib import Path
from typing import Optional

import httpx

from ..bundle import unpack_bundle
from ..errors import PublishError
from ..names import ENDPOINT_NAME as NAME_PATTERN
from ..state.logs import tail
from .environment import EnvironmentMismatch, EnvironmentResolver, SharedInterpreter
from .layout import Layout
from .settings import ServingSettings
from .store import Store
from .workers import DEFAULT_START_TIMEOUT, Launch, WorkerPool, WorkerStartError, reap_orphan, runtime_features

log = logging.getLogger("jupyterlab_publish.functions")

SMOKE_TEST_TIMEOUT = 60.0
MAX_LOG_LINES = 10_000
_VERSION_DIR = re.compile(r"^v[1-9][0-9]*$")


# A request the server refuses raises PublishError; app.py answers it with the code's HTTP status
# (errors.HTTP_STATUS) and ``PublishError.http_body()``.


def not_found(name: str) -> PublishError:
    return PublishError("not_found", f"no function named {name}; list them with `jupyter publish list`")


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise PublishError(
            "invalid_name", f"{name!r} is not a valid function name",
            "use 1-63 characters: a lowercase letter first, then lowercase letters, digits or '-'",
        )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    # The function's own directory goes too once its last version is gone: no empty leftovers.
    try:
        path.parent.rmdir()
    except OSError:
        pass


@dataclasses.dataclass
class _Staged:
    """A version that passed its smoke test, before (or while held from) going live."""

    version: int
    version_dir: Path
    pool: WorkerPool
    key: str
    public: bool
    smoke: str
    base_url: str
    expiry: Optional[asyncio.TimerHandle] = None


class FunctionService:
    def __init__(self, layout: Layout, resolver: Optional[EnvironmentResolver] = None,
                 start_timeout: float = DEFAULT_START_TIMEOUT, *, settings: Optional[ServingSettings] = None,
                 admin_token: str = "", upstream: str = "", signing_key: Optional[bytes] = None):
        self.layout = layout
        self.store = Store(layout.db)
        self.resolver = resolver or SharedInterpreter()
        self.start_timeout = start_timeout
        self.settings = settings or ServingSettings()
        self.admin_token = admin_token  # also accepted as an invocation key (the owner may call anything)
        self.upstream = upstream  # this server's URL, for workers that receive handed-off connections
        self.signing_key = signing_key  # bundles' manifest signatures are checked with it (None: not checked)
        self.client: Optional[httpx.AsyncClient] = None
        self.workers: dict = {}  # name -> WorkerPool of the live version
        self.counters: dict = {"publishes": 0, "worker_restarts": 0}
        self._publish_locks = collections.defaultdict(asyncio.Lock)
        self._retiring = collections.defaultdict(set)  # name -> tasks stopping replaced workers (_retire)
        self._held: dict = {}  # name -> _Staged: smoke-tested, waiting for promote (publish(hold=...))
        self._worker_locks = collections.defaultdict(asyncio.Lock)
        self._restore_task: Optional[asyncio.Task] = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        # One pooled client for health checks, smoke tests and proxying; function calls may be
        # slow, so reads get the request timeout while connecting to a local worker must be quick.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.request_timeout + 5.0, connect=5.0),
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
        for name, held in list(self._held.items()):  # a held version never went live: drop it
            await asyncio.gather(self.abandon(name, held.version), return_exceptions=True)
        retiring = [task for tasks in self._retiring.values() for task in tasks]
        await asyncio.gather(*(pool.stop() for pool in self.workers.values()), *retiring, return_exceptions=True)
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
                if not _VERSION_DIR.match(version_dir.name):
                    continue
                if version_dir in known:
                    reap_orphan(version_dir)  # a worker of any version the dead server ran (a rollback's)
                else:
                    _remove_tree(version_dir)

    async def _restore(self) -> None:
        for row in self.store.live_versions():
            try:
                await self._pool_for_live(row["name"])
            except (PublishError, WorkerStartError) as exc:
                log.error("could not restart %s v%s: %s", row["name"], row["version"], exc)

    # -- keys --------------------------------------------------------------------------------------

    def _function_key(self, name: str) -> str:
        """The function's invocation key: the stored one, or a new one (first publish, or a
        function published before keys existed, which gets its key now)."""
        function = self.store.function(name)
        if function is not None and function["key"]:
            return function["key"]
        key = secrets.token_urlsafe(32)
        if function is not None:
            self.store.set_key(name, key)
        return key

    def key_opens(self, name: str, authorization: Optional[str]) -> bool:
        """True if ``name`` is public or ``authorization`` carries its key (or the admin token)."""
        function = self.store.function(name)
        if function is None or function["public"]:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return False
        presented = sha256_hex(value.strip())
        return any(secrets.compare_digest(presented, accepted)
                   for accepted in self._accepted_keys(self._function_key(name), False))

    def _accepted_keys(self, key: str, public: bool) -> tuple:
        """sha256 of the bearer keys a worker accepts (docs/bundle-format.md, "Invocation keys");
        empty means public."""
        if public:
            return ()
        return tuple(sha256_hex(k) for k in (key, self.admin_token) if k)

    # -- workers ---------------------------------------------------------------------------------

    def _new_pool(self, name: str, version: int, version_dir: Path, manifest: dict, environment,
                  keys: tuple) -> WorkerPool:
        features = runtime_features(manifest)  # the manifest says how to start its runtime
        launch = Launch(name=name, version=version, version_dir=version_dir, environment=environment,
                        settings=self.settings, features=features, keys_sha256=keys, upstream=self.upstream,
                        allowed_hosts=tuple(self.settings.allowed_hosts))
        return WorkerPool(launch, self.client, self.start_timeout, self.counters)

    async def _pool_for_live(self, name: str) -> WorkerPool:
        """The live version's pool, created (and left to start itself, supervised) if there is none."""
        async with self._worker_locks[name]:
            pool = self.workers.get(name)
            if pool is not None:
                return pool
            live = self.store.live_version(name)
            if live is None:
                raise not_found(name)
            function = self.store.function(name) or {"public": False}
            version_dir = Path(live["bundle_dir"]).parent
            try:
                environment = await asyncio.to_thread(self.resolver.prepare, live["manifest"], version_dir)
            except EnvironmentMismatch as exc:
                raise WorkerStartError(exc.message, "") from exc
            keys = self._accepted_keys(self._function_key(name), function["public"])
            pool = self._new_pool(name, live["version"], version_dir, live["manifest"], environment, keys)
            self.workers[name] = pool
            pool.supervise()
            return pool

    async def ensure_worker(self, name: str) -> WorkerPool:
        """The live version's pool with at least one running process; WorkerStartError if none comes up."""
        pool = self.workers.get(name)
        if pool is None or not pool.alive():
            pool = await self._pool_for_live(name)
            if not await pool.wait_alive(self.start_timeout):
                raise WorkerStartError(
                    f"no worker of {name} v{pool.version} is running; it is being restarted after crashing",
                    pool.log_tail(),
                )
        return pool

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, name: str, archive: Path, new_version: bool, base_url: str, public: bool = False,
                      hold: Optional[float] = None) -> dict:
        """Stage, smoke-test and switch to a new version; answer what is live.

        With ``hold`` (seconds) the staged, smoke-tested version is kept running without taking
        traffic until ``promote`` (or ``abandon``) is asked for it, or ``hold`` runs out, which
        abandons it. A client uses this to run its own check (the kernel's pre-flight) while the
        server starts the version, instead of one after the other. Meanwhile the name's publish
        lock stays taken, so another publish of the same name waits.
        """
        check_name(name)
        # Before anything else: a bundle made for another name must not go live under this one.
        _check_bundle_name(name, await asyncio.to_thread(manifest_name, archive))
        lock = self._publish_locks[name]
        await lock.acquire()
        try:
            if self.store.function_exists(name) and not new_version:
                raise self.name_taken(name)
            key = self._function_key(name)
            version = self.store.add_staging(name, lambda v: self.layout.version_dir(name, v) / "bundle")
            version_dir = self.layout.version_dir(name, version)
            pool = None
            try:
                shutil.rmtree(version_dir, ignore_errors=True)  # a leftover with our number is stale
                version_dir.mkdir(parents=True, mode=0o700)
                pool, smoke = await self._stage(name, version, version_dir, archive,
                                                keys_sha256=self._accepted_keys(key, public))
            except BaseException:
                await self._discard(name, version, version_dir, pool)
                raise
            staged = _Staged(version, version_dir, pool, key, public, smoke, base_url)
            if hold is not None:
                staged.expiry = asyncio.get_running_loop().call_later(
                    hold, lambda: asyncio.ensure_future(self._expire(name, version)))
                self._held[name] = staged
                return {**self._published(name, staged), "staged": True, "hold_seconds": hold}
        except BaseException:
            lock.release()
            raise
        try:
            return await self._switch_to(name, staged)
        finally:
            lock.release()

    async def promote(self, name: str, version: int) -> dict:
        """Switch traffic to the version ``publish(hold=...)`` staged; ``not_found`` if it is not held."""
        staged = self._take_held(name, version)
        try:
            return await self._switch_to(name, staged)
        finally:
            self._publish_locks[name].release()

    async def abandon(self, name: str, version: int) -> None:
        """Stop and remove a held version; the live one never stopped serving."""
        staged = self._take_held(name, version)
        try:
            await self._discard(name, version, staged.version_dir, staged.pool)
        finally:
            self._publish_locks[name].release()

    async def _expire(self, name: str, version: int) -> None:
        held = self._held.get(name)
        if held is not None and held.version == version:
            log.warning("%s v%d was staged but neither promoted nor abandoned in time: abandoning it", name, version)
            await self.abandon(name, version)

    def _take_held(self, name: str, version: int) -> "_Staged":
        held = self._held.get(name)
        if held is None or held.version != version:
            raise PublishError("not_found", f"{name} has no staged version {version} waiting to go live",
                               "it went live, was abandoned, or its hold ran out: publish again",
                               {"name": name, "version": version})
        del self._held[name]
        if held.expiry is not None:
            held.expiry.cancel()
        return held

    async def _switch_to(self, name: str, staged: "_Staged") -> dict:
        async with self._worker_locks[name]:
            self.store.promote(name, staged.version, key=staged.key, public=staged.public)
            previous = self.workers.get(name)
            self.workers[name] = staged.pool
        if previous is not None:
            self._retire(name, previous)
        self.counters["publishes"] += 1
        return self._published(name, staged)

    def _retire(self, name: str, pool: WorkerPool) -> None:
        """Stop a replaced version's workers without keeping the caller waiting: they drain their
        calls in progress (up to --drain-timeout) while the new version already takes traffic."""
        task = asyncio.create_task(pool.stop())
        retiring = self._retiring[name]
        retiring.add(task)
        task.add_done_callback(retiring.discard)

    async def _retired(self, name: str) -> None:
        """Wait until ``name``'s replaced workers have stopped: a rollback may start the very version
        they run, in the same directory."""
        await asyncio.gather(*self._retiring[name], return_exceptions=True)

    async def _discard(self, name: str, version: int, version_dir: Path, pool) -> None:
        """Nothing of a failed or abandoned version may remain: its workers, its files, its row."""
        if pool is not None:
            await pool.stop()
        _remove_tree(version_dir)
        self.store.remove_version(name, version)

    @staticmethod
    def _published(name: str, staged: "_Staged") -> dict:
        return {
            "name": name,
            "version": staged.version,
            "url": f"{staged.base_url}/functions/{name}",
            "bundle_dir": str(staged.version_dir / "bundle"),
            "smoke_test": staged.smoke,
            "key": None if staged.public else staged.key,
            "public": staged.public,
        }

    def name_taken(self, name: str) -> PublishError:
        live = self.store.live_version(name)
        return PublishError(
            "name_taken",
            f"a function named {name} exists already (live version {live['version'] if live else '-'})",
            "publish a new version (new_version=true) or choose another name",
            {"name": name},
        )

    async def _stage(self, name: str, version: int, version_dir: Path, archive: Path, *, keys_sha256: tuple = ()):
        """Unpack, verify, start and smoke-test a version; return its worker pool and the test outcome."""
        # With the key, unpack_bundle checks the signature, then each file's sha256 as it streams
        # in: nothing unverified reaches the version directory, nothing is unpickled here at all.
        # Its PublishError (invalid_bundle...) is the answer as it stands.
        bundle = await asyncio.to_thread(unpack_bundle, archive, version_dir / "bundle", key=self.signing_key)
        manifest = bundle.manifest
        _check_bundle_name(name, manifest.get("name"))  # the verified manifest, should the first peek differ
        self.store.set_manifest(name, version, manifest)
        try:
            environment = await asyncio.to_thread(self.resolver.prepare, manifest, version_dir)
        except EnvironmentMismatch as exc:
            raise PublishError("environment_mismatch", exc.message, exc.hint) from exc
        pool = self._new_pool(name, version, version_dir, manifest, environment, keys_sha256)
        try:
            await pool.start()
        except WorkerStartError as exc:
            raise PublishError("smoke_test_failed", exc.message, _SMOKE_HINT, {"log": exc.log}) from exc
        try:
            smoke = await self._smoke_test(pool, manifest)
        except BaseException:
            await pool.stop()
            raise
        return pool, smoke

    async def _smoke_test(self, pool: WorkerPool, manifest: dict) -> str:
        """Call the new worker with the manifest's sample; its answer must match the notebook's."""
        sample = manifest.get("sample")
        if sample is None:
            return "skipped"
        # The admin token is one of the keys every keyed worker accepts.
        headers = {"authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        try:
            response = await self.client.post(pool.url + "/", json=sample, headers=headers, timeout=SMOKE_TEST_TIMEOUT)
        except httpx.HTTPError as exc:
            raise self._smoke_failure(pool, f"the sample request to the new version failed: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        if response.status_code != 200:
            detail = answer.get("message") if isinstance(answer, dict) else answer
            raise self._smoke_failure(
                pool, f"the new version answered the sample input {json.dumps(sample)} with HTTP "
                f"{response.status_code}: {detail}"
            )
        if "sample_output" in manifest and answer != manifest["sample_output"]:
            raise self._smoke_failure(
                pool, f"the new version answered the sample input {json.dumps(sample)} with "
                f"{json.dumps(answer)[:500]}, but the notebook computed {json.dumps(manifest['sample_output'])[:500]}"
            )
        return "passed"

    @staticmethod
    def _smoke_failure(pool: WorkerPool, message: str) -> PublishError:
        return PublishError("smoke_test_failed", message, _SMOKE_HINT, {"log": pool.log_tail()})

    # -- rollback --------------------------------------------------------------------------------

    async def rollback(self, name: str, to: Optional[int], base_url: str) -> dict:
        """Make an earlier version live again: start it, health-check it, switch, stop the current one."""
        async with self._publish_locks[name]:
            await self._retired(name)
            function = self.store.function(name)
            if function is None:
                raise not_found(name)
            live = self.store.live_version(name)
            target = self._rollback_target(name, to, live)
            version_dir = Path(target["bundle_dir"]).parent
            keys = self._accepted_keys(self._function_key(name), function["public"])
            try:
                environment = await asyncio.to_thread(self.resolver.prepare, target["manifest"], version_dir)
                pool = self._new_pool(name, target["version"], version_dir, target["manifest"], environment, keys)
                await pool.start()
            except EnvironmentMismatch as exc:
                raise PublishError("target_error",
                                   f"cannot roll {name} back to v{target['version']}: {exc.message}", exc.hint) from exc
            except WorkerStartError as exc:
                raise PublishError(
                    "target_error", f"cannot roll {name} back to v{target['version']}: {exc.message}",
                    f"v{live['version'] if live else '-'} is still serving; see the log below", {"log": exc.log},
                ) from exc
            try:
                async with self._worker_locks[name]:
                    previous_version = self.store.roll_back(name, target["version"])
                    previous = self.workers.get(name)
                    self.workers[name] = pool
            except BaseException:
                await pool.stop()
                raise
            if previous is not None:
                self._retire(name, previous)
        log.info("rolled %s back from v%s to v%s", name, previous_version, target["version"])
        return {"name": name, "version": target["version"], "previous_version": previous_version,
                "url": f"{base_url}/functions/{name}"}

    def _rollback_target(self, name: str, to: Optional[int], live: Optional[dict]) -> dict:
        if to is None:
            target = self.store.previously_live(name)
            if target is None:
                raise PublishError("target_error", f"{name} has no earlier version to roll back to",
                                   f"`jupyter publish show {name}` lists its versions")
            return target
        target = self.store.version(name, to)
        if target is None:
            raise PublishError("not_found", f"{name} has no version {to}",
                               f"`jupyter publish show {name}` lists its versions")
        if target["status"] == "live":
            raise PublishError("target_error", f"v{to} of {name} is already live", "nothing to do")
        if target["status"] != "retired":
            raise PublishError("target_error", f"v{to} of {name} is {target['status']} and cannot go live",
                               "roll back to a version that was live before, or publish a fixed version")
        return target

    # -- reading and deleting --------------------------------------------------------------------

    def list_functions(self, base_url: str) -> list:
        out = []
        for function in self.store.functions():
            live = self.store.live_version(function["name"])
            out.append({
                "name": function["name"],
                "created": function["created"],
                "live_version": live["version"] if live else None,
                "public": function["public"],
                "url": f"{base_url}/functions/{function['name']}",
            })
        return out

    def describe(self, name: str, base_url: str) -> dict:
        versions = self.store.versions(name)
        function = self.store.function(name)
        if function is None:
            raise not_found(name)
        live = next((v for v in versions if v["status"] == "live"), None)
        pool = self.workers.get(name)
        return {
            "name": name,
            "url": f"{base_url}/functions/{name}",
            "version": live["version"] if live else None,
            "live_version": live["version"] if live else None,
            "public": function["public"],
            "key": None if function["public"] else self._function_key(name),
            "processes": len(pool.running()) if pool is not None else 0,
            "restarts": pool.restarts if pool is not None else 0,
            "versions": [
                {key: v[key] for key in ("version", "status", "created")}
                | {"function": v["manifest"].get("function"), "provenance": v["manifest"].get("provenance")}
                for v in versions
            ],
        }

    def public_info(self, name: str, base_url: str, *, with_sample: bool = True) -> dict:
        """What anyone may read about a function; a keyed one's sample only ``with_sample`` (the key)."""
        live = self.store.live_version(name)
        if live is None:
            raise not_found(name)
        manifest = live["manifest"]
        return {
            "name": name,
            "version": live["version"],
            "url": f"{base_url}/functions/{name}",
            "function": manifest.get("function"),
            "sample": manifest.get("sample") if with_sample else None,
            "created": live["created"],
            "usage": "POST a JSON array (positional arguments) or object (keyword arguments)",
        }

    def logs(self, name: str, version: Optional[int], lines: int) -> dict:
        """The last ``lines`` lines of a version's worker.log (default: the live version)."""
        if not self.store.function_exists(name):
            raise not_found(name)
        if not 1 <= lines <= MAX_LOG_LINES:
            raise PublishError("bad_request", f"lines must be between 1 and {MAX_LOG_LINES}, not {lines}")
        if version is None:
            row = self.store.live_version(name) or (self.store.versions(name) or [None])[-1]
        else:
            row = self.store.version(name, version)
        if row is None:
            raise PublishError("not_found", f"{name} has no version {version}",
                               f"`jupyter publish show {name}` lists its versions")
        log_path = Path(row["bundle_dir"]).parent / "worker.log"
        return {"name": name, "version": row["version"], "lines": lines, "log": tail(log_path, lines)}

    async def delete(self, name: str) -> None:
        async with self._publish_locks[name]:
            if not self.store.function_exists(name):
                raise not_found(name)
            async with self._worker_locks[name]:
                pool = self.workers.pop(name, None)
                self.store.delete_function(name)
            if pool is not None:
                await pool.stop()
            shutil.rmtree(self.layout.function_dir(name), ignore_errors=True)


def manifest_name(archive: Path) -> Optional[str]:
    """The endpoint name in the archive's manifest.json, read without unpacking anything else.

    Bundles are packed with the manifest first (pack_bundle); an archive that does not start with
    one gives None here and is refused by unpack_bundle, which verifies it in full.
    """
    try:
        with tarfile.open(archive, mode="r|gz") as tar:  # a stream: only the first member is read
            member = tar.next()
            if member is None or member.name.lstrip("./") != "manifest.json" or not member.isfile():
                return None
            if member.size > _MAX_MANIFEST_PEEK:
                return None
            source = tar.extractfile(member)
            manifest = json.loads(source.read().decode("utf-8")) if source is not None else None
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error):
        return None
    name = manifest.get("name") if isinstance(manifest, dict) else None
    return name if isinstance(name, str) else None


def _check_bundle_name(name: str, bundled: Optional[str]) -> None:
    if bundled is not None and bundled != name:
        raise PublishError(
            "bad_request", f"the bundle is for the function {bundled!r}, not {name!r}: it was pushed to the wrong name",
            f"push it to /api/functions/{bundled}/versions, or build the bundle again with name={name!r}",
            {"bundle_name": bundled, "name": name},
        )


_MAX_MANIFEST_PEEK = 16 * 1024 * 1024

_SMOKE_HINT = (
    "the previous version (if any) is still serving; fix the function or its sample input and "
    "publish again. The worker log is attached."
)
