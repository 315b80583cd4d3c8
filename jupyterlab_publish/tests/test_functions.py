"""The local function server end to end: real servers and workers on 127.0.0.1, nothing mocked.

Every test gets its own state directory; the ``state_dir`` fixture stops whatever server (and
workers) ran there, by the pids the server itself recorded.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import build_bundle, pack_bundle
from jupyterlab_publish.bundle.signature import key_from_token
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.state.paths import read_server_info
from jupyterlab_publish.targets import get_target
from jupyterlab_publish.targets.http import FunctionServerTarget
from jupyterlab_publish.targets.local import LocalTarget

from function_server import call

# The helpers stop servers with POSIX signals and read /proc; the code under test has Windows paths
# (no fcntl, TerminateProcess) that these tests do not exercise.
pytestmark = pytest.mark.skipif(os.name == "nt", reason="process control in these tests is POSIX-only")

REPO = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A worker killed behind its server's back stays a zombie until the server reaps it: dead.
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _worker_pids(state: Path) -> list:
    return [int(p.read_text()) for p in state.glob("functions/*/v*/worker*.pid")]


def stop_everything(state: Path) -> None:
    info = read_server_info(state)
    if info is not None:
        try:
            os.kill(info["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not _wait_gone(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)
            _wait_gone(info["pid"])
    for pid in _worker_pids(state):  # only left if the server could not stop them
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(state))
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_SERVER_PYTHON", raising=False)
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_TOKEN", raising=False)
    yield state
    stop_everything(state)


class Bundles:
    """Builds bundles from source text, the way a notebook cell defines a function."""

    def __init__(self, root: Path):
        self.root = root
        self.count = 0

    def __call__(self, src: str, fn_name: str, name: str, **options):
        ns = {"__name__": "__main__"}
        exec(textwrap.dedent(src), ns)
        self.count += 1
        return build_bundle(ns[fn_name], self.root / f"bundle{self.count}", name=name, **options)


@pytest.fixture
def bundles(tmp_path):
    return Bundles(tmp_path / "bundles")


ADD_ONE = "def add_one(x):\n    return x + 1\n"
# Behaves in the notebook, misbehaves in any other process (the worker): the smoke test must notice.
RAISES_IN_WORKER = """
import os
BUILT_IN = os.getpid()
def add_one(x):
    if os.getpid() != BUILT_IN:
        raise RuntimeError("boom in the worker")
    return x + 1
"""
DIFFERS_IN_WORKER = """
import os
BUILT_IN = os.getpid()
def add_one(x):
    return x + (1 if os.getpid() == BUILT_IN else 100)
