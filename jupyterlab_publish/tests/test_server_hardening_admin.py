"""What the function server gives away, and to whom (issue 10, findings 6, 8, 9, 10 and 11).

A real ``jupyter publish serve`` on 127.0.0.1 with real bundles: keyed samples stay hidden without
the key, /metrics needs the admin token, state files are the owner's alone, absurd numbers get a
400, pages name the server's public URL, and a bundle pushed under another name is refused.
"""

from __future__ import annotations

import json
import re
import stat
import sys
import urllib.request

import pytest

from jupyterlab_publish.bundle import pack_bundle
from jupyterlab_publish.bundle.signature import key_from_token

from function_server import HTTP_TIMEOUT, Server, adder, call, make_bundle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX modes and handoff")

SECRET_SAMPLE = [4242]  # the owner's data: what a caller without the key must not see


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("hardening-admin") / "state"
    started = Server(state).start()
    tmp = tmp_path_factory.mktemp("bundles")
    started.keyed = started.target().push(make_bundle(tmp, adder(1), "add", "keyed", sample=SECRET_SAMPLE))
    started.open = started.target().push(make_bundle(tmp, adder(2), "add", "open", sample=[7]), public=True)
    started.tmp = tmp
    yield started
    started.stop()


def _get(url: str, token: str | None = None):
    """(status, headers, body bytes) of a GET; HTTP errors are returned."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


# -- finding 6: keyed samples and the function list ------------------------------------------------


def test_a_keyed_functions_sample_is_shown_only_with_its_key(server):
    url = server.keyed.url
    status, body = call(url, method="GET")
    assert status == 200 and body["sample"] is None and body["name"] == "keyed"
    for key in (server.keyed.key, server.token):  # the function's key, or the owner's admin token
        status, body = call(url, method="GET", key=key)
        assert status == 200 and body["sample"] == SECRET_SAMPLE
    assert call(url, method="GET", key="wrong")[1]["sample"] is None
    assert call(server.open.url, method="GET")[1]["sample"] == [7]  # a public function's is public


@pytest.mark.parametrize("page", ["openapi.json", "docs"])
def test_a_keyed_functions_pages_leave_its_sample_out_without_its_key(server, page):
    status, _, without = _get(f"{server.keyed.url}/{page}")
    assert status == 200 and b"4242" not in without
    status, _, with_key = _get(f"{server.keyed.url}/{page}", server.keyed.key)
    assert status == 200 and b"4242" in with_key


def test_metrics_need_the_admin_token(server):
    status, headers, body = _get(server.url + "/metrics")
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert b"keyed" not in body
    assert headers["www-authenticate"].startswith("Bearer")
    status, _, body = _get(server.url + "/metrics", server.token)
    assert status == 200 and b'function="keyed"' in body
    assert {m.name for m in server.target().metrics()} >= {"keyed", "open"}  # the http target sends it


# -- finding 10: pages through the server name the server and keep their CSP ----------------------


def test_openapi_through_the_server_names_the_servers_url_and_the_functions_path(server):
    status, _, body = _get(server.open.url + "/openapi.json")
    document = json.loads(body)
    assert status == 200
    assert document["servers"] == [{"url": server.url}]
    assert "/functions/open" in document["paths"] and "/" not in document["paths"]


def test_docs_through_the_server_show_the_public_url_and_keep_the_content_security_policy(server):
    status, headers, body = _get(server.open.url + "/docs")
    page = body.decode()
    assert status == 200 and headers["content-security-policy"]
    assert server.open.url in page
    # No other address (a worker's private port) appears on the page.
    assert set(re.findall(r"https?://[\w.\[\]:-]+", page)) == {server.url}


# -- finding 8: the state directory is its owner's alone -------------------------------------------


def test_state_files_holding_keys_are_owner_only(server):
    # A publish has written to the database, so its -wal and -shm files exist.
    for name in ("state.db", "state.db-wal", "state.db-shm", "token", "server.json"):
        path = server.state / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, oct(path.stat().st_mode))
    for directory in (server.state, server.state / "uploads", server.state / "functions"):
        # Nobody else may list or write them (a sandbox may leave them enterable: 0711).
        assert stat.S_IMODE(directory.stat().st_mode) & 0o066 == 0, (directory, oct(directory.stat().st_mode))


def test_a_wide_state_directory_and_database_are_narrowed_when_the_server_starts(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (state / name).touch(mode=0o644)
    (state / "state.db").unlink()  # an empty file is not a database; let SQLite create it
    for directory in (state, state / "functions"):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)
    started = Server(state).start()
    try:
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
        for directory in (state, state / "functions"):
            assert stat.S_IMODE(directory.stat().st_mode) & 0o066 == 0, directory
    finally:
        started.stop()


# -- finding 9: numbers in the query ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/functions/keyed/rollback?to=" + "9" * 30),
    ("POST", "/api/functions/keyed/rollback?to=" + "9" * 5000),
    ("GET", "/api/functions/keyed/logs?version=" + "9" * 30),
    ("GET", "/api/functions/keyed/logs?lines=" + "9" * 30),
    ("GET", "/api/functions/keyed/logs?lines=1e9"),
    ("GET", "/api/functions/keyed/logs?version=-" + "9" * 25),
])
def test_huge_or_malformed_numbers_in_the_query_are_a_400(server, method, path):
    request = urllib.request.Request(server.url + path, method=method, data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {server.token}"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
    assert status == 400 and body["error"] == "bad_request", body
    assert "whole number" in body["message"] or "out of range" in body["message"]
    assert call(server.keyed.url, [1], key=server.keyed.key) == (200, 2)  # nothing changed


# -- finding 11: a bundle goes live only under its own name ---------------------------------------


def test_a_bundle_pushed_under_another_name_is_refused_and_nothing_changes(server, tmp_path):
    bundle = make_bundle(server.tmp, adder(100), "add", "keyed", sample=[1])  # names 'keyed'
    archive = tmp_path / "keyed.tar.gz"
    with open(archive, "wb") as handle:
        pack_bundle(bundle, handle, signing_key=key_from_token(server.token))
    before = server.target().list()
    for target_name, flags in (("impostor", "new_version=false"), ("open", "new_version=true")):
        request = urllib.request.Request(
            f"{server.url}/api/functions/{target_name}/versions?{flags}", data=archive.read_bytes(), method="POST",
            headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/gzip"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                status, body = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            status, body = exc.code, json.loads(exc.read())
        assert status == 400 and body["error"] == "bad_request", body
        assert "'keyed'" in body["message"] and f"'{target_name}'" in body["message"]
    assert [(f.name, f.live_version) for f in server.target().list()] == [(f.name, f.live_version) for f in before]
    assert not (server.state / "functions" / "impostor").exists()
    assert [v.version for v in server.target().versions("open")] == [1]
    assert call(server.open.url, [1]) == (200, 3)
