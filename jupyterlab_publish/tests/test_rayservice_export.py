"""The KubeRay RayService export, checked against the real schemas: KubeRay's RayService CRD (stored
under data/kuberay/, see its README) and Ray Serve's own ``ServeDeploySchema``.

Each schema check has a counterpart that breaks the manifest and watches the same check fail, so a
validation that quietly accepts everything cannot pass here.
"""

from __future__ import annotations

import copy
import hashlib
import re
import sys

import pytest
import yaml

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.targets.rayservice import (
    AUTH_TOKEN_KEY,
    SERVE_PORT,
    dump_manifest,
    kubernetes_serve_config,
    rayservice_manifest,
)
from jupyterlab_publish.tests.kuberay_schema import CRD, crd, rayservice_errors, ruled_fields

TOKEN = "f3b1c9e07d2a4c55b8e6a1d0c4f7e2b9"  # stands for Ray's token (it is hex too)
STORE_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def serve_config() -> dict:
    """A Serve config of the shape the ray target PUTs (targets/ray_config.py): two functions, one
    with fixed replicas and its store credentials in env vars, one autoscaled."""
    replica = "jupyterlab_publish.ray_serve.replica:build"
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": 41234, "request_timeout_s": 60},
        "applications": [
            {
                "name": "predict-price",
                "route_prefix": "/functions/predict-price",
                "import_path": replica,
                "args": {"name": "predict-price", "version": 3, "store": "s3://bundles/team-a", "digest": "ab12" * 16,
                         "key_digests": ["cd34" * 16], "storage_options": {"client_kwargs": {
                             "endpoint_url": "https://s3.example.com"}}, "insecure": False},
                "runtime_env": {"pip": {"packages": ["scikit-learn==1.5.2", "numpy==2.1.1"], "pip_check": False},
                                "env_vars": {"AWS_DEFAULT_REGION": "eu-west-1",
                                             "AWS_SECRET_ACCESS_KEY": STORE_SECRET_KEY,
                                             "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"}},
                "deployments": [{"name": "PublishedFunction", "num_replicas": 2, "max_ongoing_requests": 64,
                                 "ray_actor_options": {"num_cpus": 0.5}}],
            },
            {
                "name": "validate",
                "route_prefix": "/functions/validate",
                "import_path": replica,
                "args": {"name": "validate", "version": 1, "store": "s3://bundles/team-a", "digest": "ef56" * 16,
                         "key_digests": [], "storage_options": {}, "insecure": False},
                "deployments": [{"name": "PublishedFunction", "autoscaling_config": {
                    "min_replicas": 1, "max_replicas": 4, "initial_replicas": 1, "target_ongoing_requests": 2},
                    "ray_actor_options": {"num_cpus": 1}}],
            },
        ],
    }


def expected_serve_config() -> dict:
    """What the export must carry: the input minus the loopback bind, with secrets by reference."""
    config = serve_config()
    config["http_options"] = {"request_timeout_s": 60}
    env = config["applications"][0]["runtime_env"]["env_vars"]
    env["AWS_SECRET_ACCESS_KEY"] = "${AWS_SECRET_ACCESS_KEY}"
    env["AWS_ACCESS_KEY_ID"] = "${AWS_ACCESS_KEY_ID}"
    return config


@pytest.fixture
def manifest() -> dict:
    return rayservice_manifest(serve_config(), name="predict-price", ray_version="2.60.0",
                               image="registry.example.com/serve:1", secrets=[TOKEN])


# -- the CRD ---------------------------------------------------------------------------------------


