"""The Serve config of a published function: pure functions from a version to Ray Serve's schema.

The ``ray`` target PUTs the result to the dashboard's ``/api/serve/applications/``; the RayService
export (``targets/rayservice.py``) writes the same dict as ``serveConfigV2``. Nothing here talks to
a network or imports ``ray``: it builds dicts, so both callers and the tests see one definition.

One application per function, named like the function, served under ``/functions/<name>``, whose
``import_path`` is the replica's application builder (``jupyterlab_publish.ray_serve.replica:build``)
and whose ``args`` (the builder's argument, ``ReplicaArgs`` in ``ray_serve/replica.py``) say which
bundle to fetch and how to check it::

    {"name", "version", "store": the bundle store's root URL, "digest": sha256 of the archive,
     "storage_options": {...},
     "key_digests": [sha256 hex of each accepted key], "insecure": bool}

The config holds no secret: keys appear only as digests, store credentials come from the cluster's
environment (AWS_* for s3://), and the bundle's signature is checked with a key the replica derives
from the cluster's own Ray token (docs/ray-target.md, "Trust chain").
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..errors import PublishError
from ..requirement import Requirement, canonical_name
from .scale import Scale

IMPORT_PATH = "jupyterlab_publish.ray_serve.replica:build"
DEPLOYMENT_NAME = "PublishedFunction"
ROUTE_PREFIX = "/functions/"
# The one lock entry the bundle runtime adds for itself; the cluster has these through jupyterlab-publish.
RUNTIME_REQUIRER = "service runtime"
ENV_MODES = ("pip", "uv", "none")
# What a replica takes while a vectorised function's requests gather into a batch.
BATCH_ONGOING_FACTOR = 2
# Requests Serve hands one replica at once. Serve's default (5) makes its proxy queue and back off
# as soon as more callers than that arrive: measured here with one replica, 64 connections gave
# 11 req/s at 5 and 165 at 64 (benchmarks/ray/REPORT.md). The runtime runs calls in threads, so a
# replica takes this many at once; autoscaling still aims at target_ongoing_requests.
MAX_ONGOING_REQUESTS = 64
# Serve's top-level http_options that a config may carry back unchanged (the rest are defaults).
_HTTP_KEYS = ("host", "port", "root_path", "request_timeout_s", "keep_alive_timeout_s")


def route_prefix(name: str) -> str:
    return ROUTE_PREFIX + name


def is_ours(app_config: Optional[Mapping[str, Any]]) -> bool:
    """Whether an application's deployed config is a function published by this target."""
    return bool(app_config) and app_config.get("import_path") == IMPORT_PATH


def deployment_options(scale: Scale, batching: Optional[Mapping[str, Any]] = None) -> dict:
    """The ``deployments[]`` entry: replicas (fixed or autoscaling) and CPUs per replica."""
    options: dict = {"name": DEPLOYMENT_NAME}
    if scale.autoscaling:
        low = scale.min_replicas or 0
        autoscaling = {"min_replicas": low, "max_replicas": scale.max_replicas,
                       # Start warm even when allowed to scale to zero: the smoke test calls it at once.
                       "initial_replicas": max(low, 1)}
        if scale.target_ongoing_requests is not None:
            autoscaling["target_ongoing_requests"] = scale.target_ongoing_requests
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = scale.replicas or 1
    if scale.cpus is not None:
        options["ray_actor_options"] = {"num_cpus": scale.cpus}
    options["max_ongoing_requests"] = MAX_ONGOING_REQUESTS
    if batching:
        # Serve hands a replica at most max_ongoing_requests at once: a batch can only fill up to it.
        options["max_ongoing_requests"] = max(int(batching.get("max_batch_size") or 1) * BATCH_ONGOING_FACTOR,
                                              MAX_ONGOING_REQUESTS)
    return options


