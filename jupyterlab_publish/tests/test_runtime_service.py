"""The Starlette app of service.py, driven through starlette.testclient with a real bundle."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Newer starlette prefers httpx2 for its test client; httpx is what this environment has.
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.runtime import service
from jupyterlab_publish.runtime.service import BundleError, create_endpoint_app, main

CELL = """
    import numpy as np

    def compute(a, b=0):
        '''Add two numbers.'''
        if a == 13:
            raise ValueError("unlucky number")
        if a == 7:
            return object()
        return np.float64(a + b)

    def validate(a, b=0):
        if a < 0:
            raise ValueError("a must not be negative")
        return a != 99
"""


def notebook(source, **names):
    ns = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), ns)
    return ns


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    ns = notebook(CELL)
    path = tmp_path_factory.mktemp("service") / "compute"
    build_bundle(ns["compute"], path, name="adder", validator=ns["validate"], sample={"a": 1, "b": 2})
    return path


@pytest.fixture(scope="module")
def client(bundle_dir):
    with TestClient(create_endpoint_app(bundle_dir)) as client:
        yield client


def test_positional_call(client):
    response = client.post("/", json=[1, 2])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == 3.0


def test_call_by_name(client):
    response = client.post("/", json={"b": 5, "a": 1})
    assert response.status_code == 200 and response.json() == 6.0


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2"])
def test_invalid_json_is_a_bad_request(client, body):
    response = client.post("/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "JSON array" in response.json()["message"]  # the message teaches the contract


@pytest.mark.parametrize("payload", [b"5", b'"text"', b"null", b"true"])
def test_json_that_is_not_arguments_is_a_bad_request(client, payload):
    response = client.post("/", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "bad_request"
    assert "JSON array or object" in response.json()["message"]


@pytest.mark.parametrize(
    "payload, says",
    [([1, 2, 3], "too many positional arguments"), ({"c": 1}, "'a'"), ([], "missing a required argument")],
)
def test_arguments_that_do_not_bind(client, payload, says):
    response = client.post("/", json=payload)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request"
    assert "compute(a, b=0)" in body["message"] and says in body["message"]


def test_validator_raising_is_invalid_input(client):
    response = client.post("/", json=[-1])
    assert response.status_code == 422
    assert response.json() == {"error": "invalid_input", "message": "a must not be negative"}


def test_validator_returning_false_is_invalid_input(client):
    response = client.post("/", json={"a": 99})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


def test_function_raising_is_a_function_error(client):
    response = client.post("/", json=[13])
    assert response.status_code == 500
    assert response.json() == {"error": "function_error", "type": "ValueError", "message": "unlucky number"}


def test_a_result_without_json_form(client):
    response = client.post("/", json=[7])
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "unserialisable_result" and "object" in body["message"]


def test_bodies_over_the_limit_are_refused(bundle_dir):
    with TestClient(create_endpoint_app(bundle_dir, max_body=64)) as small:
        assert small.post("/", json=[1, 2]).status_code == 200
        response = small.post("/", json=[1, "x" * 100])
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large" and "--max-body" in response.json()["message"]
        # Without a Content-Length (chunked upload) the stream itself is counted.
        chunks = iter([b"[1, ", b'"' + b"y" * 100 + b'"]'])
        response = small.post("/", content=chunks, headers={"content-type": "application/json"})
        assert response.status_code == 413


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "name": "adder",
        "function": "compute",
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "pid": os.getpid(),
        "handoff": False,  # no --handoff-fd here
        "auth": False,
        "calls": response.json()["calls"],
    }
    assert response.json()["calls"] in ("inline", "thread")


def test_info(client):
    info = client.get("/").json()
    assert info["name"] == "adder" and info["function"] == "compute"
    assert info["signature"] == "(a, b=0)" and info["doc"] == "Add two numbers."
    assert info["sample"] == {"a": 1, "b": 2} and info["sample_output"] == 3.0
    assert info["validator"] is True


def test_openapi(client):
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    post = document["paths"]["/"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert {option["type"] for option in schema["oneOf"]} == {"array", "object"}
    assert post["requestBody"]["content"]["application/json"]["example"] == {"a": 1, "b": 2}
    assert set(post["responses"]) == {"200", "400", "413", "422", "500"}
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]


def test_a_tampered_pickle_is_not_loaded(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    build_bundle(ns["f"], tmp_path / "b", name="f")
    (tmp_path / "b" / "function.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(BundleError, match="checksum"):
        create_endpoint_app(tmp_path / "b")


def test_a_bundle_from_another_python_is_refused(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    build_bundle(ns["f"], tmp_path / "b", name="f")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest["python"]["minor"] = "2.7"
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="Python 2.7"):
        create_endpoint_app(tmp_path / "b")


def test_main_reports_a_missing_bundle(tmp_path, capsys):
    assert main(["--bundle", str(tmp_path), "--port", "1"]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_service_module_imports_without_starlette_or_this_package(tmp_path):
    # The kernel imports json_ready from service.py, and service.py travels alone into bundles:
    # neither may need starlette, uvicorn or jupyterlab_publish at import time.
    for filename in service.RUNTIME_FILES:  # the runtime travels as these files, nothing else
        (tmp_path / filename).write_bytes((Path(service.__file__).parent / filename).read_bytes())
    script = textwrap.dedent(
        """
        import sys
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("starlette", "uvicorn", "jupyterlab_publish"):
                    raise ImportError(f"{name} is not available here")
        sys.meta_path.insert(0, Refuse())
        import service
        print(service.json_ready((1, {2})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, [2]]"