def test_the_stored_crd_is_kuberays_rayservice():
    definition = crd()
    assert definition["kind"] == "CustomResourceDefinition" and definition["metadata"]["name"] == "rayservices.ray.io"
    assert definition["spec"]["group"] == "ray.io" and definition["spec"]["names"]["kind"] == "RayService"
    (version,) = [v for v in definition["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"] and version["storage"]
    # Unchanged since it was copied: the bytes are the ones its README names.
    (named,) = re.findall(r"sha256 `([0-9a-f]{64})`", (CRD.parent / "README.md").read_text("utf-8"))
    assert hashlib.sha256(CRD.read_bytes()).hexdigest() == named


def test_the_manifest_validates_against_the_rayservice_crd(manifest):
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    assert rayservice_errors(manifest) == []
    # What kubectl sends is the YAML, so validate that too.
    assert rayservice_errors(yaml.safe_load(dump_manifest(manifest))) == []


def test_an_autoscaled_default_image_export_validates_too():
    config = serve_config()
    del config["applications"][0]  # only the autoscaled one; no secrets, no store Secret
    out = rayservice_manifest(config, name="validate", store_secret="", namespace="serving")
    assert rayservice_errors(out) == []
    head = out["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == "rayproject/ray:2.52.0-py311" and "envFrom" not in head
    assert out["metadata"]["namespace"] == "serving"


def _set(document: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        document = document[int(part)] if part.isdigit() else document[part]
    if value is _DELETE:
        del document[last]
    elif isinstance(document, list):
        document[int(last)] = value
    else:
        document[last] = value


_DELETE = object()
HEAD = "spec.rayClusterConfig.headGroupSpec"
WORKER = "spec.rayClusterConfig.workerGroupSpecs.0"


@pytest.mark.parametrize(("path", "value"), [
    ("spec.rayClusterConfig", _DELETE),  # required
    (f"{HEAD}.template", _DELETE),  # required
    (f"{WORKER}.groupName", _DELETE),  # required
    ("spec.serveConfigV2", {"applications": []}),  # a string, not a mapping
    ("spec.serveConfigv2", "applications: []"),  # a typo: strict validation refuses unknown fields
    ("spec.rayClusterConfig.authOptions.mode", "tokens"),  # enum
    (f"{HEAD}.template.spec.containers.0.ports.0.containerPort", "6379"),  # an integer
    (f"{HEAD}.template.spec.containers.0.env.1.valueFrom.secretKeyRef.key", _DELETE),  # required
    (f"{WORKER}.replicas", "2"),  # an integer
    (f"{WORKER}.template.spec.containers.0.resources.limits.cpu", "two"),  # a quantity
])
def test_the_crd_check_refuses_a_broken_manifest(manifest, path, value):
    broken = copy.deepcopy(manifest)
    _set(broken, path, value)
    assert rayservice_errors(broken), f"the CRD schema accepted {path} = {value!r}"


def test_the_manifest_sets_no_field_whose_rules_jsonschema_cannot_check(manifest):
    """The CRD's CEL rules (x-kubernetes-validations) run only in an API server: stay off those fields."""
    assert ruled_fields(manifest) == []
    assert ruled_fields({"spec": {"managedBy": "ray.io/kuberay-operator"}}) == [".spec.managedBy"]


# -- the Serve config inside -----------------------------------------------------------------------


def test_serve_config_v2_is_a_valid_ray_serve_config(manifest):
    schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] is a test dependency on Python >= 3.10")
    parsed = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    checked = schema.ServeDeploySchema.model_validate(parsed)
    assert [app.name for app in checked.applications] == ["predict-price", "validate"]
    # Serve's own default bind (every interface, port 8000) is what the pods expose.
    assert (checked.http_options.host, checked.http_options.port) == ("0.0.0.0", SERVE_PORT)


def test_rays_schema_refuses_a_broken_serve_config(manifest):
    schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] is a test dependency on Python >= 3.10")
    parsed = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    parsed["applications"][1]["deployments"][0]["num_replicas"] = 3  # and autoscaling_config: not both
    with pytest.raises(ValueError):
        schema.ServeDeploySchema.model_validate(parsed)
    parsed = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    parsed["applications"][1]["route_prefix"] = "/functions/predict-price"  # two applications on one route
    with pytest.raises(ValueError):
        schema.ServeDeploySchema.model_validate(parsed)


def test_serve_config_v2_round_trips_to_the_config_the_target_applies(manifest):
    assert yaml.safe_load(manifest["spec"]["serveConfigV2"]) == expected_serve_config()
    assert yaml.safe_load(dump_manifest(manifest))["spec"]["serveConfigV2"] == manifest["spec"]["serveConfigV2"]


def test_the_export_leaves_its_input_alone():
    config = serve_config()
    rayservice_manifest(config, name="predict-price")
    assert config == serve_config()


def test_strings_yaml_would_misread_survive_the_round_trip():
    config = serve_config()
    config["applications"][1]["args"] = {"flag": "yes", "version": "1.10", "empty": "", "null": "null",
                                         "multi": "two\nlines", "unicode": "prix €", "number": 1e-7}
    out = rayservice_manifest(config, name="predict-price")
    assert yaml.safe_load(out["spec"]["serveConfigV2"])["applications"][1]["args"] == config["applications"][1]["args"]


# -- byte-identical exports ------------------------------------------------------------------------


def _reversed_keys(value):
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


def test_two_exports_of_the_same_state_are_byte_identical(manifest):
    text = dump_manifest(manifest)
    shuffled = _reversed_keys(serve_config())
    shuffled["applications"].reverse()
    again = rayservice_manifest(shuffled, name="predict-price", ray_version="2.60.0",
                                image="registry.example.com/serve:1")
    assert dump_manifest(again) == text
    assert yaml.safe_load(text) == manifest
    # The Serve config reads as a block a reviewer can diff, not as one escaped line.
    assert "  serveConfigV2: |\n    proxy_location: HeadOnly\n" in text


def test_a_changed_state_changes_the_export(manifest):
    config = serve_config()
    config["applications"][0]["args"]["version"] = 4
    assert dump_manifest(rayservice_manifest(config, name="predict-price", ray_version="2.60.0",
                                             image="registry.example.com/serve:1")) != dump_manifest(manifest)


# -- the cluster around it -------------------------------------------------------------------------


def _containers(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for group in groups for c in group["template"]["spec"]["containers"]]


def test_token_auth_comes_from_a_secret_in_every_ray_container(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": "predict-price-ray-token"}
    assert cluster["rayVersion"] == "2.60.0"
    for container in _containers(manifest):
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}
        assert env["RAY_AUTH_TOKEN"] == {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "predict-price-ray-token", "key": AUTH_TOKEN_KEY}}}
        assert container["envFrom"] == [{"secretRef": {"name": "predict-price-bundle-store"}}]
        assert container["resources"]["limits"] == container["resources"]["requests"]


