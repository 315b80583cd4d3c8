"""Per-function environments built with the real uv, against PyPI or a local wheelhouse.

Each server here runs with ``--environments uv``. The first build of a lock downloads its wheels into
uv's cache (a few seconds); later builds link from the cache. The offline tests give the server an
empty uv cache and ``--offline --find-links WHEELHOUSE``, so only the wheelhouse can supply packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import Bundle, build_bundle
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.functions.uv_environments import COMPILED_MARKER, METADATA_FILE, lock_hash
from jupyterlab_publish.targets.http import FunctionServerTarget
from jupyterlab_publish.targets.local import LocalTarget
from jupyterlab_publish.state.paths import read_server_info

pytestmark = pytest.mark.skipif(os.name == "nt", reason="process control in these tests is POSIX-only")

REPO = Path(__file__).resolve().parents[2]
MINOR = "{}.{}".format(*sys.version_info[:2])
SIX = [{"name": "six", "version": "1.17.0", "why": "a tiny pure-Python distribution the server lacks"}]

# Answers which of the named modules the worker can import, and where its Python lives.
PROBE = """
import importlib
import sys
def probe(*modules):
    found = {}
    for module in modules:
        try:
            importlib.import_module(module)
            found[module] = True
        except ImportError:
            found[module] = False
    return {"found": found, "prefix": sys.prefix}
