"""The ray target against a real local Ray head (token auth, 2 CPUs, loopback only; ray_cluster.py).

Every path a user takes: the dialog's (a real kernel, through the comm), the Python API and
``jupyter publish``; call, key, new version, rollback, delete, two replicas, a tampered bundle
refused in the replica before anything is unpickled, the s3 store on a local S3 server, and a
dashboard without token auth refused. Another team's application, deployed first, must answer
after every step. Most publishes skip the pre-flight (``preflight=False``): it checks the bundle
in a clean environment on this machine, the same for every target, and is tested elsewhere.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray target's tests need ray[serve] (the test extra)")

import jupyterlab_publish  # noqa: E402
from jupyterlab_publish.errors import PublishError  # noqa: E402
from jupyterlab_publish.kernel import protocol  # noqa: E402
from jupyterlab_publish.targets import get_target  # noqa: E402
from jupyterlab_publish.tests.ray_cluster import OTHER_APP, TOKEN, RayHead, S3Server  # noqa: E402

TESTS = Path(__file__).resolve().parent
CALLS = 200  # most calls spent looking for both replicas' answers
PANEL_TOKEN_ENV = "RAY_PANEL_TEST_TOKEN"

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyterlab_publish": True}}}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    started = RayHead(tmp_path_factory.mktemp("ray-head")).start()
    try:
        started.deploy_other_app(TESTS)
        yield started
    finally:
        started.stop()


@pytest.fixture
def spec(head, tmp_path):
    return f"ray+http://127.0.0.1:{head.dashboard_port}?store=file://{tmp_path}/store"


def post(url, payload, key=None):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:  # Serve's own 404 for a route it does not have is plain text
            return exc.code, body.decode("utf-8", "replace")


def other_survives(head):
    assert head.call_other_app() == {"app": OTHER_APP, "greeting": "still here"}
    apps = head.get("/api/serve/applications/")["applications"]
    assert apps[OTHER_APP]["deployed_app_config"]["args"] == {"greeting": "still here"}


def cli(head, *args):
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(head.token_file)}
    env.pop("RAY_AUTH_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "jupyterlab_publish.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)


class Kernel:
    """A real ipykernel, driven as the front end drives it: register, open the comm, send requests."""

    def __init__(self, env):
        from jupyter_client.manager import start_new_kernel  # the test extra's kernel client

        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env)
        self.comm_id = uuid.uuid4().hex

    def run(self, code):
        reply = self.client.execute_interactive(code, timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]

    def open(self):
        self.run("import jupyterlab_publish.kernel; jupyterlab_publish.kernel.register()")
        self._send("comm_open", {"comm_id": self.comm_id, "target_name": protocol.COMM_TARGET, "data": {}})

    def request(self, method, timeout=600, **params):
        rid = uuid.uuid4().hex
        data = {"type": "request", "id": rid, "method": method, "params": params}
        self._send("comm_msg", {"comm_id": self.comm_id, "data": data})
        deadline = time.monotonic() + timeout
        stages = []
        while time.monotonic() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=5)
            except Exception:  # queue.Empty: nothing yet
                continue
            if message["msg_type"] != "comm_msg":
                continue
            answer = message["content"]["data"]
            if answer.get("id") != rid:
                continue
            if answer["type"] == "progress":
                stages.append(answer["stage"])
            elif answer["type"] in ("result", "error"):
                return answer, stages
        raise AssertionError(f"no answer to {method} within {timeout} s")

    def _send(self, msg_type, content):
        self.client.shell_channel.send(self.client.session.msg(msg_type, content))

    def stop(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def test_published_from_a_kernel_answers_then_a_new_version_a_rollback_and_a_delete_leave_others_running(head, spec):
    env = {**os.environ, "RAY_TEST_TOKEN": TOKEN}
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    kernel = Kernel(env)
    try:
        kernel.run("def double(x):\n    '''Twice x.'''\n    return 2 * x\n")
        kernel.open()
        answer, stages = kernel.request("publish", function="double", name="double", target=spec,
                                        token_env="RAY_TEST_TOKEN", sample=[21], requirements=[],
                                        scale={"replicas": 1, "cpus": 0.25})
    finally:
        kernel.stop()
    assert answer["type"] == "result", answer
    deployment = answer["result"]
    assert deployment["version"] == 1 and deployment["target"] == "ray"
    assert deployment["url"] == f"{head.serve_url}/functions/double"
    assert {"preflight", "pushing", "starting", "done"} <= set(stages)
    key = deployment["key"]
    assert post(deployment["url"], [21], key) == (200, 42)
    assert post(deployment["url"], {"x": 5}, key) == (200, 10)
    status, body = post(deployment["url"], [21])
    assert status == 401 and body["error"] == "unauthorized"
    status, body = post(deployment["url"], [1, 2], key)
    assert status == 400 and body["error"] == "bad_request"
    other_survives(head)

    target = get_target(spec, token=TOKEN)
    triple = jupyterlab_publish.publish(lambda x: 3 * x, name="double", target=spec, token=TOKEN, sample=[2],
                                        new_version=True, preflight=False, scale={"replicas": 1, "cpus": 0.25})
    assert triple.version == 2 and triple.key == key  # one key for every version
    assert post(triple.url, [21], key) == (200, 63)
    info = target.show("double")
    assert (info.live_version, info.status, info.scale) == (2, "healthy", {"replicas": 1, "cpus": 0.25})
    assert [(v.version, v.status) for v in info.versions] == [(1, "retired"), (2, "live")]
    assert info.versions[0].location.startswith("file://") and "/bundles/sha256/" in info.versions[0].location
    other_survives(head)

    shown = cli(head, "show", "double", "--target", spec)
    assert shown.returncode == 0, shown.stderr
    assert "live version: 2" in shown.stdout and "scale: 1 replica, 0.25 CPUs each" in shown.stdout
    assert "status: healthy" in shown.stdout and f"key: {key}" in shown.stdout

    rolled = target.rollback("double")
    assert (rolled.version, rolled.previous_version) == (1, 2)
    assert post(triple.url, [21], key) == (200, 42)  # the old bundle, fetched from the store again
    assert [(v.version, v.status) for v in target.versions("double")] == [(1, "live"), (2, "retired")]
    assert "serving double version 1" in target.logs("double").log
    assert target.call("double", [4]).answer == 8
    assert "Twice x." in target.docs("double")  # the runtime's docs page, fetched with the key
    other_survives(head)

    target.delete("double")
    with pytest.raises(PublishError) as caught:
        target.show("double")
    assert caught.value.code == "not_found"
    assert post(triple.url, [21], key)[0] == 404  # Serve no longer routes it
    assert target.list() == []
    other_survives(head)


PID_NOTEBOOK = {
    "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
               "source": "import os\n\ndef which_process():\n    return os.getpid()\n"}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def test_two_replicas_published_from_the_cli_both_answer(head, spec, tmp_path):
    notebook = tmp_path / "pids.ipynb"
    notebook.write_text(json.dumps(PID_NOTEBOOK))
    published = cli(head, "notebook", str(notebook), "--function", "which_process", "--name", "pids",
                    "--target", spec, "--replicas", "2", "--cpus", "0.25", "--json")
    assert published.returncode == 0, published.stderr
    deployment = json.loads(published.stdout)
    pids = set()
    for _ in range(CALLS):
        status, answer = post(deployment["url"], [], deployment["key"])
        assert status == 200
        pids.add(answer)
        if len(pids) == 2:
            break
    assert len(pids) == 2, pids  # Serve spread the calls over both replicas
    info = get_target(spec, token=TOKEN).show("pids")
    assert (info.processes, info.scale) == (2, {"replicas": 2, "cpus": 0.25})
    other_survives(head)
    assert cli(head, "delete", "pids", "--target", spec).returncode == 0


def test_a_vectorised_function_is_served_in_batches_gathered_by_serve(head, spec):
    @jupyterlab_publish.vectorized(max_batch_size=16, max_wait_ms=50)
    def batch_sizes(items):
        return [{"item": item, "batch": len(items)} for item in items]

    deployment = jupyterlab_publish.publish(batch_sizes, name="batches", target=spec, token=TOKEN, sample=[7],
                                            preflight=False, scale={"cpus": 0.25})
    assert post(deployment.url, [3], deployment.key) == (200, {"item": 3, "batch": 1})
    assert post(deployment.url, {"items": 4}, deployment.key) == (200, {"item": 4, "batch": 1})
    from concurrent.futures import ThreadPoolExecutor  # only this test sends calls at once

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda item: post(deployment.url, [item], deployment.key), range(48)))
    assert [answer["item"] for _, answer in answers] == list(range(48))  # each call gets its own item back
    assert max(answer["batch"] for _, answer in answers) > 1  # and calls in flight together ran as one batch
    get_target(spec, token=TOKEN).delete("batches")


async def test_the_deployments_panel_shows_scale_and_status_and_calls_through_the_server(head, spec, jp_fetch,
                                                                                       monkeypatch):
    deployment = jupyterlab_publish.publish(lambda x: x + 100, name="panel", target=spec, token=TOKEN, sample=[1],
                                            preflight=False, scale={"replicas": 1, "cpus": 0.25})
    monkeypatch.setenv(PANEL_TOKEN_ENV, TOKEN)  # the Jupyter server reads the token by name, as settings say
    params = {"target": spec, "token_env": PANEL_TOKEN_ENV}
    try:
        listed = json.loads((await jp_fetch("jupyterlab-publish", "functions", params=params,
                                            request_timeout=120)).body)
        [entry] = [f for f in listed["functions"] if f["name"] == "panel"]
        assert entry["status"] == "healthy" and entry["live_version"] == 1
        assert entry["scale"] == {"replicas": 1, "cpus": 0.25} and entry["keyed"] is True
        called = json.loads((await jp_fetch("jupyterlab-publish", "functions", "panel", "call", method="POST",
                                            params=params, body=json.dumps([1]), request_timeout=120)).body)
        assert called == {"name": "panel", "status": 200, "ok": True, "answer": 101}
        shown = json.loads((await jp_fetch("jupyterlab-publish", "functions", "panel",
                                           params={**params, "key": "true"}, request_timeout=120)).body)
        assert shown["key"] == deployment.key

        # The Ray token goes to the dashboard only: a call through a Serve address that records
        # what it is sent carries the function's key and nothing of the token.
        seen = []

        class Recorder(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append(dict(self.headers))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        recorder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
        try:
            via = get_target(f"{spec}&serve=http://127.0.0.1:{recorder.server_port}", token=TOKEN)
            assert via.call("panel", [1]).status == 200
        finally:
            recorder.shutdown()
        assert seen[0]["Authorization"] == f"Bearer {deployment.key}"
        assert not [value for headers in seen for value in headers.values() if TOKEN in value]
    finally:
        get_target(spec, token=TOKEN).delete("panel")


class WritesMarker:
    """A pickle that, if ever loaded, writes a file: the proof that nothing was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('unpickled')",))