def test_the_head_serves_no_replicas_and_keeps_its_ports_inside_the_cluster(manifest):
    head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and head["serviceType"] == "ClusterIP"
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": SERVE_PORT}


def test_the_worker_group_holds_the_replicas_and_autoscales_between_their_bounds(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    (workers,) = cluster["workerGroupSpecs"]
    # 2 x 0.5 CPU fixed, plus 1..4 x 1 CPU autoscaled: 2..5 CPUs, in pods of 2 CPUs.
    assert (workers["minReplicas"], workers["replicas"], workers["maxReplicas"]) == (1, 1, 3)
    assert cluster["enableInTreeAutoscaling"] is True
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}


def test_fixed_replicas_give_a_fixed_worker_group():
    config = serve_config()
    del config["applications"][1]
    out = rayservice_manifest(config, name="predict-price", worker_cpus=0.5, worker_memory="2Gi")
    (workers,) = out["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert (workers["minReplicas"], workers["replicas"], workers["maxReplicas"]) == (2, 2, 2)
    assert "enableInTreeAutoscaling" not in out["spec"]["rayClusterConfig"]
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "2Gi"}


# -- secrets ---------------------------------------------------------------------------------------


def test_no_secret_value_reaches_the_manifest(manifest):
    text = dump_manifest(manifest)
    assert STORE_SECRET_KEY not in text and "AKIAIOSFODNN7EXAMPLE" not in text and TOKEN not in text
    assert "${AWS_SECRET_ACCESS_KEY}" in manifest["spec"]["serveConfigV2"]
    assert "eu-west-1" in manifest["spec"]["serveConfigV2"]  # not a secret: kept
    # The only literal env value in any container is the auth mode.
    literal = [(e["name"], e["value"]) for c in _containers(manifest) for e in c["env"] if "value" in e]
    assert set(literal) == {("RAY_AUTH_MODE", "token")}
    # The header says which Secrets to create, by name and never by value.
    assert "kubectl create secret generic predict-price-ray-token --from-file=auth_token=" in text
    assert "kubectl create secret generic predict-price-bundle-store --from-env-file=" in text


