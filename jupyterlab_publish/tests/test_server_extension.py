"""The Deployments API of the Jupyter server extension, end to end: a real Jupyter server
(pytest-jupyter) talking to a real ``jupyter publish serve`` on 127.0.0.1 with real bundles.

Each answer is also checked against the API's own OpenAPI document (server/openapi.json), so the
spec and the handlers cannot drift apart.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import jsonschema
import pytest
from tornado.httpclient import HTTPClientError

from jupyterlab_publish.server.service import lines_since, log_cursor, openable_path
from jupyterlab_publish.targets.results import function_status, histogram_quantile

from function_server import Server, adder, make_bundle

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.skipif(os.name == "nt", reason="the function server helpers are POSIX-only")

OPENAPI = json.loads((Path(__file__).resolve().parents[1] / "server" / "openapi.json").read_text())
TOKEN_ENV = "DEPLOYMENTS_TEST_TOKEN"


def conforms(body, schema_name: str):
    """``body`` matches the named schema of the OpenAPI document; returns it for chaining."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": OPENAPI["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    return body


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyterlab_publish": True}}}


@pytest.fixture(scope="module")
def function_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("deployments") / "state").start()
    yield server
    server.stop()


def printing_adder(n: int) -> str:
    """An adder that writes each call to its worker's log, so following the log sees calls."""
    return f"def add(x):\n    print(f'add called with {{x}}', flush=True)\n    return x + {n}\n"


@pytest.fixture
def published(function_server, tmp_path, monkeypatch):
    """``add`` v1 (x + 1) and v2 (x + 2), keyed, with provenance naming a notebook and cell."""
    monkeypatch.setenv(TOKEN_ENV, function_server.token)
    target = function_server.target()
    provenance = {"notebook": "work/analysis.ipynb", "cell_id": "cell-7"}
    target.push(make_bundle(tmp_path, printing_adder(1), "add", "add", sample=[1], provenance=provenance))
    target.push(make_bundle(tmp_path, printing_adder(2), "add", "add", sample=[1], provenance=provenance),
                new_version=True)
    yield function_server
    try:
        target.delete("add")
    except Exception:
        pass  # the test deleted it


def query(server, **extra) -> dict:
    return {"target": server.url, "token_env": TOKEN_ENV, **extra}