"""


def admin(target: LocalTarget, path: str, method: str = "GET", raw: bytes | None = None):
    info = read_server_info(target.state_dir)
    return call(info["url"] + path, None, method=method, key=target.admin_token(), raw=raw)


# -- LocalTarget publishing ------------------------------------------------------------------------


def test_local_target_starts_the_server_and_publishes(state_dir, bundles):
    assert read_server_info(state_dir) is None
    events = []
    deployment = get_target("local").push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]), lambda *e: events.append(e))

    info = read_server_info(state_dir)
    assert info is not None and deployment.url == f"{info['url']}/functions/add-one"
    assert (deployment.name, deployment.version, deployment.target) == ("add-one", 1, "local")
    assert call(deployment.url, [3], key=deployment.key) == (200, 4)
    assert call(deployment.url, {"x": 41}, key=deployment.key) == (200, 42)
    stages = [stage for stage, _, _ in events]
    assert stages[0] == "starting" and "pushing" in stages and stages[-1] == "smoke_test"
    assert [fraction for _, fraction, _ in events] == sorted(fraction for _, fraction, _ in events)
    # The admin token exists, is private, and went to the server's log exactly once.
    token_file = state_dir / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert (state_dir / "server.log").read_text().count(token_file.read_text().strip()) == 1
    assert (state_dir / "functions" / "add-one" / "v1" / "worker.log").exists()


def test_second_push_reuses_the_running_server(state_dir, bundles):
    first = LocalTarget().push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    pid = read_server_info(state_dir)["pid"]
    second = LocalTarget().push(bundles("def double(x):\n    return 2 * x\n", "double", "double", sample=[2]))
    assert read_server_info(state_dir)["pid"] == pid
    assert (state_dir / "server.log").read_text().count("Started server process") == 1
    assert call(first.url, [3], key=first.key) == (200, 4)
    assert call(second.url, [3], key=second.key) == (200, 6)


def test_kernels_racing_to_start_the_server_start_one(state_dir):
    infos, errors = [], []

    def ensure():
        try:
            infos.append(LocalTarget().ensure_server())
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len({info["pid"] for info in infos}) == 1
    assert (state_dir / "server.log").read_text().count("Started server process") == 1


def test_taken_name_then_new_version(state_dir, bundles):
    target = LocalTarget()
    first = target.push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    with pytest.raises(PublishError) as caught:
        target.push(bundles("def add_one(x):\n    return x + 2\n", "add_one", "add-one", sample=[3]))
    assert caught.value.code == "name_taken"
    assert "new version" in caught.value.hint
    assert call(first.url, [3], key=first.key) == (200, 4)

    second = target.push(bundles("def add_one(x):\n    return x + 2\n", "add_one", "add-one", sample=[3]),
                         None, new_version=True)
    assert (second.version, second.url) == (2, first.url)
    assert second.key == first.key and first.key  # one key per function, kept across versions
    assert call(second.url, [3], key=second.key) == (200, 5)
    status, described = admin(target, "/api/functions/add-one")
    assert status == 200 and described["live_version"] == 2
    assert [(v["version"], v["status"]) for v in described["versions"]] == [(1, "retired"), (2, "live")]


@pytest.mark.parametrize("source, expected", [
    (RAISES_IN_WORKER, "HTTP 500"),
    (DIFFERS_IN_WORKER, "but the notebook computed 4"),
])
def test_failed_smoke_test_keeps_the_previous_version(state_dir, bundles, source, expected):
    target = LocalTarget()
    first = target.push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    with pytest.raises(PublishError) as caught:
        target.push(bundles(source, "add_one", "add-one", sample=[3]), None, new_version=True)
    assert caught.value.code == "smoke_test_failed"
    assert expected in caught.value.message
    if source is RAISES_IN_WORKER:
        assert "boom in the worker" in caught.value.details["log"]
    # Version 1 still answers; version 2 left no row, no directory, no worker.
    assert call(first.url, [3], key=first.key) == (200, 4)
    status, described = admin(target, "/api/functions/add-one")
    assert [(v["version"], v["status"]) for v in described["versions"]] == [(1, "live")]
    assert sorted(os.listdir(state_dir / "functions" / "add-one")) == ["v1"]
    assert len(_worker_pids(state_dir)) == 1


def test_first_version_failing_its_smoke_test_leaves_nothing(state_dir, bundles):
    target = LocalTarget()
    with pytest.raises(PublishError) as caught:
        target.push(bundles(RAISES_IN_WORKER, "add_one", "add-one", sample=[3]))
    assert caught.value.code == "smoke_test_failed"
    assert admin(target, "/api/functions") == (200, {"functions": []})
    assert list((state_dir / "functions").iterdir()) == []
    # The name is free: a working version can now be published under it.
    assert target.push(bundles(ADD_ONE, "add_one", "add-one", sample=[3])).version == 1


def test_server_restart_restores_the_live_function(state_dir, bundles):
    target = LocalTarget()
    deployment = target.push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    old = read_server_info(state_dir)
    workers = _worker_pids(state_dir)
    assert target.stop()
    assert _wait_gone(old["pid"])
    assert read_server_info(state_dir) is None  # removed on clean shutdown
    assert all(_wait_gone(pid) for pid in workers)  # the workers stopped with it

    new = target.ensure_server()
    assert new["pid"] != old["pid"]
    assert new["url"] == old["url"]  # the last port is reused, so published URLs keep working
    assert call(deployment.url, [3], key=deployment.key) == (200, 4)


def test_server_killed_hard_is_replaced_and_its_orphan_worker_stopped(state_dir, bundles):
    target = LocalTarget()
    deployment = target.push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    old = read_server_info(state_dir)
    (orphan,) = _worker_pids(state_dir)
    os.kill(old["pid"], signal.SIGKILL)
    assert _wait_gone(old["pid"])
    assert _alive(orphan)  # nobody stopped it: the server had no chance

    new = target.ensure_server()  # the stale server.json does not fool it
    assert new["pid"] != old["pid"]
    assert _wait_gone(orphan)
    assert call(deployment.url.replace(old["url"], new["url"]), [3], key=deployment.key) == (200, 4)


def test_dead_worker_is_restarted_by_the_next_request(state_dir, bundles):
    deployment = LocalTarget().push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    (pid,) = _worker_pids(state_dir)
    log = (state_dir / "functions" / "add-one" / "v1" / "worker.log").read_text()
    port = int(re.findall(r"starting on port (\d+)", log)[-1])
    os.kill(pid, signal.SIGKILL)
    # Wait until it no longer listens: a multi-threaded process shows as a zombie while its other
    # threads (and sockets) are still going away, and a call in that window fails mid-request.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    answer = call(deployment.url, [10], key=deployment.key)
    assert answer == (200, 11), answer
    assert _worker_pids(state_dir) != [pid]


# -- the admin API ---------------------------------------------------------------------------------


def _signing_key(state: Path) -> bytes:
    """What a publisher holding this server's admin token signs bundles with."""
    return key_from_token((state / "token").read_text())


