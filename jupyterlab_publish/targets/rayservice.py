"""The ``ray`` target's Serve config as a KubeRay ``RayService``: the same functions on Kubernetes.

Two functions, used by ``jupyter publish export NAME --format rayservice`` (docs/rayservice-export.md):

``rayservice_manifest(serve_config, *, name, image=None, ray_version=DEFAULT_RAY_VERSION,
python=DEFAULT_PYTHON, namespace=None, auth_secret=None, store_secret=None, worker_cpus=2,
worker_memory="4Gi", head_cpus=1, head_memory="4Gi", secrets=(), store_endpoint=None) -> dict``
    A ``ray.io/v1`` ``RayService`` whose ``spec.serveConfigV2`` is ``serve_config`` (the dict the
    target PUTs to ``/api/serve/applications/``) as YAML, and whose ``spec.rayClusterConfig`` is a
    head pod that schedules no replicas plus one worker group sized from the config's replicas and
    CPUs (autoscaled between its bounds when a deployment autoscales).

``dump_manifest(manifest) -> str``
    The manifest as YAML, headed by a comment naming the Secrets to create. The same manifest gives
    the same bytes: the Serve config's keys and applications are put in one order, and nothing
    varies with time.

What changes on the way, and why:

- ``http_options.host`` and ``http_options.port`` are dropped. The target binds Serve's proxy to
  127.0.0.1 on a port free on this machine; in a pod the proxy must listen on every interface at
  Serve's default port 8000, which the pods declare as ``serve`` and KubeRay's ``<name>-serve-svc``
  Service routes to. Everything else is carried unchanged, but for what follows.
- ``runtime_env.env_vars`` whose name says secret (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``,
  ``*ACCESS_KEY*``, ``*_KEY``...) become ``${NAME}``, which Ray expands from the worker's environment
  when it starts it; the pods get those variables from the bundle-store Secret (``envFrom``). A
  secret-named key with a value anywhere else in the config (``args.storage_options.secret``...), a
  value listed in ``secrets``, and a ``file://`` path or loopback address (pods cannot reach this
  machine) are refused with ``bad_request`` rather than exported. Digests (``key_digests``) stay.
  A function published with ``insecure`` (no token auth) is refused as well: its bundle is signed
  with a key that the exported cluster's replicas do not have.
- ``store_endpoint``, when given, replaces the S3 endpoint each function's ``storage_options`` names:
  the same store, at the address the pods reach it (an in-cluster MinIO Service, say).
- Ray's token auth is on: ``authOptions`` (``mode: token``, ``secretName``), so the KubeRay operator
  reads the same token to apply the Serve config, and ``RAY_AUTH_MODE=token`` with
  ``RAY_AUTH_TOKEN`` from that Secret's ``auth_token`` key in every Ray container. No token value is
  ever written (KubeRay >= 1.6, Ray >= 2.52). The replicas check each bundle's signature with a key
  derived from that token, so the Secret must hold the token of the cluster the bundles were
  published to.

The image must hold Ray, the Python minor the bundles were pickled with, and ``jupyterlab-publish``
(the replicas run its Ray Serve entrypoint): the default ``rayproject/ray:<ray>-py<python>`` has the
first two only, so build one ``FROM`` it (docs/rayservice-export.md) and pass it as ``image``.

Standard library, plus PyYAML imported where YAML is written (it keeps the kernel lean).
"""

from __future__ import annotations

import copy
import math
import re
import urllib.parse
from typing import Any, Iterable, Mapping, Optional

from ..errors import PublishError
from ..names import check_endpoint_name