async def api(jp_fetch, *parts, params, method: str = "GET", body=None, raw: bytes | None = None):
    """(status, JSON) of one request to the Deployments API; errors are returned, not raised."""
    kwargs = {"method": method, "params": params, "request_timeout": 120}
    if method == "POST":
        kwargs["body"] = raw if raw is not None else (b"" if body is None else json.dumps(body))
    try:
        response = await jp_fetch("jupyterlab-publish", *parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


async def test_lists_functions_with_status_metrics_and_provenance(jp_fetch, published):
    status, body = await api(jp_fetch, "functions", params=query(published))
    assert status == 200, body
    conforms(body, "FunctionList")
    assert body["started"] is True and body["target"] == published.url
    (add,) = [f for f in body["functions"] if f["name"] == "add"]
    assert add["live_version"] == 2 and add["status"] == "healthy"
    assert add["keyed"] is True and add["key"] is None, "the key is sent only when asked for"
    assert add["url"] == f"{published.url}/functions/add"
    assert add["provenance"]["notebook"] == "work/analysis.ipynb" and add["provenance"]["cell_id"] == "cell-7"
    assert add["provenance"]["notebook_path"] == "work/analysis.ipynb", "the path JupyterLab opens it by"
    assert add["provenance"]["source_hash"].startswith("sha256:")
    assert [v["status"] for v in add["versions"]] == ["retired", "live"]
    assert all(v["created"] and v["provenance"]["user"] for v in add["versions"])
    # The smoke tests of both versions were calls; none failed.
    assert add["metrics"]["requests"] >= 1 and add["metrics"]["errors"] == 0
    assert add["metrics"]["error_rate"] == 0.0 and add["metrics"]["p50"] is not None


async def test_show_sends_the_key_only_on_request(jp_fetch, published):
    status, hidden = await api(jp_fetch, "functions", "add", params=query(published))
    assert status == 200 and conforms(hidden, "Function")["key"] is None
    status, shown = await api(jp_fetch, "functions", "add", params=query(published, key="true"))
    assert status == 200 and shown["key"] == published.target().show("add").key


async def test_try_it_calls_the_function_with_its_key(jp_fetch, published):
    status, body = await api(jp_fetch, "functions", "add", "call", params=query(published), method="POST", body=[40])
    assert status == 200 and conforms(body, "CallResult") == {"name": "add", "status": 200, "ok": True, "answer": 42}
    # A call the function refuses is the function's answer, shown as such, not an API failure.
    status, body = await api(jp_fetch, "functions", "add", "call", params=query(published), method="POST",
                             body={"y": 1})
    assert status == 200 and body["ok"] is False and body["status"] == 400
    assert body["answer"]["error"] == "bad_request" and "add(x)" in body["answer"]["message"]
    # The counters the panel shows move with the calls.
    status, listed = await api(jp_fetch, "functions", "add", params=query(published))
    assert listed["metrics"]["requests"] >= 3


async def test_try_it_refuses_a_body_that_is_not_json(jp_fetch, published):
    status, body = await api(jp_fetch, "functions", "add", "call", params=query(published), method="POST",
                             raw=b"[1, ")
    assert status == 422 and conforms(body, "Error")["error"] == "invalid_input"
    assert "not JSON" in body["message"] and body["hint"]


async def test_rollback_then_logs_then_delete(jp_fetch, published):
    status, body = await api(jp_fetch, "functions", "add", "rollback", params=query(published), method="POST")
    assert status == 200 and conforms(body, "Rollback")["version"] == 1 and body["previous_version"] == 2
    status, body = await api(jp_fetch, "functions", "add", "call", params=query(published), method="POST", body=[1])
    assert body["answer"] == 2, "v1 (x + 1) serves again"
    status, again = await api(jp_fetch, "functions", "add", "rollback", params=query(published), method="POST",
                              body={"to": 2})
    assert status == 200 and again["version"] == 2

    status, logs = await api(jp_fetch, "functions", "add", "logs", params=query(published, lines=50))
    assert status == 200 and conforms(logs, "Logs")["version"] == 2 and logs["log"] and logs["gap"] is False
    # Follow: nothing new since the cursor, then the lines a new call writes.
    status, quiet = await api(jp_fetch, "functions", "add", "logs", params=query(published, since=logs["cursor"]))
    assert status == 200 and quiet["log"] == "" and quiet["cursor"] == logs["cursor"]
    await api(jp_fetch, "functions", "add", "call", params=query(published), method="POST", body=[7])
    status, fresh = await api(jp_fetch, "functions", "add", "logs", params=query(published, since=logs["cursor"]))
    assert status == 200 and fresh["log"].strip() == "add called with 7" and fresh["gap"] is False
    assert fresh["cursor"] != logs["cursor"]

    status, body = await api(jp_fetch, "functions", "add", params=query(published), method="DELETE")
    assert status == 200 and conforms(body, "Deleted") == {"deleted": "add"}
    status, body = await api(jp_fetch, "functions", "add", params=query(published))
    assert status == 404 and body["error"] == "not_found"
    status, listed = await api(jp_fetch, "functions", params=query(published))
    assert "add" not in [f["name"] for f in listed["functions"]]


async def test_rollback_with_nothing_to_roll_back_to_is_a_target_error(jp_fetch, function_server, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, function_server.token)
    function_server.target().push(make_bundle(tmp_path, adder(5), "add", "lonely", sample=[1]))
    try:
        status, body = await api(jp_fetch, "functions", "lonely", "rollback", params=query(function_server),
                                 method="POST")
        assert status == 409 and body["error"] == "target_error" and body["hint"]
        status, body = await api(jp_fetch, "functions", "lonely", "rollback", params=query(function_server),
                                 method="POST", body={"to": "two"})
        assert status == 400 and body["error"] == "bad_request"
    finally:
        function_server.target().delete("lonely")


async def test_docs_page_is_served_sandboxed(jp_fetch, published):
    response = await jp_fetch("jupyterlab-publish", "functions", "add", "docs", params=query(published))
    assert response.headers["Content-Type"].startswith("text/html")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert b"<h1>add</h1>" in response.body


async def test_unknown_target_and_missing_secret_are_clear_errors(jp_fetch, published, monkeypatch):
    status, body = await api(jp_fetch, "functions", params={"target": "ftp://nope"})
    assert status == 400 and conforms(body, "Error")["error"] == "unknown_target" and "dir:" in body["hint"]
    status, body = await api(jp_fetch, "functions", params={})
    assert status == 400 and body["error"] == "bad_request" and "?target=" in body["hint"]
    monkeypatch.delenv(TOKEN_ENV)
    status, body = await api(jp_fetch, "functions", params=query(published))
    assert status == 409 and body["error"] == "target_error" and TOKEN_ENV in body["message"]
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    status, body = await api(jp_fetch, "functions", params=query(published))
    assert status == 409 and "refused the admin token" in body["message"]
    assert "wrong" not in json.dumps(body), "a secret never reaches the browser"
    status, body = await api(jp_fetch, "functions", "Not_A_Name", params=query(published))
    assert status == 400 and body["error"] == "invalid_name"


async def test_a_target_without_the_verb_answers_unsupported(jp_fetch, tmp_path):
    status, body = await api(jp_fetch, "functions", "add", "logs", params={"target": f"dir:{tmp_path}"})
    assert status == 501 and body["error"] == "unsupported" and "local" in body["hint"]


async def test_targets_are_described_with_capabilities_and_no_secret(jp_fetch, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_TOKEN", "never-shown")
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "no-server"))
    params = [("spec", "local"), ("spec", f"dir:{tmp_path}"), ("spec", "ftp://x")]
    status, body = await api(jp_fetch, "targets", params=params)
    assert status == 200 and conforms(body, "TargetList")
    local, directory, bad = body["targets"]
    assert local["kind"] == "local" and local["started"] is False and "call" in local["capabilities"]
    assert directory["capabilities"] == ["list", "show", "versions", "delete"] and directory["started"] is True
    assert bad["error"]["code"] == "unknown_target"
    assert "never-shown" not in json.dumps(body)
    # Listing a local target whose server is not running shows nothing and starts nothing.
    status, listed = await api(jp_fetch, "functions", params={"target": "local"})
    assert status == 200 and listed == {"target": "local", "started": False, "functions": [], "metrics_error": None}
    status, body = await api(jp_fetch, "functions", "add", params={"target": "local"})
    assert status == 502 and body["error"] == "target_unreachable" and "publish a function" in body["hint"]
    assert not (tmp_path / "no-server" / "server.json").exists()


