"""Targets without a function server: spec parsing, the registry, the directory target, errors."""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import Bundle, build_bundle, read_bundle
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.state.paths import default_state_dir
from jupyterlab_publish.targets import (
    CAPABILITIES,
    Deployment,
    FunctionInfo,
    FunctionSummary,
    LogTail,
    RollbackResult,
    Target,
    VersionInfo,
    available_targets,
    describe_targets,
    get_target,
)
from jupyterlab_publish.targets.directory import DirectoryTarget
from jupyterlab_publish.targets.http import FunctionServerTarget
from jupyterlab_publish.targets.local import LocalTarget


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
    assert target.describe() == {"kind": "local", "label": target.label, "spec": "local",
                                 "capabilities": [verb for verb in CAPABILITIES if verb != "scale"]}


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
    assert sorted(kinds) == ["dir", "http", "local", "ray"]
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


def test_a_target_without_keys_takes_public_and_ignores_it(tmp_path, add_one_bundle):
    # Every target's push takes ``public``; a directory target has no keys: every bundle it writes is keyless.
    deployment = get_target(f"dir:{tmp_path / 'out'}").push(add_one_bundle, None, public=True)
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


# -- capabilities ------------------------------------------------------------------------------------


def test_each_target_declares_its_management_verbs(tmp_path):
    every = ["list", "show", "versions", "rollback", "delete", "logs", "metrics", "call", "docs"]
    assert list(CAPABILITIES) == every + ["scale"]
    assert get_target("local").describe()["capabilities"] == every
    assert get_target("http://127.0.0.1:9", token="t").describe()["capabilities"] == every
    assert get_target(f"dir:{tmp_path}").describe()["capabilities"] == ["list", "show", "versions", "delete"]
    ray = ["list", "show", "versions", "rollback", "delete", "logs", "call", "docs", "scale"]
    assert get_target("ray+http://127.0.0.1:9?store=file:///tmp/x").describe()["capabilities"] == ray
    by_kind = {entry["kind"]: entry["capabilities"] for entry in available_targets()}
    assert by_kind == {"local": every, "http": every, "dir": ["list", "show", "versions", "delete"], "ray": ray}


@pytest.mark.parametrize("verb, args", [("rollback", ("add-one",)), ("logs", ("add-one",))])
def test_a_verb_a_target_lacks_is_unsupported_and_names_the_targets_that_have_it(tmp_path, verb, args):
    target = get_target(f"dir:{tmp_path}")
    assert verb not in target.capabilities
    with pytest.raises(PublishError) as caught:
        getattr(target, verb)(*args)
    assert caught.value.code == "unsupported"
    assert f"has no '{verb}'" in caught.value.message and str(tmp_path) in caught.value.message
    assert caught.value.hint == f"'{verb}' is available on these targets: local, http, ray"
    assert caught.value.details == {"verb": verb, "kind": "dir"}


def test_a_plugin_target_that_declares_no_verbs_has_only_push():
    class PushOnly(Target):
        kind = "push-only"

        @classmethod
        def from_spec(cls, spec, *, token=None):
            return cls()

        def push(self, bundle, progress=None, *, new_version=False, public=False):
            return Deployment(bundle.manifest["name"], 1, "memory://", self.kind)

    target = PushOnly()
    assert target.describe() == {"kind": "push-only", "label": "", "spec": "push-only", "capabilities": []}
    for verb, args in (("list", ()), ("show", ("f",)), ("versions", ("f",)), ("rollback", ("f",)),
                       ("delete", ("f",)), ("logs", ("f",))):
        with pytest.raises(PublishError) as caught:
            getattr(target, verb)(*args)
        assert caught.value.code == "unsupported" and "local" in caught.value.hint


