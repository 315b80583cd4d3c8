"""The front door and the server's own connections under attack (issue 10, findings 1, 4 and 7).

A real ``jupyter publish serve`` on 127.0.0.1 and real bundles. Slow-client probes wait for the
server to close on them, each bounded by a socket timeout well above the server's header timeout;
nothing asserts on timing.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys

import pytest

from jupyterlab_publish.functions.front import DEFAULT_MAX_PENDING, function_name

from function_server import HTTP_TIMEOUT, Server, adder, call, make_bundle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCM_RIGHTS handoff; POSIX only")

EXTRA_HOST = "functions.example.test"
HEADER_TIMEOUT = 2  # seconds: the server closes on a client that has not sent its headers by then
CLOSE_WAIT = 30  # the longest a probe waits for the server to close


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("hardening-front") / "state"
    started = Server(state, "--allowed-host", EXTRA_HOST, "--header-timeout", str(HEADER_TIMEOUT)).start()
    tmp = tmp_path_factory.mktemp("bundles")
    started.first = started.target().push(make_bundle(tmp, adder(1), "add", "first", sample=[1]), public=True)
    started.second = started.target().push(make_bundle(tmp, adder(2), "add", "second", sample=[1]), public=True)
    yield started
    started.stop()


def _port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connection(server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", _port(server), timeout=HTTP_TIMEOUT)


def _ask(connection, method: str, path: str, body=None, headers=None):
    """(status, headers, JSON or text body) of one request on ``connection`` (kept open)."""
    connection.request(method, path, body=None if body is None else json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = data.decode("utf-8", "replace")
    return response.status, response.headers, parsed


def _handed_off(server) -> int:
    return call(server.url + "/healthz", method="GET")[1]["handed_off"]


# -- finding 1: only the exact call path is handed to a worker; a relayed request never is ---------


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"POST /functions/add HTTP/1.1\r\n", "add"),
        (b"POST /functions/add?x=1 HTTP/1.1\r\n", "add"),
        (b"POST /functions/add/anything HTTP/1.1\r\n", None),
        (b"POST /functions/add/ HTTP/1.1\r\n", None),
        (b"POST /functions/add/openapi.json HTTP/1.1\r\n", None),
        (b"POST /functions/add#x HTTP/1.1\r\n", None),
        (b"POST /functions/add;x HTTP/1.1\r\n", None),
    ],
)
def test_only_the_exact_call_path_is_handed_off(head, name):
    assert function_name(head) == name


def test_a_sub_path_of_a_function_is_a_json_404_at_once_and_the_worker_keeps_serving(server):
    connection = _connection(server)
    try:
        status, _, body = _ask(connection, "POST", "/functions/first/anything", [1])
    finally:
        connection.close()
    assert status == 404 and body["error"] == "not_found", body
    # The same path as the second request of a handed-off connection: the worker relays it to the
    # server, which answers it itself.
    connection = _connection(server)
    try:
        assert _ask(connection, "POST", "/functions/first", [1])[::2] == (200, 2)
        status, _, body = _ask(connection, "POST", "/functions/first/anything", [1])
        assert status == 404 and body["error"] == "not_found", body
    finally:
        connection.close()
    assert call(server.first.url, [41]) == (200, 42)


def test_a_request_relayed_by_a_worker_is_served_by_the_server_not_handed_off_again(server):
    before = _handed_off(server)
    connection = _connection(server)
    try:
        # The connection goes to first's worker; the call of second on it is relayed to the server.
        assert _ask(connection, "POST", "/functions/first", [1])[::2] == (200, 2)
        assert _ask(connection, "POST", "/functions/second", [1])[::2] == (200, 3)
    finally:
        connection.close()
    assert _handed_off(server) - before == 1


# -- finding 4: Host allow-list and cross-site requests --------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/api/functions"), ("POST", "/api/functions/x/versions"),
    ("GET", "/functions/first"), ("GET", "/functions/first/docs"), ("GET", "/no/such/route"),
    ("POST", "/functions/first"),  # handed to the worker, which checks the same names
])
def test_a_host_this_server_does_not_answer_to_is_refused(server, method, path):
    connection = _connection(server)
    try:
        status, _, body = _ask(connection, method, path, [1] if method == "POST" else None,
                               {"Host": f"rebound.attacker.example:{_port(server)}"})
    finally:
        connection.close()
    assert status == 403 and body["error"] == "forbidden_origin", body
    assert "rebound.attacker.example" in body["message"]


@pytest.mark.parametrize("request_line", [b"GET /healthz HTTP/1.1", b"POST /functions/first HTTP/1.1"])
def test_a_request_without_a_host_is_a_json_400(server, request_line):
    sock = _raw(server)
    try:
        sock.sendall(request_line + b"\r\nContent-Length: 3\r\n\r\n[1]")
        status, body = _json_answer(_read_all(sock))
    finally:
        sock.close()
    assert status == 400 and body["error"] == "bad_request" and "Host" in body["message"], body


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", EXTRA_HOST])
def test_loopback_names_and_configured_hosts_are_served(server, host):
    named = {"Host": f"{host}:{_port(server)}"}
    for path in ("/functions/first", "/functions/second"):
        connection = _connection(server)
        try:
            assert _ask(connection, "POST", path, [1], named)[0] == 200  # by the worker
            assert _ask(connection, "POST", path + "/nothing", [1], named)[0] == 404  # relayed to the server
        finally:
            connection.close()
    connection = _connection(server)
    try:
        status, _, body = _ask(connection, "GET", "/functions/first", None, named)  # by the server
    finally:
        connection.close()
    assert status == 200 and body["url"] == f"http://{host}:{_port(server)}/functions/first"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/functions/first"), ("POST", "/api/functions/x/versions"), ("GET", "/metrics"),
    ("GET", "/functions/first"), ("POST", "/functions/first/anything"),
])
@pytest.mark.parametrize("headers", [
    {"Origin": "https://some-page.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},  # another local origin is another site too
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
])
def test_a_cross_site_browser_request_is_refused(server, method, path, headers):
    connection = _connection(server)
    try:
        status, _, body = _ask(connection, method, path, [1] if method == "POST" else None, headers)
    finally:
        connection.close()
    assert status == 403 and body["error"] == "forbidden_origin", body


def test_a_page_of_the_server_itself_may_call_and_a_link_may_open_the_docs(server):
    connection = _connection(server)
    try:
        own = {"Origin": f"http://127.0.0.1:{_port(server)}", "Sec-Fetch-Site": "same-origin"}
        assert _ask(connection, "POST", "/functions/first", [1], own)[::2] == (200, 2)
        # A link followed from another site (JupyterLab's result dialog) is a top-level navigation:
        # it cannot read the answer nor send a key, so the page opens.
        status, headers, page = _ask(connection, "GET", "/functions/first/docs", None,
                                     {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
        assert status == 200 and "text/html" in headers["content-type"]
    finally:
        connection.close()


# -- finding 7: header size limit and header-read timeout -------------------------------------------


def _raw(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=CLOSE_WAIT)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after a refusal counts as closed)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _send_ignoring_close(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before reading it all: what is being tested


def _json_answer(raw: bytes) -> tuple:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body)


@pytest.mark.parametrize("path", ["/healthz", "/functions/first"])
def test_headers_over_the_limit_are_refused_431_json(server, path):
    sock = _raw(server)
    try:
        _send_ignoring_close(sock, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                             + b"X-Padding: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
        status, body = _json_answer(_read_all(sock))
    finally:
        sock.close()
    assert status == 431 and body["error"] == "headers_too_large", body


def test_many_headers_over_the_limit_on_a_kept_alive_connection_are_refused(server):
    connection = _connection(server)
    try:
        assert _ask(connection, "GET", "/healthz")[0] == 200
        many = {f"X-Header-{i}": "b" * 1000 for i in range(100)}  # 100 KiB in all
        status, _, body = _ask(connection, "GET", "/healthz", None, many)
    finally:
        connection.close()
    assert status == 431 and body["error"] == "headers_too_large", body


def test_headers_under_the_limit_are_served(server):
    connection = _connection(server)
    try:
        status, _, body = _ask(connection, "GET", "/healthz", None, {f"X-Header-{i}": "c" * 1000 for i in range(30)})
    finally:
        connection.close()
    assert status == 200 and body["status"] == "ok"


@pytest.mark.parametrize("sent", [
    b"",  # connects and says nothing
    b"GET /heal",  # dribbles a request line
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n",  # never ends its headers
    b"POST /functions/first HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n",
])
def test_a_client_that_does_not_send_its_headers_is_closed(server, sent):
    sock = _raw(server)
    try:
        if sent:
            sock.sendall(sent)
        _read_all(sock)  # returns once the server closes; socket.timeout (a failure) otherwise
    finally:
        sock.close()


def test_hundreds_of_idle_connections_do_not_keep_others_from_being_served(server):
    idle = [_raw(server) for _ in range(300)]
    try:
        assert call(server.first.url, [1]) == (200, 2)
        assert call(server.url + "/healthz", method="GET")[0] == 200
        for sock in idle:
            _read_all(sock)  # each is closed by the server
    finally:
        for sock in idle:
            sock.close()


def test_connections_waiting_unrouted_are_bounded_the_oldest_dropped_first(tmp_path):
    # A header timeout far beyond the probe's socket timeout: only the bound can close these.
    server = Server(tmp_path / "state", "--header-timeout", "600").start()
    try:
        idle = [_raw(server) for _ in range(DEFAULT_MAX_PENDING + 8)]
        try:
            assert call(server.url + "/healthz", method="GET")[0] == 200  # a real client still gets in
            for sock in idle[:8]:
                _read_all(sock)  # dropped by the server once the bound was reached
        finally:
            for sock in idle:
                sock.close()
    finally:
        server.stop()
