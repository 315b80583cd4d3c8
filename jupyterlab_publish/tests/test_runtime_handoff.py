"""Connection hand-off, end to end: a real service.py process serves TCP connections we accepted.

The test plays the function server's part of the contract: it accepts a client's connection,
peeks at the request line (consuming nothing), passes the descriptor over an AF_UNIX socketpair
with ``socket.send_fds`` and closes its own copy. The worker must answer that first request, keep
the connection alive for more, relay a path that is not its function's to ``--upstream`` (a tiny
HTTP server run here), and count every invocation in /stats.
"""

import hashlib
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.runtime.service import main

START_TIMEOUT = 60
KEY = "k-3b1f9e"

CELL = """
    def greet(name: str, punctuation: str = "!") -> str:
        '''Say hello.'''
        return f"hello {name}{punctuation}"
"""


def notebook(source):
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return ns


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Echo(http.server.BaseHTTPRequestHandler):
    """The stand-in function server: answers what it was asked, as JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the function server
    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        received = self.rfile.read(length)
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "length": len(received),
            "sha256": hashlib.sha256(received).hexdigest(),
            "body": received.decode() if length < 1000 else None,
            "host": self.headers.get("host"),
            "forwarded_for": self.headers.get("x-forwarded-for"),
        }).encode()
        self.send_response(207)
        self.send_header("content-type", "application/json")
        self.send_header("x-upstream", "yes")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, upstream):
    """A service.py process with --handoff-fd; yields (our end of the socketpair, its URL, process, bundle)."""
    path = tmp_path_factory.mktemp("handoff") / "greet"
    build_bundle(notebook(CELL)["greet"], path, name="greet", sample=["ada"])
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["JUPYTERLAB_PUBLISH_KEYS_SHA256"] = " , " + hashlib.sha256(KEY.encode()).hexdigest()
    log = open(path.parent / "worker.log", "w+")
    process = subprocess.Popen(
        [sys.executable, str(path / "service.py"), "--host", "127.0.0.1", "--port", str(port), "--name", "greet",
         "--handoff-fd", str(theirs.fileno()), "--upstream", upstream, "--timeout", "30", "--concurrency", "2"],
        pass_fds=[theirs.fileno()], stdout=log, stderr=subprocess.STDOUT, cwd=path.parent, env=env,
    )
    theirs.close()
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_until_healthy(url, process, log)
        assert health["handoff"] is True and health["auth"] is True, health
        yield ours, url, process, path
    finally:
        ours.close()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()


def wait_until_healthy(url, process, log) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"service.py exited with {process.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"service.py did not answer /healthz within {START_TIMEOUT}s")


def hand_off(control: socket.socket, send_first_request) -> http.client.HTTPConnection:
    """Accept a client connection, let it send its first request, pass it on; return the client."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = http.client.HTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=30)
        client.connect()
        accepted, _ = listener.accept()
    # The listener is closed: were the client to reconnect, it would be refused, not served.
    send_first_request(client)
    head = b""
    while b"\r\n" not in head:
        head = accepted.recv(4096, socket.MSG_PEEK)  # what the server peeks at; nothing is consumed
    assert head.startswith(b"POST /functions/greet ") or head.startswith(b"GET /functions/greet")
    socket.send_fds(control, [b"c"], [accepted.fileno()])
    accepted.close()
    return client


def call(client, method, path, body=None, key=KEY):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    client.request(method, path, body=None if body is None else json.dumps(body), headers=headers)


def answer(client):
    response = client.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def stats(url) -> dict:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
        return json.loads(response.read())