def test_secret_env_vars_are_found_in_deployment_runtime_envs_too():
    config = serve_config()
    config["applications"][1]["deployments"][0]["ray_actor_options"]["runtime_env"] = {
        "env_vars": {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz0123", "MODE": "fast"}}
    served, secret_env = kubernetes_serve_config(config)
    env = served["applications"][1]["deployments"][0]["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env == {"HF_TOKEN": "${HF_TOKEN}", "MODE": "fast"}
    assert secret_env == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN"]
    text = dump_manifest(rayservice_manifest(config, name="predict-price"))
    assert "hf_abcdefghijklmnopqrstuvwxyz0123" not in text
    assert "reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, HF_TOKEN from it as ${NAME}" in text


def test_a_known_secret_under_a_harmless_name_is_refused_without_being_repeated():
    config = serve_config()
    config["applications"][1]["args"]["note"] = f"call with {TOKEN}"
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(config, name="predict-price", secrets=[TOKEN, ""])
    assert caught.value.code == "bad_request"
    assert caught.value.details["field"] == "applications[1].args.note"
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value.to_dict())


@pytest.mark.parametrize("path", [
    "args.api_key", "args.password", "args.client_secret", "args.auth_token", "args.keys",
    # s3fs's own option names for credentials, which a store's storage_options could carry.
    "args.storage_options.key", "args.storage_options.secret", "args.storage_options.token",
])
def test_a_secret_named_argument_is_refused(path):
    config = serve_config()
    *parents, last = path.split(".")
    holder = config["applications"][0]
    for part in parents:
        holder = holder[part]
    holder[last] = ["s3cr3t-value"] if last == "keys" else "s3cr3t-value"
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(config, name="predict-price")
    assert caught.value.code == "bad_request" and "s3cr3t-value" not in str(caught.value)
    assert caught.value.details["field"] == f"applications[0].{path}"


def test_digests_references_and_empty_values_are_not_secrets():
    config = serve_config()
    config["applications"][0]["args"].update(token_sha256="ab" * 32, api_key="${API_KEY}", password="")
    out = rayservice_manifest(config, name="predict-price")
    args = yaml.safe_load(out["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert (args["token_sha256"], args["api_key"], args["password"], args["key_digests"]) == (
        "ab" * 32, "${API_KEY}", "", ["cd34" * 16])


# -- bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    (lambda c: c.update(applications=[]), None),
    (lambda c: c.pop("applications"), None),
    (lambda c: c.update(applications="predict"), None),
    (lambda c: c["applications"][1].pop("import_path"), "applications[1]"),
    # A store on this machine's disk or loopback: pods cannot reach it.
    (lambda c: c["applications"][0]["args"].update(store="file:///home/me/.ray-bundles"),
     "applications[0].args.store"),
    (lambda c: c["applications"][0]["args"]["storage_options"]["client_kwargs"].update(
        endpoint_url="http://127.0.0.1:5000"), "applications[0].args.storage_options.client_kwargs.endpoint_url"),
    (lambda c: c["applications"][1]["args"].update(store="s3://b", storage_options={
        "endpoint_url": "http://localhost:9000/"}), "applications[1].args.storage_options.endpoint_url"),
    (lambda c: c["applications"][0]["runtime_env"].update(working_dir="./project"),
     "applications[0].runtime_env.working_dir"),
    # Published to a cluster without token auth: signed with a key the exported cluster lacks.
    (lambda c: c["applications"][1]["args"].update(insecure=True), "applications[1].args.insecure"),
])
def test_a_config_the_export_cannot_carry_is_a_bad_request(change, field):
    config = serve_config()
    change(config)
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(config, name="predict-price")
    assert caught.value.code == "bad_request" and caught.value.hint
    assert caught.value.details.get("field") == field


def test_a_config_that_is_not_a_mapping_is_a_bad_request():
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(["applications"], name="predict-price")  # type: ignore[arg-type]
    assert caught.value.code == "bad_request"


@pytest.mark.parametrize("name", ["", "Predict", "9lives", "ends-with-", "a" * 48, "under_score", None])
def test_a_name_kuberay_would_refuse_is_invalid_name(name):
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(serve_config(), name=name)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_name" and caught.value.hint


def test_the_longest_name_kuberay_takes_is_accepted():
    assert rayservice_errors(rayservice_manifest(serve_config(), name="a" * 47)) == []


@pytest.mark.parametrize(("options", "code"), [
    ({"ray_version": "2.40.0"}, "bad_request"),  # no token auth
    ({"ray_version": "latest"}, "bad_request"),
    ({"python": "py311"}, "bad_request"),
    ({"image": "has space:1"}, "bad_request"),
    ({"namespace": "Team_A"}, "invalid_name"),
    ({"auth_secret": "-token"}, "invalid_name"),
    ({"worker_cpus": 0}, "invalid_scale"),
    ({"worker_cpus": 0.25}, "invalid_scale"),  # a replica asks for 0.5 and 1 CPU
    ({"head_memory": "4GB"}, "invalid_scale"),
])
def test_bad_options_say_what_to_fix(options, code):
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(serve_config(), name="predict-price", **options)
    assert caught.value.code == code and caught.value.hint


# -- the store as the pods reach it ----------------------------------------------------------------


def test_store_endpoint_points_the_pods_at_the_same_store_elsewhere():
    config = serve_config()
    config["applications"][0]["args"]["storage_options"]["client_kwargs"]["endpoint_url"] = "http://127.0.0.1:9000"
    out = rayservice_manifest(config, name="predict-price", store_endpoint="http://minio.storage.svc:9000")
    assert rayservice_errors(out) == []
    # Only the endpoint moved; the application whose store needs none (AWS's own) is left alone.
    expected = expected_serve_config()
    expected["applications"][0]["args"]["storage_options"] = {
        "client_kwargs": {"endpoint_url": "http://minio.storage.svc:9000"}}
    assert yaml.safe_load(out["spec"]["serveConfigV2"]) == expected


def test_a_store_endpoint_for_stores_without_one_is_refused():
    config = serve_config()
    config["applications"][0]["args"]["storage_options"] = {}
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(config, name="predict-price", store_endpoint="http://minio.storage.svc:9000")
    assert caught.value.code == "bad_request" and caught.value.details["field"] == "store_endpoint"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "minio:9000", "ftp://minio", ""])
