"""The function server answers each error code with the status errors.HTTP_STATUS gives it, over real
HTTP (one real ``jupyter publish serve`` process), and the http target reads the same code back."""

from __future__ import annotations

import io
import json
import shutil
import sys

import pytest

from jupyterlab_publish.bundle import Bundle, pack_bundle
from jupyterlab_publish.bundle.signature import key_from_token
from jupyterlab_publish.errors import HTTP_STATUS, PublishError

from function_server import Server, adder, call, make_bundle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX process control")

MAX_BODY = 64
RAISES_IN_WORKER = """
import os
BUILT_IN = os.getpid()
def add(x):
    if os.getpid() != BUILT_IN:
        raise RuntimeError("boom in the worker")
    return x + 1
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("errors") / "state"
    started = Server(state, "--max-body", str(MAX_BODY)).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def live(server, tmp_path_factory):
    """A keyed function with one version: ``taken``."""
    return server.target().push(make_bundle(tmp_path_factory.mktemp("b"), adder(1), "add", "taken", sample=[1]))


def _admin(server, path, method="GET", raw=None, key=True):
    return call(server.url + path, None, method=method, raw=raw, key=server.token if key else None)


def _other_python_archive(server, tmp) -> bytes:
    bundle = make_bundle(tmp, adder(1), "add", "other-python", sample=[1])
    other = tmp / "other-python-copy"
    shutil.copytree(bundle.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["python"]["minor"] = "3.99"
    (other / "manifest.json").write_text(json.dumps(manifest))
    packed = io.BytesIO()
    pack_bundle(Bundle(other, manifest), packed, signing_key=key_from_token(server.token))
    return packed.getvalue()


SCENARIOS = {
    "unauthorized (admin)": ("unauthorized", lambda s, d, t: _admin(s, "/api/functions", key=False)),
    "unauthorized (call)": ("unauthorized", lambda s, d, t: call(d.url, [1])),
    "not_found (function)": ("not_found", lambda s, d, t: _admin(s, "/api/functions/nope")),
    "not_found (version)": ("not_found", lambda s, d, t: _admin(s, "/api/functions/taken/logs?version=9")),
    "not_found (route)": ("not_found", lambda s, d, t: _admin(s, "/api/nothing-here")),
    "method_not_allowed": ("method_not_allowed", lambda s, d, t: _admin(s, "/api/functions", method="PUT")),
    "invalid_name": ("invalid_name", lambda s, d, t: _admin(s, "/api/functions/Bad_Name/versions", "POST", b"x")),
    "bad_request (flag)": ("bad_request", lambda s, d, t: _admin(
        s, "/api/functions/fresh/versions?new_version=maybe", "POST", b"x")),
    "bad_request (lines)": ("bad_request", lambda s, d, t: _admin(s, "/api/functions/taken/logs?lines=0")),
    "bad_request (call)": ("bad_request", lambda s, d, t: call(d.url, None, raw=b"not json", key=d.key)),
    "invalid_bundle": ("invalid_bundle", lambda s, d, t: _admin(s, "/api/functions/fresh/versions", "POST", b"")),
    "name_taken": ("name_taken", lambda s, d, t: _admin(s, "/api/functions/taken/versions", "POST", b"x")),
    "target_error": ("target_error", lambda s, d, t: _admin(s, "/api/functions/taken/rollback", "POST", b"")),
    "payload_too_large": ("payload_too_large", lambda s, d, t: call(d.url, ["x" * (2 * MAX_BODY)], key=d.key)),
    "function_error": ("function_error", lambda s, d, t: call(d.url, ["three"], key=d.key)),
    "environment_mismatch": ("environment_mismatch", lambda s, d, t: _admin(
        s, "/api/functions/other-python/versions", "POST", _other_python_archive(s, t))),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_code_is_answered_with_its_status(server, live, tmp_path, scenario):
    code, request = SCENARIOS[scenario]
    status, body = request(server, live, tmp_path)
    assert (status, body["error"]) == (HTTP_STATUS[code], code), body
    assert body["message"]


def test_a_failed_smoke_test_is_422_and_keeps_its_code_and_log_through_the_target(server, tmp_path):
    with pytest.raises(PublishError) as caught:
        server.target().push(make_bundle(tmp_path, RAISES_IN_WORKER, "add", "smoky", sample=[1]))
    assert caught.value.code == "smoke_test_failed" and caught.value.details["status"] == HTTP_STATUS["smoke_test_failed"]
    assert "boom in the worker" in caught.value.details["log"]


@pytest.mark.parametrize("verb, args, code", [
    ("show", ("nope",), "not_found"),
    ("logs", ("taken", 9), "not_found"),
    ("logs", ("taken", None, 0), "bad_request"),
    ("rollback", ("taken",), "target_error"),
    ("rollback", ("taken", 9), "not_found"),
])
def test_the_http_target_raises_the_code_the_server_answered(server, live, verb, args, code):
    with pytest.raises(PublishError) as caught:
        getattr(server.target(), verb)(*args)
    assert caught.value.code == code and caught.value.details["status"] == HTTP_STATUS[code]