"""


def make_bundle(root: Path, label: str, source: str = PROBE, fn: str = "probe", name: str = "probe",
                requirements=SIX) -> Bundle:
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return build_bundle(ns[fn], root / label, name=name, requirements=requirements)


def call(deployment, body):
    """POST ``body`` to a deployed function with its key."""
    headers = {"Content-Type": "application/json"}
    if deployment.key:
        headers["Authorization"] = f"Bearer {deployment.key}"
    request = urllib.request.Request(deployment.url, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def environments(state: Path) -> list:
    """The finished environments (directories, not the hidden lock files or builds in progress)."""
    envs = state / "envs"
    return sorted(p.name for p in envs.iterdir() if p.is_dir() and not p.name.startswith(".")) if envs.exists() else []


def leftovers(state: Path) -> list:
    envs = state / "envs"
    return sorted(p.name for p in envs.iterdir() if p.name.endswith(".building")) if envs.exists() else []


# -- lock hashes (no uv needed) -------------------------------------------------------------------


def test_the_lock_hash_ignores_spelling_order_and_comments_but_not_versions():
    base = lock_hash("3.11", "six==1.17.0\nScikit_Learn==1.5.2\n")
    assert lock_hash("3.11", "# header\nscikit-learn == 1.5.2  # why\n\nsix==1.17.0\n") == base
    assert lock_hash("3.12", "six==1.17.0\nScikit_Learn==1.5.2\n") != base
    assert lock_hash("3.11", "six==1.16.0\nScikit_Learn==1.5.2\n") != base
    assert lock_hash("3.11", "six==1.17.0\nScikit_Learn==1.5.2\n", lock="numpy==2.1.3\n") != base


# -- servers ----------------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path, monkeypatch):
    """The embedded local server with uv environments."""
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_ENVIRONMENTS", "uv")
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_SERVER_PYTHON", raising=False)
    target = LocalTarget()
    yield target
    target.stop()


class Served:
    def __init__(self, state: Path, process: subprocess.Popen, info: dict):
        self.state, self.process, self.url = state, process, info["url"]
        self.target = FunctionServerTarget(self.url, (state / "token").read_text().strip())


@pytest.fixture
def serve(tmp_path):
    """Start ``python -m jupyterlab_publish.functions serve`` with extra flags and environment."""
    started = []

    def start(*flags: str, env: dict = ()) -> Served:
        state = tmp_path / f"state{len(started)}"
        environ = {**os.environ, **dict(env),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        environ.pop("JUPYTERLAB_PUBLISH_ENVIRONMENTS", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab_publish.functions", "serve", "--state-dir", str(state),
             "--environments", "uv", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environ, text=True,
        )
        started.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = read_server_info(state)
            if info and info["pid"] == process.pid:
                return Served(state, process, info)
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.05)
        raise AssertionError("the server did not start")

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """Wheels for SIX plus the runtime's requirements, at the lock's versions, downloaded once with pip."""
    root = tmp_path_factory.mktemp("wheelhouse")
    bundle = make_bundle(root, "bundle").path
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                           "--dest", str(root / "wheels"), "-r", str(bundle / "requirements.txt"),
                           "-c", str(bundle / "requirements.lock")],
                          capture_output=True, text=True, timeout=300)
    # The package index is reachable wherever the tests run (make setup installs from it too).
    assert done.returncode == 0, f"cannot download wheels from the package index: {done.stderr[-500:]}"
    return root / "wheels"


# -- isolation and sharing ----------------------------------------------------------------------------


def test_a_function_runs_in_an_environment_with_only_its_requirements(local, tmp_path):
    deployment = local.push(make_bundle(tmp_path, "b1"))
    answer = call(deployment, ["six", "httpx", "starlette", "jupyterlab_publish"])
    # six is the bundle's; starlette the runtime's; httpx and this package only the server has
    # (the latter reaches the server through PYTHONPATH, which the worker ignores).
    assert answer["found"] == {"six": True, "httpx": False, "starlette": True, "jupyterlab_publish": False}
    (env,) = environments(local.state_dir)
    assert Path(answer["prefix"]) == local.state_dir / "envs" / env
    metadata = json.loads((local.state_dir / "envs" / env / METADATA_FILE).read_text())
    assert metadata["minor"] == MINOR and "six==1.17.0" in metadata["requirements"]


def test_an_environment_gets_its_bytecode_after_its_first_version_started(local, tmp_path):
    # A sandboxed worker sees its environment read-only and cannot write .pyc files itself, so
    # without this every start would compile what the function imports again.
    local.push(make_bundle(tmp_path, "b1"))
    (env,) = environments(local.state_dir)
    env_dir = local.state_dir / "envs" / env
    deadline = time.monotonic() + 120
    while not (env_dir / COMPILED_MARKER).exists():
        assert time.monotonic() < deadline, "the environment's bytecode was never written"
        time.sleep(0.1)
    (site,) = {path.resolve() for path in env_dir.glob("lib*/python*/site-packages")}
    assert list((site / "six").parent.glob("__pycache__/six.*.pyc")), "six was not compiled"
    assert list(site.glob("cloudpickle/__pycache__/*.pyc")), "the runtime's packages were not compiled"


def test_publishes_with_the_same_requirements_share_one_environment_built_once(local, tmp_path):
    local.ensure_server()
    bundles = [make_bundle(tmp_path, f"b{i}", name=name) for i, name in enumerate(["first", "second"])]
    deployments, errors = [], []

    def push(bundle):
        try:
            deployments.append(local.push(bundle))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    # Two functions with the same lock, published at the same moment: one build, one environment.
    threads = [threading.Thread(target=push, args=(bundle,)) for bundle in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    (env,) = environments(local.state_dir)
    metadata_path = local.state_dir / "envs" / env / METADATA_FILE
    first_use = json.loads(metadata_path.read_text())

    # A new version of one of them, same requirements: the same environment again, not rebuilt.
    version2 = local.push(make_bundle(tmp_path, "b3", name="first"), None, new_version=True)
    assert version2.version == 2
    assert environments(local.state_dir) == [env]
    prefixes = {call(d, ["six"])["prefix"] for d in deployments + [version2]}
    assert prefixes == {str(local.state_dir / "envs" / env)}
    log = (local.state_dir / "server.log").read_text()
    assert log.count("building environment") == 1, log
    metadata = json.loads(metadata_path.read_text())
    assert metadata["created"] == first_use["created"] and metadata["last_used"] >= first_use["last_used"]

    # Different requirements, different environment.
    other = local.push(make_bundle(tmp_path, "b4", name="third", requirements=[]))
    assert len(environments(local.state_dir)) == 2
    assert call(other, ["six"])["found"] == {"six": False}


# -- offline, failures, refusals ------------------------------------------------------------------------


def test_offline_installs_from_the_wheelhouse_only(serve, tmp_path, wheelhouse):
    # An empty uv cache and --offline: the wheelhouse is the only place packages can come from.
    server = serve("--offline", "--find-links", str(wheelhouse), env={"UV_CACHE_DIR": str(tmp_path / "uv-cache")})
    deployment = server.target.push(make_bundle(tmp_path, "b1"))
    assert call(deployment, ["six", "httpx"])["found"] == {"six": True, "httpx": False}
    (env,) = environments(server.state)
    assert json.loads((server.state / "envs" / env / METADATA_FILE).read_text())["offline"] is True


def test_a_failed_install_leaves_no_environment_and_says_why(serve, tmp_path, wheelhouse):
    server = serve("--offline", "--find-links", str(wheelhouse), env={"UV_CACHE_DIR": str(tmp_path / "uv-cache")})
    missing = [{"name": "six", "version": "1.16.0"}]  # the wheelhouse holds 1.17.0 only
    with pytest.raises(PublishError) as caught:
        server.target.push(make_bundle(tmp_path, "b1", requirements=missing))
    assert "could not build the environment for probe" in caught.value.message
    assert "six==1.16.0" in caught.value.message  # the end of uv's own explanation
    assert "--find-links" in caught.value.hint
    assert environments(server.state) == [] and leftovers(server.state) == []
    assert server.target.list() == []
    assert list((server.state / "functions").iterdir()) == []
    # The server is fine: the same function with installable requirements publishes.
    assert server.target.push(make_bundle(tmp_path, "b2")).version == 1


def test_a_bundle_for_another_python_minor_is_refused(local, tmp_path):
    bundle = make_bundle(tmp_path, "b1")
    other = tmp_path / "other-python"
    shutil.copytree(bundle.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["python"]["minor"] = "3.99"  # no such interpreter anywhere, so uv cannot find one
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PublishError) as caught:
        local.push(Bundle(other, manifest))  # signed by the target, so only the Python is wrong
    assert "wrong Python minor" in caught.value.message
    assert "3.99" in caught.value.message and MINOR in caught.value.message
    assert f"Python {MINOR}" in caught.value.hint
    assert environments(local.state_dir) == [] and leftovers(local.state_dir) == []
    assert local.client().list() == []


SIX_VERSION = """
def six_version():
    import six
    return six.__version__