def test_a_store_endpoint_pods_cannot_use_is_refused(endpoint):
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(serve_config(), name="predict-price", store_endpoint=endpoint)
    assert caught.value.code == "bad_request" and caught.value.details["field"] == "store_endpoint"


# -- the ray target's own config -------------------------------------------------------------------


def test_the_config_the_ray_target_builds_for_a_real_bundle_exports_and_validates(tmp_path):
    """A bundle built as the button builds it, the application and whole config the ray target would
    PUT (targets/ray_config.py, merged with a colleague's application already on the cluster), and
    the export of that config: valid for KubeRay and for Ray, and the same config back."""
    from jupyterlab_publish.bundle import build_bundle
    from jupyterlab_publish.requirement import Requirement
    from jupyterlab_publish.targets import ray_config
    from jupyterlab_publish.targets.scale import Scale

    numpy = pytest.importorskip("numpy")
    namespace = {"np": numpy}
    exec("def predict(x):\n    return float(np.asarray(x).sum())\n", namespace)
    bundle = build_bundle(namespace["predict"], tmp_path / "bundle", name="predict-price", sample=[[1, 2]],
                          requirements=[Requirement.parse(f"numpy=={numpy.__version__}", "predict → np → numpy")])
    app = ray_config.application(
        name="predict-price", version=2, store_url="s3://bundles/team-a", digest="ab" * 32,
        key_digests=["cd" * 32], scale=Scale.from_dict({"min_replicas": 1, "max_replicas": 6, "cpus": 0.5}),
        manifest=bundle.manifest, storage_options={"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}})
    colleague = serve_config()["applications"][1]
    status = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8123},
              "applications": {"validate": {"deployed_app_config": colleague}}}
    config = ray_config.merged_config(status, "predict-price", app, host="127.0.0.1", port=8123)

    out = rayservice_manifest(config, name="predict-price", ray_version="2.60.0",
                              python=bundle.manifest["python"]["minor"],
                              store_endpoint="http://minio.storage.svc:9000")
    assert rayservice_errors(out) == []
    parsed = yaml.safe_load(out["spec"]["serveConfigV2"])
    expected = copy.deepcopy(config)
    del expected["http_options"]  # only host and port, both dropped
    expected["applications"] = sorted(expected["applications"], key=lambda a: a["name"])
    expected["applications"][0]["args"]["storage_options"] = {
        "client_kwargs": {"endpoint_url": "http://minio.storage.svc:9000"}}
    assert parsed == expected
    assert f"numpy=={numpy.__version__}" in parsed["applications"][0]["runtime_env"]["pip"]["packages"]
    # 0.5..3 CPUs of this function plus 1..4 of the colleague's: pods of 2 CPUs, 1 to 4 of them.
    (workers,) = out["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (1, 4)
    schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] is a test dependency on Python >= 3.10")
    schema.ServeDeploySchema.model_validate(parsed)