def test_a_handed_off_connection_is_served_kept_alive_and_relays_other_paths(worker):
    control, url, _, _ = worker
    before = stats(url)["requests"].get("200", 0)
    client = hand_off(control, lambda c: call(c, "POST", "/functions/greet", ["ada"]))
    sock = client.sock
    status, headers, body = answer(client)
    assert (status, json.loads(body)) == (200, "hello ada!")
    assert headers["content-type"] == "application/json"

    # The same connection, by name this time.
    call(client, "POST", "/functions/greet", {"name": "bob", "punctuation": "?"})
    status, _, body = answer(client)
    assert (status, json.loads(body)) == (200, "hello bob?")

    # The function's pages are served here too, typed from the signature.
    call(client, "GET", "/functions/greet/openapi.json")
    status, _, body = answer(client)
    schema = json.loads(body)["paths"]["/functions/greet"]["post"]["requestBody"]["content"]["application/json"]
    assert status == 200 and schema["schema"]["oneOf"][1]["properties"]["name"]["type"] == "string"

    # A path that is not this function's belongs to the server: from here on the connection's bytes
    # go to it unparsed (another function's key or the admin token never meet function code).
    call(client, "PUT", "/api/functions/other?x=1", {"v": 1})
    status, headers, body = answer(client)
    relayed = json.loads(body)
    assert status == 207 and headers["x-upstream"] == "yes"
    assert relayed["method"] == "PUT" and relayed["path"] == "/api/functions/other?x=1"
    assert json.loads(relayed["body"]) == {"v": 1}
    assert relayed["host"].startswith("127.0.0.1:") and relayed["forwarded_for"] is None  # byte for byte

    # Still the one connection, and the worker's own pages stay private on it.
    call(client, "GET", "/healthz")
    status, _, body = answer(client)
    assert status == 207 and json.loads(body)["path"] == "/healthz"
    assert client.sock is sock
    client.close()
    assert stats(url)["requests"]["200"] == before + 2


def test_a_large_relayed_body_arrives_whole(worker):
    # Larger than what the worker keeps in memory: it waits on disk and is streamed to the server.
    control, _, _, _ = worker
    big = os.urandom(9 * 1024 * 1024)
    client = hand_off(control, lambda c: call(c, "POST", "/functions/greet", ["x"]))
    assert answer(client)[0] == 200
    client.request("POST", "/api/upload", body=big, headers={"content-type": "application/octet-stream"})
    status, _, body = answer(client)
    relayed = json.loads(body)
    assert status == 207 and relayed["length"] == len(big)
    assert relayed["sha256"] == hashlib.sha256(big).hexdigest()
    client.close()


def test_auth_applies_on_handed_off_connections(worker):
    control, url, _, _ = worker
    client = hand_off(control, lambda c: call(c, "POST", "/functions/greet", ["eve"], key=None))
    status, headers, body = answer(client)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    error = json.loads(body)
    assert error["error"] == "unauthorized" and "Bearer" in error["message"] and "greet" in error["hint"]
    # The body was never read: the connection ends rather than read it.
    assert headers["connection"] == "close"
    client.close()
    client = hand_off(control, lambda c: call(c, "POST", "/functions/greet", ["eve"], key="wrong"))
    assert answer(client)[0] == 401
    client.close()
    client = hand_off(control, lambda c: call(c, "POST", "/functions/greet", ["eve"]))
    assert answer(client)[:1] == (200,)
    client.close()
    assert stats(url)["requests"]["401"] >= 2


def test_several_connections_handed_off_at_once(worker):
    control, _, _, _ = worker
    clients = [hand_off(control, lambda c, i=i: call(c, "POST", "/functions/greet", [f"n{i}"])) for i in range(5)]
    for i, client in enumerate(clients):
        status, _, body = answer(client)
        assert (status, json.loads(body)) == (200, f"hello n{i}!")
        client.close()


def test_a_handoff_fd_that_is_not_a_socket_is_refused(worker, capsys):
    read_end, write_end = os.pipe()
    try:
        assert main(["--bundle", str(worker[3]), "--handoff-fd", str(read_end)]) == 2
    finally:
        os.close(read_end)
        os.close(write_end)
    assert f"--handoff-fd {read_end} is not an open socket" in capsys.readouterr().err


def test_the_worker_stops_when_the_server_closes_its_end(worker):
    control, _, process, _ = worker
    control.close()
    assert process.wait(timeout=30) == 0