def test_describe_targets_lists_the_configured_targets_for_the_ui(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_TOKEN", "never-shown")
    described = describe_targets(["local", f"dir:{tmp_path}", "https://f.example.org/", "ftp://nope"])
    assert [entry.get("kind") for entry in described] == ["local", "dir", "http", None]
    assert [entry.get("default") for entry in described] == [True, False, False, None]
    assert described[1]["spec"] == f"dir:{tmp_path}" and described[2]["spec"] == "https://f.example.org"
    assert described[1]["capabilities"] == ["list", "show", "versions", "delete"]
    assert described[3]["spec"] == "ftp://nope" and described[3]["error"]["code"] == "unknown_target"
    assert "never-shown" not in repr(described)


# -- the directory target's management verbs -------------------------------------------------------


def test_directory_target_lists_shows_versions_and_deletes_from_its_tree(tmp_path, add_one_bundle):
    root = tmp_path / "out"
    target = DirectoryTarget(root)
    assert target.list() == []
    target.push(add_one_bundle)
    target.push(add_one_bundle)
    (root / "not a function").mkdir()  # names the rule refuses are not functions
    (root / "add-one" / ".incoming-x").mkdir()  # a version being written is not a version yet

    (summary,) = target.list()
    assert summary == FunctionSummary(name="add-one", url=(root / "add-one").resolve().as_uri(),
                                      live_version=None, public=None, created=summary.created)
    assert summary.created and summary.created == read_bundle(root / "add-one" / "v1").manifest["created"]

    versions = target.versions("add-one")
    assert [(v.version, v.status, v.location) for v in versions] == [
        (1, "stored", str(root / "add-one" / "v1")), (2, "stored", str(root / "add-one" / "v2"))]
    assert versions[0].function["name"] == "add_one"

    shown = target.show("add-one")
    assert isinstance(shown, FunctionInfo) and shown.versions == tuple(versions)
    assert (shown.name, shown.live_version, shown.key, shown.public) == ("add-one", None, None, None)
    assert shown.to_dict()["versions"][1] == versions[1].to_dict()

    target.delete("add-one")
    assert target.list() == [] and not (root / "add-one").exists()
    assert [p.name for p in root.iterdir()] == ["not a function"]  # nothing left of the deletion


@pytest.mark.parametrize("verb", ["show", "versions", "delete"])
def test_directory_target_verbs_on_a_missing_function_are_not_found(tmp_path, verb):
    with pytest.raises(PublishError) as caught:
        getattr(DirectoryTarget(tmp_path), verb)("nothing-here")
    assert caught.value.code == "not_found" and "nothing-here" in caught.value.message
    with pytest.raises(PublishError) as caught:
        getattr(DirectoryTarget(tmp_path), verb)("../escape")
    assert caught.value.code == "invalid_name"


# -- results: one shape each, to_dict() and back ------------------------------------------------------


def test_results_round_trip_through_their_dicts():
    version = VersionInfo(version=2, status="live", created="2025-01-01T00:00:00+00:00", function={"name": "f"})
    info = FunctionInfo(name="f", url="http://h/functions/f", live_version=2, public=False, key="k",
                        versions=(version,), processes=2, restarts=0)
    as_dict = info.to_dict()
    assert as_dict["version"] == as_dict["live_version"] == 2 and as_dict["versions"] == [version.to_dict()]
    assert FunctionInfo.from_dict(as_dict) == info
    summary = FunctionSummary(name="f", url="http://h/functions/f", live_version=2, public=True, created="c")
    assert FunctionSummary.from_dict({**summary.to_dict(), "extra": 1}) == summary
    rolled = RollbackResult(name="f", version=1, previous_version=2, url="u")
    assert RollbackResult.from_dict(rolled.to_dict()) == rolled
    tail = LogTail(name="f", version=1, lines=3, log="a\nb")
    assert LogTail.from_dict(tail.to_dict()) == tail


# -- the http target reads the server's error code back ---------------------------------------------


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``self.server.answer`` = (status, JSON body); records requests."""

    def _answer(self):
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, body = self.server.answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def answering_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.seen, server.answer = [], (200, {})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_http_target_keeps_a_known_server_code_and_its_details(answering_server):
    answering_server.answer = (503, {"error": "unavailable", "message": "f is restarting", "hint": "wait",
                                     "log": "the worker's last words"})
    target = FunctionServerTarget(f"http://127.0.0.1:{answering_server.server_port}", "t")
    with pytest.raises(PublishError) as caught:
        target.logs("f")
    assert (caught.value.code, caught.value.message, caught.value.hint) == ("unavailable", "f is restarting", "wait")
    assert caught.value.details == {"log": "the worker's last words", "status": 503}


def test_the_http_target_folds_only_an_unknown_code_into_target_error(answering_server):
    target = FunctionServerTarget(f"http://127.0.0.1:{answering_server.server_port}", "t")
    for body in ({"error": "from_a_newer_server", "message": "new"}, {"message": "no code"}, {}):
        answering_server.answer = (418, body)
        with pytest.raises(PublishError) as caught:
            target.show("f")
        assert caught.value.code == "target_error" and caught.value.details["status"] == 418


def test_scale_settings_are_checked_and_refused_by_a_target_that_runs_one_copy(tmp_path):
    from jupyterlab_publish.errors import PublishError
    from jupyterlab_publish.targets.scale import Scale

    target = get_target(f"dir:{tmp_path}")
    assert target.check_scale(None).is_default
    with pytest.raises(PublishError) as refused:
        target.check_scale({"replicas": 2})
    assert refused.value.code == "invalid_scale" and refused.value.details["field"] == "scale"
    for wrong, field in [({"replicas": 0}, "replicas"), ({"replicas": 1.5}, "replicas"),
                         ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
                         ({"replicas": 2, "max_replicas": 4}, "replicas"), ({"cpus": -1}, "cpus"),
                         ({"target_ongoing_requests": 2}, "max_replicas"), ({"replica": 2}, "replica")]:
        with pytest.raises(PublishError) as bad:
            Scale.from_dict(wrong)
        assert (bad.value.code, bad.value.details["field"]) == ("invalid_scale", field), wrong
    auto = Scale.from_dict({"min_replicas": 1, "max_replicas": 4, "cpus": 0.5})
    assert Scale.from_dict(auto.to_dict()) == auto and auto.autoscaling