def test_without_pyyaml_the_export_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # what `import yaml` meets when PyYAML is absent
    with pytest.raises(PublishError) as caught:
        rayservice_manifest(serve_config(), name="predict-price")
    assert caught.value.code == "unsupported" and "jupyterlab-publish[ray]" in caught.value.hint


def _kuberay_objections(manifest: dict) -> list:
    """The checks KubeRay's operator makes beyond the CRD schema (ray-operator/controllers/ray/utils/
    validation.go, v1.7.0) that this export could trip over, restated."""
    found = []
    cluster = manifest["spec"]["rayClusterConfig"]
    if cluster.get("authOptions", {}).get("mode") == "token":
        major, minor = (int(part) for part in cluster.get("rayVersion", "0.0").split(".")[:2])
        if (major, minor) < (2, 52):
            found.append("token auth needs rayVersion >= 2.52.0")
    autoscaling = bool(cluster.get("enableInTreeAutoscaling"))
    for group in [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]:
        if not group["template"]["spec"].get("containers"):
            found.append("a group without containers")
        if group.get("resources") and any(group.get("rayStartParams", {}).get(k) for k in ("num-cpus", "memory")):
            found.append("resources both in rayStartParams and the group's resources")
    for group in cluster.get("workerGroupSpecs", []):
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if not autoscaling and (low is None or high is None):
            found.append(f"{group['groupName']}: minReplicas and maxReplicas must be set without autoscaling")
        if low is not None and high is not None and not low <= group.get("replicas", low) <= high:
            found.append(f"{group['groupName']}: replicas outside minReplicas..maxReplicas")
    if cluster["headGroupSpec"].get("headService", {}).get("metadata", {}).get("name"):
        found.append("a RayService may not name its head Service")
    return found


@pytest.mark.parametrize(("worker_cpus", "apps"), [(0.5, slice(0, 1)), (1, slice(None)), (2, slice(1, 2)),
                                                  (8, slice(None))])
def test_the_manifest_meets_kuberays_own_checks(worker_cpus, apps, manifest):
    config = serve_config()
    config["applications"] = config["applications"][apps]
    out = rayservice_manifest(config, name="predict-price", worker_cpus=worker_cpus)
    assert _kuberay_objections(out) == []
    assert _kuberay_objections(manifest) == []
    broken = copy.deepcopy(out)
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"] = 99
    assert _kuberay_objections(broken)