def _archive(members: dict) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _members(archive: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar}


def test_a_tampered_bundle_is_refused_in_the_replica_and_nothing_is_unpickled(head, spec, tmp_path):
    target = get_target(spec, token=TOKEN)
    first = jupyterlab_publish.publish(lambda x: x + 1, name="guarded", target=spec, token=TOKEN, sample=[1],
                                       preflight=False, scale={"cpus": 0.25})
    second = jupyterlab_publish.publish(lambda x: x + 2, name="guarded", target=spec, token=TOKEN, sample=[1],
                                        new_version=True, preflight=False, scale={"cpus": 0.25})
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(WritesMarker(marker))
    store = target.store
    one = store.record("guarded", 1)["digest"]

    # 1. The store's copy of version 1 replaced: the replica finds that its sha256 is not the pinned one.
    stored = Path(store.bundle_path(one))
    members = _members(stored.read_bytes())
    stored.write_bytes(_archive({**members, "function.pkl": evil}))
    with pytest.raises(PublishError) as caught:
        target.rollback("guarded", to=1)
    assert caught.value.code == "smoke_test_failed" and "does not match its digest" in caught.value.message
    assert post(second.url, [1], second.key) == (200, 3)  # the target put version 2 back
    assert target.show("guarded").live_version == 2

    # 2. A config that pins the tampered archive's own digest (only a token holder can write one):
    # the manifest's signature holds, but function.pkl is not the file it lists.
    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(_archive({**members, "function.pkl": evil}))
    digest = store.put_bundle(str(tampered))
    config = head.get("/api/serve/applications/")["applications"]["guarded"]["deployed_app_config"]
    config = {**config, "args": {**config["args"], "digest": digest, "version": 99}}
    apps = [details["deployed_app_config"] for name, details in
            head.get("/api/serve/applications/")["applications"].items() if name != "guarded"]
    head.request("/api/serve/applications/", method="PUT",
                 body={"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": head.serve_port},
                       "applications": apps + [config]})
    deadline = time.monotonic() + 180
    while True:
        details = head.get("/api/serve/applications/")["applications"]["guarded"]
        if details["status"] in ("DEPLOY_FAILED", "UNHEALTHY") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert details["status"] == "DEPLOY_FAILED", details["status"]
    assert "function.pkl does not match its sha256" in target.logs("guarded").log  # the replica's refusal
    assert not marker.exists()  # refused before anything was unpickled, both times
    assert first.key == second.key
    other_survives(head)
    target.delete("guarded")