API_VERSION = "ray.io/v1"
KIND = "RayService"
DEFAULT_RAY_VERSION = "2.52.0"  # the first Ray with token auth; pass the cluster's own version
DEFAULT_PYTHON = "3.11"
MIN_RAY_VERSION = (2, 52)  # token auth (RAY_AUTH_MODE=token) and KubeRay's authOptions need it
# KubeRay names the cluster ``<name>-xxxxx`` and its Service ``<cluster>-serve-svc`` inside 63 characters.
MAX_NAME_LENGTH = 47
SERVE_PORT = 8000  # Serve's default proxy port; KubeRay's serve Service targets the port named "serve"
# The head's ports. All stay inside the cluster: the head Service is ClusterIP (docs/rayservice-export.md).
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", 10001), ("serve", SERVE_PORT))
AUTH_TOKEN_KEY = "auth_token"  # the key KubeRay reads from the authOptions Secret
LABELS = {"app.kubernetes.io/part-of": "jupyterlab-publish"}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SECRET_NAME = re.compile(r"token|secret|passw|credential|api_?key|access_?key|private_?key|signing|(^|[_-])keys?$",
                          re.IGNORECASE)
# Names that carry a digest of a secret, not the secret: the replica's key check compares hashes.
_DIGEST_NAME = re.compile(r"sha\d*|hash|digest", re.IGNORECASE)
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_REFERENCES = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Addresses of this machine: a pod resolves them to itself.
_LOOPBACK = re.compile(r"^[a-z][a-z0-9+.-]*://(localhost|127\.[0-9.]+|\[::1\]|0\.0\.0\.0)([:/]|$)", re.IGNORECASE)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_PYTHON = re.compile(r"^3\.(\d+)$")
# Ray Serve's order for the keys a reader looks for first; the rest follow sorted.
_KEY_ORDER = (
    "proxy_location", "http_options", "grpc_options", "logging_config", "target_capacity", "applications",
    "name", "route_prefix", "import_path", "args", "runtime_env", "deployments",
    "num_replicas", "autoscaling_config", "max_ongoing_requests", "ray_actor_options", "num_cpus",
)
_DROPPED_HTTP_OPTIONS = ("host", "port")


def _bad(message: str, hint: str, **details: Any) -> PublishError:
    return PublishError("bad_request", message, hint, details or None)


def check_rayservice_name(name: object) -> str:
    """An endpoint name that is also a valid RayService name (a DNS-1035 label of at most 47)."""
    name = check_endpoint_name(name)
    if len(name) > MAX_NAME_LENGTH or not _DNS_1035.match(name):
        raise PublishError(
            "invalid_name",
            f"{name!r} cannot name a RayService: KubeRay takes at most {MAX_NAME_LENGTH} lowercase letters, "
            "digits and dashes, starting with a letter and not ending with a dash.",
            "export under a shorter name (pass a different name, e.g. 'predict-price').",
            {"name": name},
        )
    return name


def _k8s_name(value: Optional[str], default: str, what: str) -> str:
    value = default if value is None else value
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.match(value):
        raise PublishError("invalid_name", f"{value!r} is not a valid Kubernetes name for the {what}.",
                           "use 1-63 lowercase letters, digits and dashes, starting and ending with a letter "
                           "or digit.", {"field": what})
    return value


def _ordered(value: Any) -> Any:
    """A copy with every mapping's keys in one order: two exports of the same config match byte for byte."""
    if isinstance(value, Mapping):
        first = [key for key in _KEY_ORDER if key in value]
        rest = sorted((key for key in value if key not in _KEY_ORDER), key=str)
        return {key: _ordered(value[key]) for key in first + rest}
    if isinstance(value, (list, tuple)):
        return [_ordered(item) for item in value]
    return value


def _walk(value: Any, path: str):
    """Every (path, key, value) below ``value``; keys of mappings, and indices of lists as None."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, key, item
            yield from _walk(item, here)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            here = f"{path}[{index}]"
            yield here, None, item
            yield from _walk(item, here)


def _holds_value(value: Any) -> bool:
    """Whether a secret-named entry carries a value (rather than nothing, or ``${NAME}``)."""
    if isinstance(value, str):
        return bool(value) and not _REFERENCE.match(value)
    if isinstance(value, Mapping):
        return any(_holds_value(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_value(item) for item in value)
    return False


def _runtime_envs(config: dict):
    """(path, runtime_env) of every application and every deployment's ray_actor_options."""
    for i, app in enumerate(config["applications"]):
        if isinstance(app.get("runtime_env"), dict):
            yield f"applications[{i}].runtime_env", app["runtime_env"]
        for j, deployment in enumerate(app.get("deployments") or ()):
            options = deployment.get("ray_actor_options") if isinstance(deployment, dict) else None
            if isinstance(options, dict) and isinstance(options.get("runtime_env"), dict):
                yield f"applications[{i}].deployments[{j}].ray_actor_options.runtime_env", options["runtime_env"]


