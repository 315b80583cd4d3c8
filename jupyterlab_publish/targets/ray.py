"""The ``ray`` target: publish a function to a Ray cluster's Serve, through the dashboard's REST API.

Spec (docs/ray-target.md)::

    ray+http://HOST:8265?store=STORE_URL[&store_endpoint=URL][&serve=URL][&env=pip|uv|none][&insecure=1]
    ray+https://...                          the same, with the dashboard behind TLS

``HOST:8265`` is the Ray dashboard; ``store`` the bundle store (``file:///path`` for a one-machine
cluster, ``s3://bucket/prefix``); ``store_endpoint`` an S3-compatible endpoint; ``serve`` the URL
callers reach Serve's HTTP proxy at (default: the host the dashboard names, on Serve's port);
``env`` how a replica gets the bundle's packages (``pip`` with the locked pins, ``uv``, or ``none``
when the cluster's image has them); ``insecure=1`` allows a dashboard without Ray's token auth.

The token is never part of the spec (specs live in settings): it is ``token=`` (what the settings'
tokenEnv/tokenFile resolve to), else ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``.
It is sent only to the dashboard's address, never to the store or the Serve proxy. It also signs
the bundle (``key_from_token``), which each replica checks with the cluster's copy of the token, and
derives each function's key, so that anyone who may manage the cluster can show it and nothing
stores it: the config and the store hold only the key's sha256.

The kernel never imports ``ray``: this module uses urllib against the dashboard (GET the Serve
status, merge this function's application, PUT the whole config; others' applications are carried
over unchanged) and ``bundle_store`` (fsspec) for the bundles and version records.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

from ..errors import PublishError
from . import ray_config
from .base import DEFAULT_LOG_LINES, Deployment, Progress, Target, call_with_key, check_name, progress_or_noop
from .results import CallResult, FunctionInfo, FunctionSummary, LogTail, RollbackResult, VersionInfo
from .scale import Scale

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
SCHEMES = ("ray+http", "ray+https")
DEFAULT_SERVE_PORT = 8000
DEFAULT_TIMEOUT = 30.0
# How long a push or rollback waits for Serve to run the new version: a runtime_env with packages
# installs them on first use, which takes minutes for large ones.
DEFAULT_DEPLOY_TIMEOUT = 900.0
DEFAULT_CALL_TIMEOUT = 300.0
_POLL = 0.5
# Polls (of _POLL seconds) after which a config other than the one just applied means someone
# else's PUT replaced it.
_REPLACED_POLLS = 10
_KEY_CONTEXT = b"jupyterlab-publish ray function key v1\x00"
_QUERY_KEYS = ("store", "store_endpoint", "serve", "env", "insecure")
# The manifest's fields the Serve config is built from (ray_config.application), kept in each record.
_SERVING_FIELDS = ("batching", "requirements", "lock", "python")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def default_token() -> Optional[str]:
    """``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH`` names (Ray's own variables)."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    if value:
        return value
    path = os.environ.get(TOKEN_PATH_ENV)
    if path:
        try:
            return Path(path).expanduser().read_text("utf-8").strip() or None
        except OSError as exc:
            raise PublishError("target_error", f"cannot read the Ray token file {path} ({TOKEN_PATH_ENV}): "
                               f"{exc.strerror or exc}", f"check {TOKEN_PATH_ENV}, or set {TOKEN_ENV}") from exc
    return None


class RayTarget(Target):
    kind = "ray"
    label = "Ray Serve cluster"
    spec_example = "ray+http://127.0.0.1:8265?store=file:///shared/bundles"
    capabilities = frozenset({"list", "show", "versions", "rollback", "delete", "logs", "call", "docs", "scale"})

    def __init__(self, dashboard: str, store: str, *, token: Optional[str] = None, store_endpoint: Optional[str] = None,
                 serve: Optional[str] = None, env: str = "pip", insecure: bool = False,
                 deploy_timeout: float = DEFAULT_DEPLOY_TIMEOUT):
        parsed = urllib.parse.urlsplit(dashboard)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PublishError("unknown_target", f"{dashboard!r} is not the http(s) URL of a Ray dashboard",
                               "write the target as ray+http://HOST:8265?store=...")
        if env not in ray_config.ENV_MODES:
            raise PublishError("unknown_target", f"env={env!r} is not one of {', '.join(ray_config.ENV_MODES)}",
                               "use env=pip (default), env=uv, or env=none when the cluster's image has every package")
        self.dashboard = dashboard.rstrip("/")
        self.store_url = store.rstrip("/")
        self.store_endpoint = store_endpoint
        self.serve_override = serve.rstrip("/") if serve else None
        self.env = env
        self.insecure = insecure
        self._token_error = None
        if token and token.strip():
            self.token = token.strip()
        else:
            # An unreadable token file is reported when the token is needed, not when the target is
            # built: describing the configured targets for the UI must not fail on it.
            try:
                self.token = default_token()
            except PublishError as exc:
                self.token, self._token_error = None, exc
        self.deploy_timeout = deploy_timeout
        self._checked = False
        self._store = None

    @classmethod
    def from_spec(cls, spec: str, *, token: Optional[str] = None) -> "RayTarget":
        scheme, sep, rest = spec.strip().partition("://")
        scheme = scheme.lower()
        if scheme not in SCHEMES or not sep:
            raise PublishError(
                "unknown_target", f"{spec!r} is not a ray target spec",
                "write ray+http://DASHBOARD_HOST:8265?store=file:///path (ray:// is Ray Client's own address, "
                "which this target does not use)")
        parsed = urllib.parse.urlsplit(f"{scheme[4:]}://{rest}")
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(_QUERY_KEYS))
        if "token" in unknown:
            raise PublishError("bad_request", "a token does not belong in the target spec (specs are stored in settings)",
                               f"set {TOKEN_ENV} or {TOKEN_PATH_ENV}, or the target's tokenEnv/tokenFile setting")
        if unknown:
            raise PublishError("unknown_target", f"unknown setting {unknown[0]!r} in the ray target spec",
                               f"the settings are: {', '.join(_QUERY_KEYS)}")
        single = {key: values[-1] for key, values in query.items()}
        if not single.get("store"):
            raise PublishError("unknown_target", f"the ray target {spec!r} names no bundle store",
                               "add ?store=file:///path (a directory every Ray node can read) or ?store=s3://bucket/prefix")
        dashboard = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
        return cls(dashboard, single["store"], token=token, store_endpoint=single.get("store_endpoint") or None,
                   serve=single.get("serve") or None, env=single.get("env") or "pip",
                   insecure=_truthy(single.get("insecure")))

    def spec(self) -> str:
        query = {"store": self.store_url}
        if self.store_endpoint:
            query["store_endpoint"] = self.store_endpoint
        if self.serve_override:
            query["serve"] = self.serve_override
        if self.env != "pip":
            query["env"] = self.env
        if self.insecure:
            query["insecure"] = "1"
        return f"ray+{self.dashboard}?{urllib.parse.urlencode(query, safe=':/')}"

    def describe(self) -> dict:
        return {**super().describe(), "label": f"Ray Serve {self.dashboard}"}

    # -- the pieces: store, keys, signing ------------------------------------------------------

    @property
    def storage_options(self) -> dict:
        if self.store_endpoint:
            return {"client_kwargs": {"endpoint_url": self.store_endpoint}}
        return {}

    @property
    def store(self):
        if self._store is None:
            from .bundle_store import BundleStore  # fsspec loads with the first store use, not at import
            self._store = BundleStore(self.store_url, self.storage_options)
        return self._store

    def _secret(self) -> bytes:
        """What signs bundles and derives keys: the Ray token, or (insecure, no token) this user's key."""
        if self.token:
            return self.token.encode("utf-8")
        from ..bundle.signature import user_key  # cloudpickle comes with bundle/: load on use

        return user_key()

    def function_key(self, name: str) -> str:
        """The bearer key of ``name``: derived, so every holder of the token can show it again."""
        return hmac.new(self._secret(), _KEY_CONTEXT + name.encode("utf-8"), hashlib.sha256).hexdigest()

    def _key_digests(self, name: str, public: bool) -> list:
        return [] if public else [hashlib.sha256(self.function_key(name).encode("utf-8")).hexdigest()]

    # -- the dashboard ---------------------------------------------------------------------------

    def _request(self, path: str, *, method: str = "GET", body: Any = None, timeout: float = DEFAULT_TIMEOUT,
                 auth: bool = True, raw: bool = False):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(f"{self.dashboard}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth and self.token:
            # Unredirected: a redirect elsewhere must not carry the cluster's token with it.
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace").strip()[:2000]
            if exc.code in (401, 403) and auth:
                raise PublishError(
                    "target_error", f"the Ray dashboard at {self.dashboard} refused the token (HTTP {exc.code}: {text})",
                    f"set {TOKEN_ENV} (or {TOKEN_PATH_ENV}, or the target's tokenEnv/tokenFile) to the cluster's token",
                    {"status": exc.code}) from None
            raise PublishError("target_error", f"the Ray dashboard answered {method} {path} with HTTP {exc.code}: {text}",
                               "see the message; the cluster's dashboard log says more", {"status": exc.code}) from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PublishError("target_unreachable", f"cannot reach the Ray dashboard at {self.dashboard}: {reason}",
                               "check the address and that the cluster runs (ray start --head ...)") from None
        if raw:
            return payload
        try:
            return json.loads(payload.decode("utf-8") or "{}")
        except ValueError:
            raise PublishError("target_error", f"{self.dashboard}{path} did not answer JSON: is it a Ray dashboard?",
                               "check the target's address (the dashboard's port, 8265 by default)") from None

    def _check_secure(self) -> None:
        """Refuse a dashboard that answers without a token, unless the spec says insecure=1."""
        if self._checked:
            return
        if self._token_error is not None:
            raise self._token_error
        request = urllib.request.Request(f"{self.dashboard}/api/version")
        try:
            with urllib.request.urlopen(request, timeout=DEFAULT_TIMEOUT):
                open_to_all = True
        except urllib.error.HTTPError as exc:
            open_to_all = exc.code not in (401, 403)
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PublishError("target_unreachable", f"cannot reach the Ray dashboard at {self.dashboard}: {reason}",
                               "check the address and that the cluster runs (ray start --head ...)") from None
        if open_to_all and not self.insecure:
            raise PublishError(
                "insecure_target",
                f"the Ray dashboard at {self.dashboard} answers without a token: anyone who reaches it can run code "
                "on the cluster",
                "start the cluster with token auth (RAY_AUTH_MODE=token, Ray >= 2.52) and give its token, or, for a "
                "cluster only you can reach, add insecure=1 to the target spec",
                {"dashboard": self.dashboard})
        if not open_to_all and not self.token:
            raise PublishError("target_error", f"the Ray dashboard at {self.dashboard} needs a token and none was given",
                               f"set {TOKEN_ENV} or {TOKEN_PATH_ENV}, or the target's tokenEnv/tokenFile")
        self._checked = True

    def _status(self) -> dict:
        self._check_secure()
        return self._request("/api/serve/applications/")

    def _apply(self, config: dict) -> None:
        self._request("/api/serve/applications/", method="PUT", body=config, raw=True)

    def _serve_url(self, status: dict) -> str:
        if self.serve_override:
            return self.serve_override
        http = status.get("http_options") or {}
        host = http.get("host") or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):
            host = urllib.parse.urlsplit(self.dashboard).hostname
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{http.get('port') or DEFAULT_SERVE_PORT}"

    def _serve_bind(self) -> tuple:
        """Where Serve's proxy listens when this target is the first to start it (loopback by default)."""
        parsed = urllib.parse.urlsplit(self.serve_override or f"http://127.0.0.1:{DEFAULT_SERVE_PORT}")
        return parsed.hostname or "127.0.0.1", parsed.port or DEFAULT_SERVE_PORT

    def _function_url(self, status: dict, name: str) -> str:
        return self._serve_url(status) + ray_config.route_prefix(name)

    @staticmethod
    def _our_app(status: dict, name: str) -> Optional[dict]:
        details = (status.get("applications") or {}).get(name)
        if details and ray_config.is_ours(details.get("deployed_app_config")):
            return details
        return None

    # -- deploying -------------------------------------------------------------------------------

    def _deploy(self, status: dict, name: str, app: Optional[dict], previous: Optional[dict],
                report: Progress, *, smoke: Optional[tuple] = None) -> dict:
        """PUT the merged config and wait until Serve runs ``app`` (or has removed ``name``). On a
        failure the application ``name`` had before (``previous``) is put back, so it keeps serving."""
        host, port = self._serve_bind()
        self._apply(ray_config.merged_config(status, name, app, host=host, port=port))
        try:
            status = self._wait(name, None if app is None else app["args"]["version"], report)
            if smoke is not None:
                self._smoke_test(status, name, *smoke)
            return status
        except PublishError:
            if app is not None:
                self._restore(name, previous)
            raise

    def _restore(self, name: str, previous: Optional[dict]) -> None:
        """Put ``previous`` back (or remove ``name``) and wait until Serve runs it again."""
        try:
            status = self._status()
            host, port = self._serve_bind()
            self._apply(ray_config.merged_config(status, name, previous, host=host, port=port))
            self._wait(name, None if previous is None else (previous.get("args") or {}).get("version"),
                       progress_or_noop(None))
        except PublishError:
            pass  # the original error is the one to report; the restore's own is secondary

    def _wait(self, name: str, version: Optional[int], report: Progress) -> dict:
        deadline = time.monotonic() + self.deploy_timeout
        said = None
        others = 0  # polls that found another config than the one just applied
        while True:
            status = self._request("/api/serve/applications/")
            details = (status.get("applications") or {}).get(name)
            deployed = ((details or {}).get("deployed_app_config") or {}).get("args") or {}
            if version is None:
                if details is None:
                    return status
            elif details is None or deployed.get("version") != version:
                # Serve's API has no conditional PUT: a config someone applied just after ours wins.
                others += 1
                if others > _REPLACED_POLLS:
                    raise PublishError(
                        "target_error", f"another change to the cluster's Serve config replaced version {version} of "
                        f"{name} while it was starting", "see `jupyter publish show`, then publish again",
                        {"name": name, "version": version})
            else:
                state = details.get("status") or "NOT_STARTED"
                if state == "RUNNING":
                    return status
                if state in ("DEPLOY_FAILED", "UNHEALTHY"):
                    # The application's message is a summary; its deployment's holds the replica's error.
                    reasons = [details.get("message") or state] + [
                        deployment["message"] for deployment in (details.get("deployments") or {}).values()
                        if deployment.get("message")]
                    raise PublishError(
                        "smoke_test_failed",
                        f"Ray Serve could not start version {version} of {name}: {' '.join(reasons)}",
                        "read the replica's error above (a refused bundle, a missing package, a different "
                        "Python); the previous version is put back",
                        {"name": name, "version": version, "serve_status": state})
                if state != said:
                    said = state
                    report("starting", 0.7, f"Ray Serve: {name} is {state.lower().replace('_', ' ')}")
            if time.monotonic() > deadline:
                raise PublishError("timeout", f"Ray Serve did not run {name} within {self.deploy_timeout:g} s",
                                   "the cluster may lack free CPUs for the replicas, or the packages are still "
                                   "installing: see `jupyter publish logs` and the Ray dashboard")
            time.sleep(_POLL)

    def _smoke_test(self, status: dict, name: str, manifest: dict, key: Optional[str]) -> None:
        sample = manifest.get("sample")
        if sample is None:
            return
        result = self._post(self._function_url(status, name), sample, key)
        expected = manifest.get("sample_output")
        if not result.ok or (expected is not None and result.answer != expected):
            raise PublishError(
                "smoke_test_failed",
                f"{name} answered its sample on Ray Serve with HTTP {result.status}: {json.dumps(result.answer)[:500]}"
                + ("" if not result.ok else f" (the notebook answered {json.dumps(expected)[:200]})"),
                "fix the function or its requirements and publish again; the previous version keeps serving",
                {"name": name, "status": result.status})

    def push(self, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False,
             public: bool = False, scale: Any = None) -> Deployment:
        """Store the bundle, record the version, apply the config, wait for Serve, smoke-test it."""
        from ..bundle import pack_bundle  # cloudpickle comes with bundle/: load on use
        from ..bundle.signature import key_from_token  # (as above)

        report = progress_or_noop(progress)
        scale = self.check_scale(scale)
        manifest = bundle.manifest
        name = check_name(manifest.get("name"))
        status = self._status()
        current = (status.get("applications") or {}).get(name)
        if current is not None and not ray_config.is_ours(current.get("deployed_app_config")):
            raise PublishError("name_taken", f"the Ray cluster runs an application named {name} that was not "
                               "published by jupyterlab-publish", "choose another name for the function",
                               {"name": name})
        if not new_version:
            self.refuse_taken_name(name)
        prefix = ray_config.route_prefix(name)
        for other, details in (status.get("applications") or {}).items():
            if other != name and details.get("route_prefix") == prefix:
                raise PublishError("name_taken", f"the Serve application {other!r} already serves {prefix}",
                                   "choose another name for the function", {"name": name})
        environment_check = ray_config.runtime_env(manifest, self.env)  # refuses what a cluster cannot install
        report("pushing", 0.05, f"packing and storing the bundle in {self.store_url}")
        with tempfile.TemporaryDirectory(prefix="jupyterlab-publish-ray-") as tmp:
            archive = os.path.join(tmp, "bundle.tar.gz")
            pack_bundle(bundle, archive, signing_key=key_from_token(self.token) if self.token else None)
            digest = self.store.put_bundle(archive)
        key_digests = self._key_digests(name, public)
        version = self.store.add_version(name, {
            "digest": digest, "created": _now(), "provenance": manifest.get("provenance"),
            "function": manifest.get("function"), "scale": scale.to_dict(), "public": bool(public),
            "key_digests": key_digests, "runtime_env": environment_check,
            # What the config is built from, so a rollback needs only this record (the replica
            # fetches and checks the bundle itself).
            "serving": {field: manifest.get(field) for field in _SERVING_FIELDS},
        })
        report("pushing", 0.3, f"stored as version {version} ({digest[:12]}); applying the Serve config")
        app = ray_config.application(
            name=name, version=version, store_url=self.store_url, digest=digest, key_digests=key_digests,
            scale=scale, manifest=manifest, storage_options=self.storage_options, env=self.env,
            insecure=self.insecure and not self.token)
        key = None if public else self.function_key(name)
        previous = (current or {}).get("deployed_app_config")
        try:
            status = self._deploy(status, name, app, previous, report, smoke=(manifest, key))
        except PublishError:
            self._mark_failed(name, version)
            raise
        url = self._function_url(status, name)
        report("smoke_test", 1.0, f"version {version} is live at {url}")
        return Deployment(name=name, version=version, url=url, target=self.kind, key=key,
                          bundle_path=self.store.bundle_url(digest))

    def _mark_failed(self, name: str, version: int) -> None:
        try:
            self.store.mark_failed(name, version)
        except PublishError:
            pass  # only versions() reads it; the push's own error is what the user needs

    # -- management verbs --------------------------------------------------------------------------

    def list(self) -> list:
        status = self._status()
        out = []
        for name, details in sorted((status.get("applications") or {}).items()):
            deployed = details.get("deployed_app_config")
            if not ray_config.is_ours(deployed):
                continue
            args = deployed.get("args") or {}
            out.append(FunctionSummary(name=name, url=self._function_url(status, name),
                                       live_version=args.get("version"), public=not args.get("key_digests"),
                                       created=_seconds_iso(details.get("last_deployed_time_s"))))
        return out

    def show(self, name: str) -> FunctionInfo:
        name = check_name(name)
        status = self._status()
        details = self._our_app(status, name)
        records = self.store.records(name)
        if details is None and not records:
            raise PublishError("not_found", f"no function named {name} on {self.dashboard}",
                               "see the published functions with `jupyter publish list`", {"name": name})
        args = ((details or {}).get("deployed_app_config") or {}).get("args") or {}
        live = args.get("version")
        state = (details or {}).get("status")
        replicas = [replica for deployment in ((details or {}).get("deployments") or {}).values()
                    for replica in deployment.get("replicas") or ()]
        running = sum(1 for replica in replicas if replica.get("state") == "RUNNING")
        if details is None or state in ("DEPLOY_FAILED", "DELETING"):
            live_version, processes, restarts = None, 0, 0
        elif state == "UNHEALTHY":
            live_version, processes, restarts = live, 0, 1
        elif state == "RUNNING":
            live_version, processes, restarts = live, running, 0
        else:  # NOT_STARTED, DEPLOYING
            live_version, processes, restarts = live, 0, 0
        public = not args.get("key_digests") if details is not None else None
        return FunctionInfo(
            name=name, url=self._function_url(status, name), live_version=live_version, public=public,
            key=None if public or details is None else self.function_key(name),
            versions=tuple(self._version_infos(name, records, live)), processes=processes, restarts=restarts,
            scale=ray_config.scale_of((details or {}).get("deployed_app_config")),
        )

    def _version_infos(self, name: str, records: list, live: Optional[int]) -> list:
        failed = self.store.failed_versions(name)
        out = []
        for record in records:
            number = int(record["version"])
            state = "live" if number == live else ("failed" if number in failed else "retired")
            out.append(VersionInfo(version=number, status=state, created=record.get("created"),
                                   function=record.get("function"), location=self.store.bundle_url(record["digest"]),
                                   provenance=record.get("provenance")))
        return out

    def versions(self, name: str) -> list:
        return list(self.show(name).versions)

    def rollback(self, name: str, to: Optional[int] = None) -> RollbackResult:
        """Serve version ``to`` (default: the newest good one before the live one) again, from the store."""
        name = check_name(name)
        status = self._status()
        details = self._our_app(status, name)
        live = (((details or {}).get("deployed_app_config") or {}).get("args") or {}).get("version")
        records = {int(r["version"]): r for r in self.store.records(name)}
        if not records:
            raise PublishError("not_found", f"no function named {name} on {self.dashboard}",
                               "see the published functions with `jupyter publish list`", {"name": name})
        if to is None:
            failed = self.store.failed_versions(name)
            earlier = [n for n in records if live is not None and n < live and n not in failed]
            if not earlier:
                raise PublishError("target_error", f"{name} has no version before {live} to roll back to",
                                   "name a version: rollback(name, to=N)", {"name": name})
            to = max(earlier)
        to = int(to)
        if to not in records:
            raise PublishError("not_found", f"{name} has no version {to}",
                               f"see its versions with `jupyter publish versions {name}`", {"name": name, "version": to})
        if to == live:
            raise PublishError("target_error", f"version {to} of {name} is live already", "name another version")
        record = records[to]
        manifest = record.get("serving") or {}
        public = bool(record.get("public"))
        app = ray_config.application(
            name=name, version=to, store_url=self.store_url, digest=record["digest"],
            key_digests=self._key_digests(name, public), scale=Scale.from_dict(record.get("scale")),
            manifest=manifest, storage_options=self.storage_options, env=self.env,
            insecure=self.insecure and not self.token)
        status = self._deploy(status, name, app, (details or {}).get("deployed_app_config"), progress_or_noop(None))
        return RollbackResult(name=name, version=to, previous_version=live, url=self._function_url(status, name))

    def delete(self, name: str) -> None:
        name = check_name(name)
        status = self._status()
        details = self._our_app(status, name)
        if details is None and not self.store.version_numbers(name):
            raise PublishError("not_found", f"no function named {name} on {self.dashboard}",
                               "see the published functions with `jupyter publish list`", {"name": name})
        if details is not None:
            self._deploy(status, name, None, None, progress_or_noop(None))
        self.store.delete_function(name)

    def logs(self, name: str, version: Optional[int] = None, lines: int = DEFAULT_LOG_LINES) -> LogTail:
        """The Serve log of each running replica of the live version, from the dashboard's log API."""
        name = check_name(name)
        status = self._status()
        details = self._our_app(status, name)
        if details is None:
            raise PublishError("not_found", f"{name} is not running on {self.dashboard}",
                               "see the published functions with `jupyter publish list`", {"name": name})
        live = ((details.get("deployed_app_config") or {}).get("args") or {}).get("version")
        if version is not None and int(version) != live:
            raise PublishError("not_found", f"version {version} of {name} is not running, and its replicas' logs "
                               "went with them", f"the live version is {live}", {"name": name, "version": version})
        parts = []
        if details.get("message"):
            parts.append(f"== Serve: {details.get('status')}: {details['message']}")
        for deployment in (details.get("deployments") or {}).values():
            if deployment.get("message"):
                parts.append(f"== deployment {deployment.get('name')}: {deployment['message']}")
            for replica in deployment.get("replicas") or ():
                query = urllib.parse.urlencode({"node_id": replica.get("node_id", ""), "lines": int(lines),
                                                "filename": str(replica.get("log_file_path", "")).lstrip("/")})
                try:
                    text = self._request(f"/api/v0/logs/file?{query}", raw=True).decode("utf-8", "replace")
                except PublishError as exc:
                    text = f"(log not available: {exc.message})\n"
                parts.append(f"== replica {replica.get('replica_id')} (pid {replica.get('pid')}, "
                             f"{replica.get('state')})\n{text.rstrip()}")
        log = "\n".join(parts)
        tail = "\n".join(log.splitlines()[-int(lines):]) if lines else log
        return LogTail(name=name, version=int(live), lines=int(lines), log=tail)

    def call(self, name: str, payload: Any) -> CallResult:
        """POST ``payload`` to the function through Serve's proxy, with its key, as any caller would."""
        info = self.show(name)
        return self._post(info.url, payload, info.key)

    def docs(self, name: str) -> str:
        info = self.show(name)
        request = urllib.request.Request(f"{info.url}/docs")
        if info.key:
            request.add_header("Authorization", f"Bearer {info.key}")
        try:
            with urllib.request.urlopen(request, timeout=DEFAULT_TIMEOUT) as response:
                return response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            raise PublishError("not_found" if exc.code == 404 else "target_error",
                               f"{info.url}/docs answered HTTP {exc.code}", "check that the function is running") from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            raise PublishError("target_unreachable", f"cannot reach Serve at {info.url}: {getattr(exc, 'reason', exc)}",
                               "check the serve= address of the target") from None

    def _post(self, url: str, payload: Any, key: Optional[str]) -> CallResult:
        name = url.rstrip("/").rsplit("/", 1)[-1]
        try:
            # The function's key only: the Ray token never goes to the Serve proxy.
            return call_with_key(name, url, payload, key, DEFAULT_CALL_TIMEOUT)
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            raise PublishError("target_unreachable", f"cannot reach Serve at {url}: {getattr(exc, 'reason', exc)}",
                               "check that Serve's proxy runs and the target's serve= address") from None

    # -- for exports -------------------------------------------------------------------------------

    def cluster_ray_version(self) -> Optional[str]:
        """The Ray version the cluster runs (the dashboard's ``/api/version``), for an export's image."""
        self._check_secure()
        answer = self._request("/api/version")
        return str(answer["ray_version"]) if isinstance(answer, dict) and answer.get("ray_version") else None

    def python_minor(self, name: str) -> Optional[str]:
        """The Python minor version the live version of ``name`` was pickled with ("3.11"), if recorded."""
        info = self.show(name)
        for record in self.store.records(check_name(name)):
            if int(record["version"]) == info.live_version:
                return ((record.get("serving") or {}).get("python") or {}).get("minor")
        return None

    def serve_config(self, names: Optional[list] = None) -> dict:
        """The Serve config of this target's functions (all, or ``names``) as Serve runs them now:
        what ``jupyter publish export --format rayservice`` turns into a RayService."""
        status = self._status()
        apps = []
        for name, details in sorted((status.get("applications") or {}).items()):
            if ray_config.is_ours(details.get("deployed_app_config")) and (names is None or name in names):
                apps.append(details["deployed_app_config"])
        missing = sorted(set(names or ()) - {app["name"] for app in apps})
        if missing:
            raise PublishError("not_found", f"no function named {missing[0]} runs on {self.dashboard}",
                               "see the published functions with `jupyter publish list`", {"name": missing[0]})
        host, port = self._serve_bind()
        return {"proxy_location": status.get("proxy_location") or "HeadOnly",
                "http_options": ray_config.http_options(status, host, port), "applications": apps}


def _seconds_iso(seconds: Any) -> Optional[str]:
    if not isinstance(seconds, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")



__all__ = ["RayTarget", "default_token"]