async def test_requests_without_jupyter_auth_or_xsrf_are_refused(jp_fetch, published, http_server_client,
                                                                jp_base_url, jp_auth_header):
    base = jp_base_url.rstrip("/") + "/jupyterlab-publish/functions"
    # No Jupyter token: refused before anything reaches the target.
    with pytest.raises(HTTPClientError) as caught:
        await http_server_client.fetch(f"{base}?{urllib.parse.urlencode(query(published))}")
    assert caught.value.code == 403
    # Logged in by cookie (what the browser does) but without the XSRF token: a POST is refused.
    first = await http_server_client.fetch(f"{base}?{urllib.parse.urlencode(query(published))}", headers=jp_auth_header)
    cookies = "; ".join(c.split(";", 1)[0] for c in first.headers.get_list("Set-Cookie"))
    assert cookies, "token authentication sets the login cookie"
    listing = f"{base}?{urllib.parse.urlencode(query(published))}"
    # What JupyterLab sends: the session cookie with the XSRF cookie and header.
    xsrf = {"Cookie": f"{cookies}; _xsrf=same-value", "X-XSRFToken": "same-value"}
    assert (await http_server_client.fetch(listing, headers=xsrf)).code == 200
    # A link on another site followed with the session cookie: even a GET is refused, since it
    # would make this server send the target's token to the spec in the link.
    for headers in ({"Cookie": cookies}, {"Cookie": cookies, "Referer": "https://evil.example/page"}):
        with pytest.raises(HTTPClientError) as caught:
            await http_server_client.fetch(listing, headers=headers)
        assert caught.value.code == 403
    with pytest.raises(HTTPClientError) as caught:
        await http_server_client.fetch(f"{base}/add/rollback?{urllib.parse.urlencode(query(published))}",
                                       method="POST", body=b"", headers={"Cookie": cookies})
    assert caught.value.code == 403 and b"xsrf" in caught.value.response.body.lower()
    assert published.target().show("add").live_version == 2, "the refused rollback changed nothing"


async def test_the_openapi_document_is_served(jp_fetch):
    response = await jp_fetch("jupyterlab-publish", "openapi.json")
    document = json.loads(response.body)
    assert document == OPENAPI and document["openapi"].startswith("3.1")


def test_follow_cursor_returns_only_new_lines_and_flags_a_gap():
    log = "a\nb\nc"
    text, cursor, gap = lines_since(log, None)
    assert (text, gap) == (log, False) and cursor == log_cursor(["a", "b", "c"])
    assert lines_since(log + "\nd\ne", cursor)[0] == "d\ne"
    assert lines_since(log, cursor)[0] == ""
    text, _, gap = lines_since("x\ny", cursor)
    assert (text, gap) == ("x\ny", True), "a cursor out of the window returns the window, flagged"


def test_a_notebook_path_is_opened_relative_to_the_jupyter_root(tmp_path):
    root = tmp_path / "root"
    assert openable_path("work/a.ipynb", str(root)) == "work/a.ipynb"
    assert openable_path(str(root / "work" / "a.ipynb"), str(root)) == "work/a.ipynb"
    assert openable_path(str(tmp_path / "elsewhere.ipynb"), str(root)) is None, "outside the root: not openable"
    assert openable_path(None, str(root)) is None


def test_status_follows_the_live_versions_processes():
    assert function_status(None, 0, 0) == "failed", "no live version"
    assert function_status(2, 1, 3) == "healthy"
    assert function_status(2, 0, 0) == "starting"
    assert function_status(2, 0, 1) == "restarting"
    assert function_status(None, None, None) is None, "a directory serves nothing"


def test_latency_quantiles_interpolate_inside_the_bucket_as_prometheus_does():
    inf = float("inf")
    # 10 calls: 5 under 5 ms, 4 more under 10 ms, 1 slower than the last bound.
    buckets = [(0.005, 5), (0.01, 9), (0.025, 9), (inf, 10)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.005)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.005 + 0.005 * (7 - 5) / 4)
    assert histogram_quantile(0.99, buckets) == 0.025, "in the +Inf bucket: the largest finite bound"
    assert histogram_quantile(0.5, [(0.005, 0), (inf, 0)]) is None, "no calls, no latency"