def kubernetes_serve_config(serve_config: Mapping[str, Any], *,
                            store_endpoint: Optional[str] = None) -> tuple[dict, list[str]]:
    """The Serve config as it runs on Kubernetes, and the secret-named env vars the pods must supply.

    Checks the shape the export relies on (Ray's own schema checks the rest when KubeRay applies
    it), drops the loopback ``http_options``, turns secret-named env vars into ``${NAME}`` and refuses
    secrets and local paths it cannot move. ``store_endpoint`` is the address the pods reach the
    same S3-compatible store at, when it differs from this machine's (an in-cluster MinIO Service):
    it replaces the endpoint in each function's ``storage_options``. Never changes ``serve_config``.
    """
    if not isinstance(serve_config, Mapping):
        raise _bad(f"the Serve config must be a mapping, not {type(serve_config).__name__}",
                   "export the config the ray target applies (jupyter publish export NAME --format rayservice)")
    config = copy.deepcopy(dict(serve_config))
    apps = config.get("applications")
    if not isinstance(apps, list) or not apps:
        raise _bad("the Serve config has no applications, so the RayService would serve nothing",
                   "publish a function to the ray target first, then export it")
    for i, app in enumerate(apps):
        if not isinstance(app, dict) or not all(isinstance(app.get(key), str) and app[key]
                                                for key in ("name", "import_path")):
            raise _bad(f"applications[{i}] of the Serve config lacks a name or an import_path",
                       "export the config the ray target applies; each application needs both", field=f"applications[{i}]")
        if isinstance(app.get("args"), dict) and app["args"].get("insecure") is True:
            # Its bundle is signed with the publisher's own key, not a Ray token's: the exported
            # cluster's replicas (token auth on) would refuse it.
            raise _bad(f"{app['name']} was published to a Ray cluster without token auth, so a RayService "
                       "(token auth on) could not verify its bundle",
                       "publish it to a cluster with token auth, then export", field=f"applications[{i}].args.insecure")

    if store_endpoint is not None:
        _set_store_endpoint(config, store_endpoint)

    http = config.get("http_options")
    if isinstance(http, dict):
        for key in _DROPPED_HTTP_OPTIONS:
            http.pop(key, None)
        if not http:
            del config["http_options"]

    secret_env: list[str] = []
    for where, runtime_env in _runtime_envs(config):
        for field in ("working_dir", "py_modules"):
            entries = runtime_env.get(field)
            for entry in entries if isinstance(entries, list) else [entries] if entries else []:
                if not (isinstance(entry, str) and "://" in entry and not entry.startswith("file://")):
                    raise _bad(f"{where}.{field} is {entry!r}, a path on this machine that pods cannot read",
                               "give it as a remote URI (s3://, gs://, https://) or bake it into the image",
                               field=f"{where}.{field}")
        env_vars = runtime_env.get("env_vars")
        if isinstance(env_vars, dict):
            for key, value in env_vars.items():
                if _SECRET_NAME.search(str(key)) and not (isinstance(value, str) and _REFERENCE.match(value)):
                    env_vars[key] = "${" + str(key) + "}"
                    secret_env.append(str(key))

    for path, key, value in _walk(config, ""):
        if isinstance(value, str) and (value.startswith("file://") or _LOOPBACK.match(value)):
            raise _bad(f"{path} is {value!r}, on this machine, which pods on Kubernetes cannot reach",
                       "publish to a bundle store the cluster can reach (s3://, see docs/ray-target.md); if it is "
                       "an S3 store the pods reach at another address, export with --store-endpoint URL "
                       "(store_endpoint= in Python)",
                       field=path)
        if (key is not None and ".env_vars." not in f"{path}." and _SECRET_NAME.search(str(key))
                and not _DIGEST_NAME.search(str(key)) and _holds_value(value)):
            raise _bad(f"{path} looks like a secret, and a manifest is no place for one",
                       "pass it to the function through a runtime_env env var (the export then reads it "
                       "from a Kubernetes Secret), or store only its hash", field=path)
    # Serve matches routes by prefix, not by list order: by name, two exports of one state agree.
    config["applications"] = sorted(config["applications"], key=lambda app: app["name"])
    return _ordered(config), sorted(set(secret_env))