def _tampered_archive(bundle, key: bytes) -> bytes:
    """The bundle's archive with function.pkl replaced: the manifest's sha256 no longer matches."""
    packed = io.BytesIO()
    pack_bundle(bundle, packed, signing_key=key)
    packed.seek(0)
    out = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="r:gz") as source, tarfile.open(fileobj=out, mode="w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name == "function.pkl":
                data = data.replace(b"add_one", b"add_two")
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_tampered_bundle_is_rejected_and_nothing_is_listed(state_dir, bundles):
    target = LocalTarget()
    target.ensure_server()
    status, body = admin(target, "/api/functions/add-one/versions", "POST",
                         raw=_tampered_archive(bundles(ADD_ONE, "add_one", "add-one", sample=[3]),
                                               _signing_key(state_dir)))
    assert status == 400 and body["error"] == "invalid_bundle"
    assert "sha256" in body["message"]
    assert admin(target, "/api/functions") == (200, {"functions": []})
    assert list((state_dir / "functions").iterdir()) == []
    assert list((state_dir / "uploads").iterdir()) == []


def test_bundle_for_another_python_is_refused(state_dir, bundles, tmp_path):
    bundle = bundles(ADD_ONE, "add_one", "add-one", sample=[3])
    other = tmp_path / "other-python"
    shutil.copytree(bundle.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["python"]["minor"] = "3.99"  # the manifest itself is not hashed; its files are
    (other / "manifest.json").write_text(json.dumps(manifest))
    target = LocalTarget()
    target.ensure_server()
    packed = io.BytesIO()
    pack_bundle(other, packed, signing_key=_signing_key(state_dir))
    status, body = admin(target, "/api/functions/add-one/versions", "POST", raw=packed.getvalue())
    assert status == 400
    assert "3.99" in body["message"] and "{}.{}".format(*sys.version_info[:2]) in body["message"]
    assert admin(target, "/api/functions") == (200, {"functions": []})


def test_wrong_or_missing_token_is_401(state_dir, bundles):
    target = LocalTarget()
    url = target.ensure_server()["url"]
    status, body = call(url + "/api/functions", None, method="GET")
    assert status == 401 and body["error"] == "unauthorized"
    assert call(url + "/api/functions", None, method="GET", key="wrong")[0] == 401
    with pytest.raises(PublishError) as caught:
        FunctionServerTarget(url, token="wrong").push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    assert caught.value.code == "target_error"
    assert "token" in caught.value.message and "JUPYTERLAB_PUBLISH_TOKEN" in caught.value.hint
    assert admin(target, "/api/functions") == (200, {"functions": []})


def test_invalid_name_is_400(state_dir):
    target = LocalTarget()
    target.ensure_server()
    status, body = admin(target, "/api/functions/Bad_Name/versions", "POST", raw=b"x")
    assert status == 400 and body["error"] == "invalid_name"


def test_unknown_function_is_404_with_the_list_hint(state_dir):
    url = LocalTarget().ensure_server()["url"]
    status, body = call(url + "/functions/nope", [1])
    assert status == 404
    assert body["error"] == "not_found"
    assert "no function named nope" in body["message"] and "jupyter publish list" in body["message"]
    assert call(url + "/functions/nope", None, method="GET")[0] == 404


def test_list_info_openapi_and_delete(state_dir, bundles):
    target = LocalTarget()
    deployment = target.push(bundles(ADD_ONE, "add_one", "add-one", sample=[3]))
    client = target.client()

    (listed,) = client.list()
    assert listed.name == "add-one" and listed.live_version == 1 and listed.url == deployment.url
    status, info = call(deployment.url, None, method="GET")
    assert status == 200 and info["version"] == 1 and info["function"]["name"] == "add_one"
    status, spec = call(deployment.url + "/openapi.json", None, method="GET")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert call(deployment.url, ["three"], key=deployment.key)[0] == 500  # the function's own error passes through
    assert call(deployment.url, None, raw=b"not json", key=deployment.key)[0] == 400

    (pid,) = _worker_pids(state_dir)
    assert admin(target, "/api/functions/add-one", "DELETE") == (200, {"deleted": "add-one"})
    assert _wait_gone(pid)
    assert client.list() == []
    assert not (state_dir / "functions" / "add-one").exists()
    assert call(deployment.url, [3], key=deployment.key)[0] == 404


# -- the server process itself ---------------------------------------------------------------------


def _serve(state: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(
        [sys.executable, "-m", "jupyterlab_publish.functions", "serve", "--state-dir", str(state), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )


def _wait_info(state: Path, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = read_server_info(state)
        if info and info["pid"] == process.pid:
            return info
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError("the server did not write server.json")


def test_serve_command_prints_the_token_once_and_cleans_up_on_sigterm(state_dir):
    outputs = []
    for _ in range(2):
        process = _serve(state_dir, "--port", "0")
        try:
            info = _wait_info(state_dir, process)
            assert info["url"].startswith("http://127.0.0.1:")
            assert call(info["url"] + "/healthz", None, method="GET") == (
                200, {"status": "ok", "pid": process.pid, "functions": 0, "handed_off": 0,
                      "sandbox": {key: info["sandbox"][key] for key in ("mode", "secrets_hidden")}})
        finally:
            process.send_signal(signal.SIGTERM)
            outputs.append(process.communicate(timeout=30)[0])
        assert read_server_info(state_dir) is None
    token = (state_dir / "token").read_text().strip()
    assert token in outputs[0] and token not in outputs[1]


def test_a_second_server_on_the_same_state_dir_refuses_to_start(state_dir):
    first = _serve(state_dir)
    try:
        _wait_info(state_dir, first)
        second = _serve(state_dir)
        output = second.communicate(timeout=30)[0]
        assert second.returncode == 1 and "already running" in output
        assert read_server_info(state_dir)["pid"] == first.pid
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
