"""Targets without a function server: spec parsing, the registry, the directory target, errors."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import Bundle, build_bundle, read_bundle
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.targets import Deployment, available_targets, get_target
from jupyterlab_publish.targets.base import push_bundle
from jupyterlab_publish.targets.directory import DirectoryTarget
from jupyterlab_publish.targets.http import FunctionServerTarget
from jupyterlab_publish.targets.local import LocalTarget
from jupyterlab_publish.targets.paths import default_state_dir


def make_function(src: str, name: str):
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(src), ns)
    return ns[name]


@pytest.fixture(autouse=True)
def private_jupyter_data_dir(tmp_path, monkeypatch):
    # Directory targets sign with a per-user key kept in the Jupyter data directory: never the real one.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))


@pytest.fixture
def add_one_bundle(tmp_path):
    fn = make_function("def add_one(x):\n    return x + 1\n", "add_one")
    return build_bundle(fn, tmp_path / "bundle", name="add-one", sample=[3])


# -- get_target ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [None, "", "local", " LOCAL "])
def test_default_and_local_specs_give_the_local_target(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "state"))
    target = get_target(spec)
    assert isinstance(target, LocalTarget)
    assert target.state_dir == tmp_path / "state"
    assert target.describe() == {"kind": "local", "label": target.label, "spec": "local"}


def test_dir_spec_gives_a_directory_target(tmp_path):
    target = get_target(f"dir:{tmp_path}")
    assert isinstance(target, DirectoryTarget)
    assert target.root == tmp_path
    assert target.describe()["spec"] == f"dir:{tmp_path}"


def test_url_specs_give_a_function_server_target_with_the_env_token(monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_TOKEN", "from-env")
    target = get_target("http://127.0.0.1:9999/")
    assert isinstance(target, FunctionServerTarget)
    assert (target.url, target.token) == ("http://127.0.0.1:9999", "from-env")
    explicit = get_target("https://functions.example.org", token="explicit")
    assert (explicit.url, explicit.token) == ("https://functions.example.org", "explicit")
    assert explicit.describe()["kind"] == "http"


@pytest.mark.parametrize("spec", ["ftp://example.org", "s3:bucket", "dir:", "dir:   ", ":"])
def test_unknown_specs_raise_unknown_target_with_the_forms(spec):
    with pytest.raises(PublishError) as caught:
        get_target(spec)
    assert caught.value.code == "unknown_target"
    assert "dir:" in caught.value.hint


def test_available_targets_lists_each_builtin_once():
    kinds = [entry["kind"] for entry in available_targets()]
    assert sorted(kinds) == ["dir", "http", "local"]
    defaults = [entry["kind"] for entry in available_targets() if entry["default"]]
    assert defaults == ["local"]
    assert all(entry["label"] and entry["spec"] for entry in available_targets())


def test_an_entry_point_plugin_adds_a_target_kind(tmp_path, monkeypatch):
    # A real distribution on sys.path, found by importlib.metadata like an installed plugin.
    (tmp_path / "jlp_memory_target.py").write_text(textwrap.dedent("""
        from jupyterlab_publish.targets import Deployment, Target

        class MemoryTarget(Target):
            kind = "memory"
            label = "In memory"
            spec_example = "memory:anything"

            def __init__(self, spec):
                self.spec = spec

            @classmethod
            def from_spec(cls, spec, *, token=None):
                return cls(spec)

            def push(self, bundle, progress=None, *, new_version=False):
                return Deployment(bundle.manifest["name"], 1, "memory://", self.kind)

            def describe(self):
                return {"kind": self.kind, "label": self.label, "spec": self.spec}
    """))
    dist_info = tmp_path / "jlp_memory_target-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: jlp-memory-target\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[jupyterlab_publish.targets]\nmemory = jlp_memory_target:MemoryTarget\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "jlp_memory_target", raising=False)

    target = get_target("memory:abc")
    assert type(target).__name__ == "MemoryTarget" and target.spec == "memory:abc"
    assert "memory" in [entry["kind"] for entry in available_targets()]
    # The built-ins still resolve alongside the plugin.
    assert isinstance(get_target("local"), LocalTarget)


# -- Deployment ------------------------------------------------------------------------------------


def test_deployment_curl_and_dict():
    deployment = Deployment("add-one", 2, "http://127.0.0.1:8000/functions/add-one", "local")
    assert deployment.curl() == (
        "curl -X POST http://127.0.0.1:8000/functions/add-one -H 'Content-Type: application/json' -d '[]'"
    )
    assert deployment.curl('{"x": "it\'s"}').endswith("-d '{\"x\": \"it'\"'\"'s\"}'")
    keyed = Deployment("add-one", 2, "https://f.example.org/functions/add-one", "http", key="k3y")
    assert keyed.curl("[3]").endswith("-d '[3]' -H 'Authorization: Bearer k3y'")
    assert deployment.to_dict() == {
        "name": "add-one", "version": 2, "url": "http://127.0.0.1:8000/functions/add-one",
        "target": "local", "key": None, "bundle_path": None,
    }


def test_public_is_passed_only_to_targets_with_keys(tmp_path, add_one_bundle):
    # A directory target has no keys (its push takes no ``public``): every bundle it writes is keyless.
    deployment = push_bundle(get_target(f"dir:{tmp_path / 'out'}"), add_one_bundle, None, public=True)
    assert (deployment.version, deployment.key) == (1, None)


# -- DirectoryTarget -------------------------------------------------------------------------------


def test_directory_target_writes_v1_then_v2(tmp_path, add_one_bundle):
    root = tmp_path / "out"
    target = get_target(f"dir:{root}")
    events = []
    first = target.push(add_one_bundle, lambda *event: events.append(event))
    second = target.push(add_one_bundle, None)

    assert (first.version, second.version) == (1, 2)
    assert first.url == (root / "add-one" / "v1").resolve().as_uri()
    assert second.bundle_path == str(root / "add-one" / "v2")
    assert first.target == "dir"
    for version in ("v1", "v2"):
        assert read_bundle(root / "add-one" / version).manifest["name"] == "add-one"
    # Only the versions remain: no staging directories.
    assert sorted(os.listdir(root / "add-one")) == ["v1", "v2"]
    assert events and events[-1][0] == "pushing" and events[-1][1] == 1.0


def test_directory_target_refuses_a_name_that_would_leave_its_root(tmp_path, add_one_bundle):
    # build_bundle refuses such names; a target must not trust that every bundle came from it.
    forged = Bundle(add_one_bundle.path, {**add_one_bundle.manifest, "name": "../escape"})
    with pytest.raises(PublishError) as caught:
        DirectoryTarget(tmp_path / "out").push(forged)
    assert caught.value.code == "invalid_name"
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()


def test_directory_target_refuses_a_tampered_bundle_and_writes_nothing(tmp_path, add_one_bundle):
    (Path(add_one_bundle.path) / "function.pkl").write_bytes(b"not the pickle that was hashed")
    with pytest.raises(PublishError) as caught:
        DirectoryTarget(tmp_path / "out").push(add_one_bundle)
    assert caught.value.code == "invalid_bundle"
    assert os.listdir(tmp_path / "out" / "add-one") == []


# -- FunctionServerTarget / LocalTarget failures that need no server --------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_function_server_is_target_unreachable(add_one_bundle):
    target = get_target(f"http://127.0.0.1:{_closed_port()}", token="t")
    with pytest.raises(PublishError) as caught:
        target.push(add_one_bundle, None)
    assert caught.value.code == "target_unreachable"
    assert "jupyter publish serve" in caught.value.hint


@pytest.mark.skipif(not os.path.exists("/bin/false"), reason="needs /bin/false")
def test_local_target_that_cannot_start_says_where_the_log_is(tmp_path, add_one_bundle, monkeypatch):
    # An "interpreter" that exits at once: the start-up must fail fast with an actionable error.
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SERVER_PYTHON", "/bin/false")
    target = LocalTarget(tmp_path / "state")
    with pytest.raises(PublishError) as caught:
        target.push(add_one_bundle, None)
    assert caught.value.code == "target_unreachable"
    assert str(tmp_path / "state" / "server.log") in caught.value.hint
    assert "jupyter publish serve" in caught.value.hint
    assert not (tmp_path / "state" / "server.json").exists()


def test_state_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "explicit"))
    assert default_state_dir() == tmp_path / "explicit"
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_STATE_DIR")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    assert default_state_dir() == tmp_path / "data" / "jupyterlab_publish" / "server"
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("JUPYTER_DATA_DIR")
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert default_state_dir() == tmp_path / "home" / ".local/share/jupyter/jupyterlab_publish/server"