def _set_store_endpoint(config: dict, endpoint: str) -> None:
    """Move every store endpoint the config names (s3fs's ``client_kwargs.endpoint_url``) to ``endpoint``."""
    parsed = urllib.parse.urlsplit(endpoint) if isinstance(endpoint, str) else None
    if not parsed or parsed.scheme not in ("http", "https") or not parsed.hostname or _LOOPBACK.match(endpoint):
        raise _bad(f"store_endpoint must be the http(s) address pods reach the store at, not {endpoint!r}",
                   "give the store's in-cluster address, e.g. http://minio.storage.svc:9000", field="store_endpoint")
    moved = 0
    for app in config["applications"]:
        args = app.get("args") if isinstance(app.get("args"), dict) else {}
        # The ray target's applications give their store's options in args (targets/ray_config.py).
        client = (args.get("storage_options") or {}).get("client_kwargs") if isinstance(
            args.get("storage_options"), dict) else None
        if isinstance(client, dict) and client.get("endpoint_url"):
            client["endpoint_url"] = endpoint
            moved += 1
    if not moved:
        raise _bad("store_endpoint was given, but no application reaches its store through an endpoint",
                   "leave store_endpoint out: the stores are the provider's own (e.g. AWS S3)", field="store_endpoint")


def _version(ray_version: str) -> str:
    match = _VERSION.match(ray_version) if isinstance(ray_version, str) else None
    if not match:
        raise _bad(f"ray_version must look like 2.52.0, not {ray_version!r}", "give the cluster's Ray version")
    if (int(match[1]), int(match[2])) < MIN_RAY_VERSION:
        raise _bad(f"Ray {ray_version} has no token auth, and the export never runs a cluster without it",
                   "use Ray 2.52.0 or later (and its image)")
    return ray_version