def test_the_s3_store_serves_a_public_function_with_its_locked_environment_and_exports(head, monkeypatch, tmp_path):
    s3 = S3Server().start()
    try:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        spec = (f"ray+http://127.0.0.1:{head.dashboard_port}?store=s3://{s3.bucket}/team"
                f"&store_endpoint={s3.endpoint}")
        def parse_version(text):
            import packaging.version

            return str(packaging.version.Version(text).release)

        from importlib.metadata import version  # the version the lock pins: the kernel's own

        deployment = jupyterlab_publish.publish(parse_version, name="shout", target=spec, token=TOKEN,
                                                sample=["1.2.3"], requirements=["packaging"], public=True,
                                                preflight=False, scale={"cpus": 0.25})
        assert deployment.key is None
        assert post(deployment.url, ["2.10.1"]) == (200, "(2, 10, 1)")  # public: no key needed
        # Its requirement's locked pin became the application's environment (the runtime's own did not).
        app = head.get("/api/serve/applications/")["applications"]["shout"]["deployed_app_config"]
        assert app["runtime_env"] == {"pip": {"packages": [f"packaging=={version('packaging')}"], "pip_check": False}}
        target = get_target(spec, token=TOKEN)
        [version] = target.versions("shout")
        assert version.location.startswith(f"s3://{s3.bucket}/team/bundles/sha256/")
        import boto3  # moto's own dependency, for looking at the bucket as S3 holds it

        client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1")
        keys = {item["Key"] for item in client.list_objects_v2(Bucket=s3.bucket)["Contents"]}
        assert f"team/functions/shout/versions/{1:08d}.json" in keys
        assert any(k.startswith("team/bundles/sha256/") and k.endswith(".tar.gz") for k in keys)

        # The same config as a KubeRay RayService (the s3 store: a pod cannot read this disk).
        config = target.serve_config(["shout"])
        assert config["applications"] == [head.get("/api/serve/applications/")["applications"]["shout"]["deployed_app_config"]]
        exported = cli(head, "export", "shout", "--format", "rayservice", "--target", spec, "-o", str(tmp_path / "rs.yaml"),
                       "--store-endpoint", "http://minio.storage.svc:9000")
        assert exported.returncode == 0, exported.stderr
        text = (tmp_path / "rs.yaml").read_text()
        assert "kind: RayService" in text and "jupyterlab_publish.ray_serve.replica:build" in text
        assert TOKEN not in text and "minio.storage.svc" in text and "127.0.0.1" not in text
        # The real export validates against KubeRay's CRD and Ray's own Serve schema, and its image
        # is the cluster's Ray on the Python that pickled the function.
        import yaml  # a test dependency through jupyter; the export itself needs the ray extra
        from ray.serve.schema import ServeDeploySchema  # (as above: the tests run with ray installed)

        from jupyterlab_publish.tests.kuberay_schema import rayservice_errors

        manifest = yaml.safe_load(text)
        assert rayservice_errors(manifest) == []
        ServeDeploySchema.model_validate(yaml.safe_load(manifest["spec"]["serveConfigV2"]))
        assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == ray_version()
        python = "py{}{}".format(*sys.version_info[:2])
        assert manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0][
            "image"] == f"rayproject/ray:{ray_version()}-{python}"
        target.delete("shout")
        other_survives(head)
    finally:
        s3.stop()