"""


def test_the_bundle_lock_pins_the_install_and_is_part_of_the_hash(local, tmp_path):
    unpinned = [{"name": "six", "version": ""}]
    bundle = make_bundle(tmp_path, "b1", SIX_VERSION, "six_version", "six-version", requirements=unpinned)
    lock_text = (bundle.path / "requirements.lock").read_text()
    pinned = re.search(r"^six==(\S+)", lock_text, re.MULTILINE)[1]  # the kernel's six
    older = tmp_path / "older"
    shutil.copytree(bundle.path, older)
    lock = re.sub(r"^six==\S+", "six==1.16.0", lock_text, flags=re.MULTILINE).encode()
    (older / "requirements.lock").write_bytes(lock)
    manifest = json.loads((older / "manifest.json").read_text())
    manifest["files"]["requirements.lock"] = hashlib.sha256(lock).hexdigest()
    (older / "manifest.json").write_text(json.dumps(manifest))

    first = local.push(bundle)
    assert call(first, []) == pinned
    second = local.push(Bundle(older, manifest), None, new_version=True)
    assert call(second, []) == "1.16.0" != pinned
    envs = environments(local.state_dir)
    assert len(envs) == 2
    assert all(json.loads((local.state_dir / "envs" / e / METADATA_FILE).read_text())["locked"] for e in envs)