def _cpu(value: float) -> str:
    """A Kubernetes CPU quantity: whole CPUs as "2", fractions in millicores ("500m")."""
    millis = round(value * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _positive(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PublishError("invalid_scale", f"{field} must be a number above 0, not {value!r}",
                           f"give {field} as e.g. 2", {"field": field})
    return float(value)


def _replica_demand(config: dict) -> tuple[float, float, float]:
    """(CPUs at the minimum, CPUs at the maximum, the largest single replica's CPUs) of the config."""
    low = high = largest = 0.0
    for app in config["applications"]:
        if not app.get("deployments"):  # the code's defaults: one replica of one CPU
            low, high, largest = low + 1, high + 1, max(largest, 1.0)
        for deployment in app.get("deployments") or ():
            if not isinstance(deployment, dict):
                continue
            options = deployment.get("ray_actor_options") or {}
            cpus = options.get("num_cpus", 1) if isinstance(options, dict) else 1  # Serve's default is 1
            cpus = float(cpus) if isinstance(cpus, (int, float)) and not isinstance(cpus, bool) else 1.0
            autoscaling = deployment.get("autoscaling_config")
            replicas = deployment.get("num_replicas")
            if isinstance(autoscaling, dict):
                least = autoscaling.get("min_replicas", 1)
                most = autoscaling.get("max_replicas", max(least, 1))
            elif isinstance(replicas, int) and not isinstance(replicas, bool):
                least = most = replicas
            else:
                least = most = 1
            low += least * cpus
            high += most * cpus
            largest = max(largest, cpus)
    return low, high, largest


def _env(auth_secret: str) -> list[dict]:
    return [
        {"name": "RAY_AUTH_MODE", "value": "token"},
        {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": auth_secret, "key": AUTH_TOKEN_KEY}}},
    ]


def _container(name: str, image: str, cpus: float, memory: str, auth_secret: str,
               store_secret: Optional[str], ports: Iterable[tuple[str, int]]) -> dict:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    ports = [{"name": port_name, "containerPort": number} for port_name, number in ports]
    if ports:
        container["ports"] = ports
    container["env"] = _env(auth_secret)
    if store_secret:
        container["envFrom"] = [{"secretRef": {"name": store_secret}}]
    # Ray sizes itself from the limits; requests equal to them keep the pod from being overcommitted.
    quantity = {"cpu": _cpu(cpus), "memory": memory}
    container["resources"] = {"limits": dict(quantity), "requests": dict(quantity)}
    container["securityContext"] = {"allowPrivilegeEscalation": False}
    return container


def _memory(field: str, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$", value):
        raise PublishError("invalid_scale", f"{field} must be a Kubernetes memory quantity such as 4Gi, not {value!r}",
                           f"give {field} as e.g. 4Gi", {"field": field})
    return value


def rayservice_manifest(
    serve_config: Mapping[str, Any],
    *,
    name: str,
    image: Optional[str] = None,
    ray_version: str = DEFAULT_RAY_VERSION,
    python: str = DEFAULT_PYTHON,
    namespace: Optional[str] = None,
    auth_secret: Optional[str] = None,
    store_secret: Optional[str] = None,
    worker_cpus: float = 2,
    worker_memory: str = "4Gi",
    head_cpus: float = 1,
    head_memory: str = "4Gi",
    secrets: Iterable[str] = (),
    store_endpoint: Optional[str] = None,
) -> dict:
    """A KubeRay ``RayService`` serving ``serve_config``; see the module docstring.

    ``auth_secret`` (default ``<name>-ray-token``) holds Ray's token under ``auth_token``;
    ``store_secret`` (default ``<name>-bundle-store``; ``""`` for none, e.g. with workload identity)
    holds the bundle store's credentials as environment variables (``AWS_ACCESS_KEY_ID``...).
    ``secrets`` are values the caller knows to be secret (the Ray token, function keys): if one
    appears anywhere in the output, the export is refused. ``store_endpoint``: the address pods reach
    an S3-compatible bundle store at, when it is not the one this machine used.
    """
    name = check_rayservice_name(name)
    config, secret_env = kubernetes_serve_config(serve_config, store_endpoint=store_endpoint)
    ray_version = _version(ray_version)
    match = _PYTHON.match(python) if isinstance(python, str) else None
    if not match:
        raise _bad(f"python must look like 3.11, not {python!r}", "give the Python the bundles were pickled with")
    if image is None:
        image = f"rayproject/ray:{ray_version}-py3{match[1]}"
    elif not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise _bad(f"{image!r} is not a container image reference", "give one like registry.example.com/serve:1")
    auth_secret = _k8s_name(auth_secret, f"{name}-ray-token", "auth_secret")
    store_secret = None if store_secret == "" else _k8s_name(store_secret, f"{name}-bundle-store", "store_secret")
    if secret_env and not store_secret:
        raise _bad(f"the Serve config needs {', '.join(secret_env)} from a Secret, and store_secret is empty",
                   "name the Secret that holds them (store_secret)")
    worker_cpus = _positive("worker_cpus", worker_cpus)
    head_cpus = _positive("head_cpus", head_cpus)
    worker_memory, head_memory = _memory("worker_memory", worker_memory), _memory("head_memory", head_memory)

    low, high, largest = _replica_demand(config)
    if largest > worker_cpus:
        raise PublishError("invalid_scale",
                           f"a replica asks for {largest:g} CPUs but a worker pod has {worker_cpus:g}, so it could "
                           "never be scheduled", f"export with worker_cpus of at least {largest:g}",
                           {"field": "worker_cpus"})
    least, most = math.ceil(low / worker_cpus), max(1, math.ceil(high / worker_cpus))
    autoscaling = least != most

    config_text = _dump(config)
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = _k8s_name(namespace, namespace, "namespace")
    metadata["labels"] = dict(LABELS)

    head = {
        # No replica on the head: it runs the GCS, the dashboard and Serve's controller.
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "serviceType": "ClusterIP",
        "template": {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [
            _container("ray-head", image, head_cpus, head_memory, auth_secret, store_secret, HEAD_PORTS)]}},
    }
    workers = {
        "groupName": "replicas",
        "replicas": least if autoscaling else most,
        "minReplicas": least if autoscaling else most,
        "maxReplicas": most,
        "rayStartParams": {},
        "template": {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [
            _container("ray-worker", image, worker_cpus, worker_memory, auth_secret, store_secret, ())]}},
    }
    cluster: dict[str, Any] = {
        "rayVersion": ray_version,
        "authOptions": {"mode": "token", "secretName": auth_secret},
    }
    if autoscaling:
        # Serve asks for replicas, Ray's autoscaler asks KubeRay for the pods to hold them.
        cluster["enableInTreeAutoscaling"] = True
    cluster["headGroupSpec"] = head
    cluster["workerGroupSpecs"] = [workers]
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"serveConfigV2": config_text, "rayClusterConfig": cluster},
    }
    _refuse_known_secrets(manifest, config, secrets)
    return manifest