def ray_version() -> str:
    from importlib.metadata import version  # the head runs from this very environment

    return version("ray")


def test_a_dashboard_without_token_auth_is_refused_unless_the_spec_allows_it(tmp_path):
    open_head = RayHead(tmp_path / "open")
    open_head.env = lambda base=open_head.env, **extra: base(RAY_AUTH_MODE="disabled", **extra)
    open_head.start()
    try:
        spec = f"ray+http://127.0.0.1:{open_head.dashboard_port}?store=file://{tmp_path}/store"
        with pytest.raises(PublishError) as caught:
            jupyterlab_publish.publish(lambda x: x, name="echo", target=spec, token=TOKEN, preflight=False)
        assert caught.value.code == "insecure_target" and "insecure=1" in caught.value.hint
        assert not (tmp_path / "store").exists()  # refused before anything was stored
        assert get_target(spec + "&insecure=1").list() == []
    finally:
        open_head.stop()


def test_the_replica_module_and_the_config_agree_on_the_builder():
    from jupyterlab_publish.ray_serve import replica
    from jupyterlab_publish.targets import ray_config

    module, _, attribute = ray_config.IMPORT_PATH.partition(":")
    assert module == replica.__name__ and getattr(replica, attribute) is replica.build
    assert replica.PublishedFunction.name == ray_config.DEPLOYMENT_NAME

