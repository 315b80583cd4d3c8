"""The front door: connections handed to workers, served in full, counted in /metrics.

A real ``jupyter publish serve`` (two worker processes per version) and real bundles. The load test
is bounded by count (100,000 requests over 64 keep-alive connections); nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jupyterlab_publish.functions.front import function_name

from function_server import HTTP_TIMEOUT, Server, adder, call, make_bundle
from loadgen import hammer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCM_RIGHTS handoff; POSIX only")


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"POST /functions/add HTTP/1.1\r\n", "add"),
        (b"POST /functions/add?x=1 HTTP/1.1\r\n", "add"),
        (b"GET /functions/my-model HTTP/1.1\r\n", None),  # its description comes from the server
        (b"GET /functions/my-model/docs HTTP/1.1\r\n", None),
        (b"POST /functions/add", "add"),  # the request line may arrive without its version yet
        (b"POST /functions/addition-x HTTP/1.1\r\n", "addition-x"),
        (b"POST /api/functions/add/versions HTTP/1.1\r\n", None),
        (b"GET /healthz HTTP/1.1\r\n", None),
        (b"GET /metrics HTTP/1.1\r\n", None),
        (b"DELETE /functions/add HTTP/1.1\r\n", None),
        (b"POST /functions/Add HTTP/1.1\r\n", None),  # not a valid endpoint name: the app answers 404
        (b"POST /functions/ HTTP/1.1\r\n", None),
        (b"POST /functionsx/add HTTP/1.1\r\n", None),
    ],
)
def test_only_calls_of_a_named_function_are_handed_to_workers(head, name):
    assert function_name(head) == name


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("front") / "state"
    started = Server(state, "--processes", "2").start()
    yield started
    started.stop()


def _healthz(server) -> dict:
    return call(server.url + "/healthz", method="GET")[1]


def _requests_counted(server, name: str, status: str) -> float:
    request = urllib.request.Request(server.url + "/metrics", headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "jupyterlab_publish_requests":
            return sum(s.value for s in family.samples
                       if s.labels.get("function") == name and s.labels.get("status") == status)
    return 0.0


def test_100k_requests_over_64_connections_all_succeed_through_the_workers(server, tmp_path):
    deployment = server.target().push(make_bundle(tmp_path, adder(1), "add", "hammered", sample=[1]))
    handed_before = _healthz(server)["handed_off"]

    statuses, errors = asyncio.run(hammer(
        "127.0.0.1", int(server.url.rsplit(":", 1)[1]), "/functions/hammered", b"[41]",
        total=100_000, connections=64, key=deployment.key,
    ))

    assert errors == [] and dict(statuses) == {200: 100_000}
    # The connections were served by the workers, not proxied by the server...
    assert _healthz(server)["handed_off"] - handed_before >= 64
    # ...which counted every call, summed over both processes in /metrics.
    assert _requests_counted(server, "hammered", "200") >= 100_000


def _exchange(conn: socket.socket, request: bytes) -> tuple:
    """Send one request on a keep-alive connection and read one Content-Length-framed response."""
    conn.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def _request(method: str, path: str, body: bytes = b"", key: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             "Content-Type: application/json"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_a_kept_alive_connection_can_go_on_to_other_functions_and_the_admin_api(server, tmp_path):
    target = server.target()
    first = target.push(make_bundle(tmp_path, adder(1), "add", "first", sample=[1]))
    second = target.push(make_bundle(tmp_path, adder(100), "add", "second", sample=[1]))
    host, port = server.url.rsplit("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT) as conn:
        # The first request decides which worker gets the connection...
        assert _exchange(conn, _request("POST", "/functions/first", b"[1]", first.key)) == (200, b"2")
        # ...and requests for anything else on it still reach the right place.
        assert _exchange(conn, _request("POST", "/functions/second", b"[1]", second.key)) == (200, b"101")
        status, body = _exchange(conn, _request("GET", "/api/functions", key=server.token))
        assert status == 200 and {"first", "second"} <= {f["name"] for f in json.loads(body)["functions"]}
        status, body = _exchange(conn, _request("POST", "/functions/second", b"[1]", first.key))
        assert status == 401  # the key of one function does not open another
        assert _exchange(conn, _request("POST", "/functions/first", b"[2]", first.key)) == (200, b"3")


def test_each_function_has_a_docs_page_and_its_calls_show_in_metrics(server, tmp_path):
    source = 'def scale(x: float, factor: float = 2.0) -> float:\n    """Multiply x by factor."""\n    return x * factor\n'
    deployment = server.target().push(make_bundle(tmp_path, source, "scale", "scale", sample=[1.5]))
    with urllib.request.urlopen(deployment.url + "/docs", timeout=HTTP_TIMEOUT) as response:
        page = response.read().decode()
        assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    assert "Multiply x by factor." in page and "factor" in page
    assert "<script src" not in page and '<link' not in page  # self-contained: works offline

    assert call(deployment.url, [2], key=deployment.key) == (200, 4.0)
    assert call(deployment.url, {"x": 1, "factor": 3}, key=deployment.key) == (200, 3.0)
    assert call(deployment.url, [1])[0] == 401
    assert _requests_counted(server, "scale", "200") >= 2
    assert _requests_counted(server, "scale", "401") >= 1