def scale_of(app_config: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """``Scale.to_dict()`` read back from an application's deployed config (what Serve runs)."""
    if not app_config:
        return None
    for deployment in app_config.get("deployments") or ():
        if deployment.get("name") != DEPLOYMENT_NAME:
            continue
        out: dict = {}
        autoscaling = deployment.get("autoscaling_config")
        if autoscaling:
            out["min_replicas"] = autoscaling.get("min_replicas")
            out["max_replicas"] = autoscaling.get("max_replicas")
            if autoscaling.get("target_ongoing_requests") is not None:
                out["target_ongoing_requests"] = autoscaling["target_ongoing_requests"]
        elif isinstance(deployment.get("num_replicas"), int):
            out["replicas"] = deployment["num_replicas"]
        cpus = (deployment.get("ray_actor_options") or {}).get("num_cpus")
        if cpus is not None:
            out["cpus"] = cpus
        return Scale.from_dict(out).to_dict()
    return None


def runtime_env(manifest: Mapping[str, Any], mode: str = "pip") -> Optional[dict]:
    """The application's ``runtime_env``: the bundle's locked pins for pip or uv, or None.

    None when the function declares no requirement (the cluster's jupyterlab-publish brings what
    the runtime needs) or when ``mode`` is ``"none"`` (the cluster's image holds everything). The
    runtime's own pins (cloudpickle, starlette...) are left out: the cluster has them, and Ray's
    Serve proxy shares starlette with the replica. A distribution the kernel did not install from
    a package index cannot be installed on a cluster by name: ``environment_mismatch``.
    """
    if mode not in ENV_MODES:
        raise PublishError("unknown_target", f"env={mode!r} is not one of {', '.join(ENV_MODES)}",
                           "use env=pip (default), env=uv, or env=none when the cluster's image has every package")
    declared = manifest.get("requirements") or []
    if mode == "none" or not declared:
        return None
    lock = manifest.get("lock") or []
    foreign = [entry["name"] for entry in lock if entry.get("origin")]
    if foreign:
        raise PublishError(
            "environment_mismatch",
            f"{', '.join(foreign)} did not come from a package index, so a Ray cluster cannot install it by name",
            "publish it to a package index the cluster can reach, or build an image that has it and use env=none",
            {"distributions": foreign},
        )
    pins = [f"{entry['name']}=={entry['version']}" for entry in _function_closure(lock)]
    if not pins:  # a bundle without a lock: its declared lines are what pip is given
        pins = [Requirement.from_entry(entry).line() for entry in declared]
    if mode == "uv":
        return {"uv": {"packages": pins}}
    return {"pip": {"packages": pins, "pip_check": False}}


def _function_closure(lock: list) -> list:
    """The lock entries the function's own requirements pull in, in lock order: the roots are the
    entries a non-distribution (the function) requires other than the runtime, then what they
    require, through ``required_by``. The runtime's tree (starlette → anyio...) stays out."""
    by_name = {canonical_name(entry["name"]): entry for entry in lock}
    children: dict = {}
    wanted = []
    for entry in lock:
        for requirer in entry.get("required_by") or ():
            parent = canonical_name(requirer)
            if parent in by_name:
                children.setdefault(parent, []).append(entry)
            elif requirer != RUNTIME_REQUIRER:
                wanted.append(entry)
    seen: set = set()
    while wanted:
        entry = wanted.pop()
        key = canonical_name(entry["name"])
        if key not in seen:
            seen.add(key)
            wanted.extend(children.get(key, ()))
    return [entry for entry in lock if canonical_name(entry["name"]) in seen]


def application(*, name: str, version: int, store_url: str, digest: str, key_digests: Iterable[str],
                scale: Scale, manifest: Mapping[str, Any], storage_options: Optional[Mapping[str, Any]] = None,
                env: str = "pip", insecure: bool = False) -> dict:
    """One application of the Serve config: the function ``name`` at ``version``."""
    args = {
        "name": name,
        "version": int(version),
        "store": store_url,
        "digest": digest,
        "key_digests": sorted(key_digests),
        "storage_options": dict(storage_options or {}),
        "insecure": bool(insecure),
    }
    app = {
        "name": name,
        "route_prefix": route_prefix(name),
        "import_path": IMPORT_PATH,
        "args": args,
        "deployments": [deployment_options(scale, manifest.get("batching"))],
    }
    environment = runtime_env(manifest, env)
    if environment is not None:
        app["runtime_env"] = environment
    return app


def http_options(status: Mapping[str, Any], host: str, port: int) -> dict:
    """The running Serve's http_options (they apply only at Serve's first start), else ours."""
    running = status.get("http_options") or {}
    carried = {key: running[key] for key in _HTTP_KEYS if running.get(key) is not None}
    return carried if carried.get("port") else {"host": host, "port": port}


def merged_config(status: Mapping[str, Any], name: str, app: Optional[dict], *, host: str, port: int) -> dict:
    """The whole config to PUT: every application Serve runs now, with ``name``'s replaced by
    ``app`` (or removed when ``app`` is None). The API is declarative: a config that leaves an
    application out deletes it, so every other application is carried over exactly as deployed."""
    applications = []
    for app_name, details in sorted((status.get("applications") or {}).items()):
        if app_name == name:
            continue
        deployed = details.get("deployed_app_config")
        if not deployed:
            raise PublishError(
                "target_error",
                f"the Serve application {app_name!r} was not deployed from a config (serve.run), so a config "
                "applied now would remove it",
                "deploy it declaratively (serve deploy / the REST API) or remove it, then publish again",
                {"application": app_name},
            )
        applications.append(deployed)
    if app is not None:
        applications.append(app)
    config = {
        "proxy_location": status.get("proxy_location") or "HeadOnly",
        "http_options": http_options(status, host, port),
        "applications": applications,
    }
    grpc = status.get("grpc_options") or {}
    if grpc.get("grpc_servicer_functions"):
        config["grpc_options"] = grpc
    if status.get("target_capacity") is not None:
        config["target_capacity"] = status["target_capacity"]
    return config


__all__ = [
    "DEPLOYMENT_NAME", "ENV_MODES", "IMPORT_PATH", "ROUTE_PREFIX", "application", "deployment_options",
    "http_options", "is_ours", "merged_config", "route_prefix", "runtime_env", "scale_of",
]