def _refuse_known_secrets(manifest: dict, config: dict, secrets: Iterable[str]) -> None:
    known = [value for value in secrets if isinstance(value, str) and value]
    if not known:
        return
    text = _dump(manifest)
    if not any(value in text for value in known):
        return
    where = next((path for path, _key, value in _walk(config, "")
                  if isinstance(value, str) and any(secret in value for secret in known)), "the manifest")
    # The message names where, never what: the error may be shown or logged.
    raise _bad(f"a secret value would be written into the RayService manifest (at {where})",
               "take it out of the Serve config; pass secrets through a Kubernetes Secret "
               "(docs/rayservice-export.md)", field=where)


def _yaml_dumper():
    try:
        # PyYAML only where YAML is written: the kernel imports this package and stays lean.
        import yaml
    except ImportError:
        raise PublishError("unsupported", "writing a RayService manifest needs PyYAML, which is not installed",
                           "pip install 'jupyterlab-publish[ray]' (or just pyyaml)") from None

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: Any, value: str) -> Any:
        # The Serve config reads as a block under serveConfigV2, not as one escaped line.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml, Dumper


def _dump(value: Any) -> str:
    yaml, dumper = _yaml_dumper()
    return yaml.dump(value, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=1 << 20)


def _secret_names(manifest: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    tokens, stores = set(), set()
    for path, key, value in _walk(manifest, ""):
        if key == "secretKeyRef" and isinstance(value, dict):
            tokens.add(value.get("name"))
        elif key == "secretRef" and isinstance(value, dict):
            stores.add(value.get("name"))
    return sorted(n for n in tokens if n), sorted(n for n in stores if n)


def dump_manifest(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML for ``kubectl apply -f``, headed by the Secrets it expects."""
    tokens, stores = _secret_names(manifest)
    namespace = (manifest.get("metadata") or {}).get("namespace")
    where = f" -n {namespace}" if namespace else ""
    lines = ["# KubeRay RayService exported by jupyterlab-publish; see docs/rayservice-export.md.",
             "# Needs KubeRay >= 1.6 and, in the same namespace, these Secrets first:"]
    lines += [f"#   kubectl create secret generic {secret}{where} --from-file={AUTH_TOKEN_KEY}=./ray-token"
              for secret in tokens]
    lines += [f"#   kubectl create secret generic {secret}{where} --from-env-file=./bundle-store.env" for secret in stores]
    config = (manifest.get("spec") or {}).get("serveConfigV2")
    needed = sorted(set(_REFERENCES.findall(config))) if isinstance(config, str) and stores else []
    if needed:
        lines.append(f"#   (the Serve config reads {', '.join(needed)} from it as ${{NAME}}; the bundle store's "
                     "credentials belong there too)")
    return "\n".join(lines) + "\n" + _dump(dict(manifest))


__all__ = ["check_rayservice_name", "dump_manifest", "kubernetes_serve_config", "rayservice_manifest"]
