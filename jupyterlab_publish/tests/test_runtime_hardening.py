"""A real service.py process under the audit's attacks (issue 10): bodies before auth, a slow inline
call, DNS rebinding and cross-site requests, keyed samples, deep JSON, the URL its pages name, SIGTERM.

Each test talks to the worker over TCP on 127.0.0.1: on its own port (as the function server's probes
and proxy do) or on connections handed over the way the server hands them (``socket.send_fds``).
"""

import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from jupyterlab_publish.bundle import build_bundle

START_TIMEOUT = 60
KEY = "k-7d0c2a"
PUBLIC = "publish.test:8765"  # the name clients reach the (pretend) function server by
MAX_BODY = 1024 * 1024
TIMEOUT = 20.0  # the worker's --timeout: far above the inline limit, so a 504 there comes from the watchdog

CELL = """
    import time

    def work(seconds: float = 0.0):
        '''Sleep, then answer how long.'''
        time.sleep(seconds)
        return seconds
"""


def notebook(source):
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return ns


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EarlyRefusal(http.server.BaseHTTPRequestHandler):
    """The stand-in function server: refuses /api/... at once, without reading the body, as it does
    for a request without the admin token; records how many body bytes it ever read."""

    read = 0
    protocol_version = "HTTP/1.1"  # keep-alive, as the function server

    def do_POST(self):
        if self.path.startswith("/api/"):
            body = json.dumps({"error": "unauthorized", "message": "the admin token is missing"}).encode()
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        length = int(self.headers.get("content-length") or 0)
        EarlyRefusal.read += len(self.rfile.read(length))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EarlyRefusal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def start_worker(path, upstream, *extra):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["JUPYTERLAB_PUBLISH_KEYS_SHA256"] = hashlib.sha256(KEY.encode()).hexdigest()
    log = open(path.parent / f"worker-{port}.log", "w+")
    process = subprocess.Popen(
        [sys.executable, str(path / "service.py"), "--host", "127.0.0.1", "--port", str(port), "--name", "work",
         "--handoff-fd", str(theirs.fileno()), "--upstream", upstream, "--timeout", str(TIMEOUT),
         "--max-body", str(MAX_BODY), "--allowed-hosts", PUBLIC, *extra],
        pass_fds=[theirs.fileno()], stdout=log, stderr=subprocess.STDOUT, cwd=path.parent, env=env,
    )
    theirs.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"service.py exited with {process.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                assert json.loads(response.read())["handoff"] is True
                break
        except OSError:
            assert time.monotonic() < deadline, "service.py did not answer /healthz"
            time.sleep(0.1)
    return ours, port, process, log


def stop_worker(ours, process, log):
    ours.close()
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("hardening") / "work"
    build_bundle(notebook(CELL)["work"], path, name="work", sample={"seconds": 0.001})
    return path


@pytest.fixture(scope="module")
def worker(bundle, upstream):
    ours, port, process, log = start_worker(bundle, upstream)
    yield ours, port, process
    stop_worker(ours, process, log)


# ── raw HTTP over sockets: the tests control every byte sent ──────────────────────────────────────


def head(method, path, host=PUBLIC, key=KEY, **headers):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def request(method, path, body=b"", **headers):
    return head(method, path, content_length=len(body), content_type="application/json", **headers) + body


def hand_off(control, first_bytes: bytes) -> socket.socket:
    """Accept a client connection, let it send ``first_bytes``, pass it to the worker; the client socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=30)
        accepted, _ = listener.accept()
    client.sendall(first_bytes)
    while b"\r\n" not in accepted.recv(4096, socket.MSG_PEEK):
        time.sleep(0.001)
    socket.send_fds(control, [b"c"], [accepted.fileno()])
    accepted.close()
    return client


def direct(port: int, data: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(data)
    return client


def read_response(client: socket.socket) -> tuple:
    """(status, headers, body) of one response with a content-length, read off the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"the connection ended before a response: {data!r}"
        data += chunk
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = client.recv(65536)
        assert chunk, "the connection ended inside a response"
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def connection_ended(client: socket.socket) -> bool:
    """True once the peer has closed (EOF or reset); a socket timeout means it stayed open."""
    try:
        while True:
            chunk = client.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# ── 1. bodies are refused before they are read ───────────────────────────────────────────────────


def test_a_call_without_its_key_is_refused_before_its_body_and_the_connection_ends(worker):
    control, _, _ = worker
    announced = 48 * 1024 * 1024
    client = hand_off(control, head("POST", "/functions/work", key=None, content_length=announced,
                                    content_type="application/json") + b"[" * 65536)
    status, headers, body = read_response(client)
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert headers["connection"] == "close"
    client.settimeout(10)
    assert connection_ended(client)  # the rest of the 48 MiB is never read, nor parsed as a request
    client.close()


def test_a_chunked_body_is_refused_once_its_running_total_passes_the_limit(worker):
    control, _, _ = worker
    client = hand_off(control, head("POST", "/functions/work", transfer_encoding="chunked",
                                    content_type="application/json"))
    chunk = b"%x\r\n" % (256 * 1024) + b" " * (256 * 1024) + b"\r\n"
    for _ in range(5):  # 1.25 MiB, more than --max-body, and no last chunk: the client would go on
        client.sendall(chunk)
    status, headers, body = read_response(client)
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    assert headers["connection"] == "close"
    client.settimeout(10)
    assert connection_ended(client)
    client.close()


def test_a_relayed_request_is_streamed_so_the_server_refuses_it_before_its_body(worker):
    # A path that is not the function's goes to the server; the server refuses an upload without the
    # admin token at once, and the worker must not have spooled the body before asking it.
    control, _, _ = worker
    client = hand_off(control, request("POST", "/functions/work", b"[]"))
    assert read_response(client)[0] == 200
    client.sendall(head("POST", "/api/functions/x/versions", content_length=48 * 1024 * 1024,
                        content_type="application/gzip") + b"\0" * 65536)
    status, headers, body = read_response(client)
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert headers["connection"] == "close"
    client.settimeout(10)
    assert connection_ended(client)
    client.close()


def test_a_relayed_body_arrives_whole_and_the_connection_stays(worker):
    control, _, _ = worker
    client = hand_off(control, request("POST", "/functions/work", b"[]"))
    assert read_response(client)[0] == 200
    before = EarlyRefusal.read
    body = os.urandom(300_000)
    client.sendall(request("POST", "/other", body))
    assert read_response(client)[0] == 204 and EarlyRefusal.read - before == len(body)
    # Still the one connection; from the first foreign request on, all of it goes to the server.
    client.sendall(request("POST", "/functions/work", b"[0]"))
    assert read_response(client)[:1] == (204,)
    client.close()


SPY = """
    SEEN = []

    def work(action: str = "look"):
        # Hostile: records every Authorization header uvicorn parses in this process, or that this
        # process writes to another (as a relay would).
        if action == "arm":
            import asyncio
            from uvicorn.protocols.http import h11_impl, httptools_impl

            write = asyncio.StreamWriter.write
            def spied_write(self, data, write=write):
                if b"uthorization" in bytes(data):
                    SEEN.append(bytes(data).decode("latin-1"))
                return write(self, data)
            asyncio.StreamWriter.write = spied_write

            for cls in (httptools_impl.HttpToolsProtocol, h11_impl.H11Protocol):
                original = getattr(cls, "on_header", None)
                if original is not None and not getattr(original, "spied", False):
                    def on_header(self, name, value, original=original):
                        if name.lower() == b"authorization":
                            SEEN.append(value.decode("latin-1"))
                        return original(self, name, value)
                    on_header.spied = True
                    cls.on_header = on_header
        return SEEN
"""


def test_a_foreign_request_never_reaches_function_code(tmp_path, upstream):
    # Function code shares the worker's process: were another function's call or an admin request
    # parsed there, a hostile function patching uvicorn would read its key or the admin token.
    path = tmp_path / "spy"
    build_bundle(notebook(SPY)["work"], path, name="work", sample=["look"])
    control, port, process, log = start_worker(path, upstream)
    try:
        client = hand_off(control, request("POST", "/functions/work", b'["arm"]'))
        assert read_response(client)[0] == 200
        client.close()
        client = hand_off(control, request("POST", "/functions/work", b'["look"]'))
        assert read_response(client)[0] == 200  # armed: this call's own header is recorded
        client.sendall(request("POST", "/api/functions/x/versions", b"{}", key="admin-token-9d2e"))
        assert read_response(client)[0] == 401  # the stand-in server's answer, through the connection
        client.close()
        client = hand_off(control, request("POST", "/functions/work", b'["look"]'))
        status, _, body = read_response(client)
        seen = json.loads(body)
        assert status == 200 and seen and all(value == f"Bearer {KEY}" for value in seen), seen
        client.close()
    finally:
        stop_worker(control, process, log)



def test_a_request_head_larger_than_the_limit_gets_a_json_431_and_the_connection_ends(worker):
    control, _, _ = worker
    client = hand_off(control, b"POST /functions/work HTTP/1.1\r\nHost: " + PUBLIC.encode() + b"\r\n")
    for _ in range(200):  # 100 KiB of headers: more than any client needs, less than the audit's 96 MiB
        client.sendall(b"X-Padding: " + b"p" * 500 + b"\r\n")
    status, headers, body = read_response(client)  # the answer survives the bytes it never read
    assert status == 431 and json.loads(body)["error"] == "headers_too_large"
    assert headers["connection"] == "close"
    client.settimeout(10)
    assert connection_ended(client)
    client.close()


def test_a_request_head_that_never_ends_is_dropped(worker):
    control, _, _ = worker
    client = hand_off(control, b"POST /functions/work HTTP/1.1\r\nHost: " + PUBLIC.encode() + b"\r\nX-Slow: 1")
    client.settimeout(60)  # far more than the worker's HEAD_TIMEOUT: it, not the client, ends the connection
    assert connection_ended(client)
    client.close()
    # ...while a connection that is slow but sends its head in time is served.
    client = hand_off(control, b"POST /functions/work HTTP/1.1\r\n")
    time.sleep(0.5)
    client.sendall(request("POST", "/functions/work", b"[0]").split(b"\r\n", 1)[1])
    assert read_response(client)[:1] == (200,)
    client.close()


# ── 5. JSON no parser can take ──────────────────────────────────────────────────────────────────


def test_json_nested_too_deeply_is_a_400_json(worker):
    _, port, _ = worker
    client = direct(port, request("POST", "/", b"[" * 100_000, host=f"127.0.0.1:{port}"))
    status, headers, body = read_response(client)
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["error"] == "bad_request" and "too deeply" in error["message"]
    client.close()


@pytest.mark.parametrize("body", [b"[1e999]", b"[NaN]", b"[-Infinity]", b'{"seconds": 1E+400}'])
def test_numbers_json_has_no_spelling_for_are_a_400_json(worker, body):
    _, port, _ = worker
    client = direct(port, request("POST", "/", body, host=f"127.0.0.1:{port}"))
    status, _, answer = read_response(client)
    assert status == 400 and json.loads(answer)["error"] == "bad_request"
    client.close()


@pytest.mark.parametrize("head_bytes", [
    b"POST /functions/work HTTP/1.1\r\nHost: publish.test:8765\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n[0]",
    b"POST /functions/work HTTP/1.1\r\nHost: publish.test:8765\r\nContent-Length: 3x\r\n\r\n[0]",
    b"POST /functions/work HTTP/1.1\r\nHost: publish.test:8765\r\nA header without a colon\r\n\r\n",
])
def test_a_request_uvicorn_cannot_parse_gets_a_json_400_on_a_handed_off_connection(worker, head_bytes):
    control, _, _ = worker
    client = hand_off(control, head_bytes)
    status, headers, body = read_response(client)
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "bad_request" and headers["connection"] == "close"
    client.close()


def test_a_request_without_host_is_a_400_not_a_403(worker):
    control, _, _ = worker
    client = hand_off(control, b"POST /functions/work HTTP/1.1\r\nContent-Length: 3\r\n\r\n[0]")
    status, _, body = read_response(client)
    error = json.loads(body)
    assert status == 400 and error["error"] == "bad_request" and "Host" in error["message"]
    client.close()


# ── 3. DNS rebinding and cross-site requests ────────────────────────────────────────────────────


@pytest.mark.parametrize("method, path, body", [("POST", "/functions/work", b"[0]"), ("GET", "/functions/work/docs", b""),
                                                ("GET", "/functions/work/openapi.json", b"")])
@pytest.mark.parametrize("headers, says", [
    ({"host": "evil.example:8765"}, "evil.example:8765"),
    ({"origin": "https://evil.example"}, "https://evil.example"),
    ({"origin": "null"}, "null"),
    ({"origin": "http://publish.test:1"}, "publish.test:1"),  # another port of a served name: another site
    ({"sec_fetch_site": "cross-site"}, "cross-site"),
])
def test_other_sites_are_refused_with_a_json_403(worker, method, path, body, headers, says):
    control, port, _ = worker
    raw = request(method, path, body, **headers)
    for client in (hand_off(control, raw), direct(port, raw)):
        status, _, answer = read_response(client)
        error = json.loads(answer)
        assert (status, error["error"]) == (403, "forbidden_origin") and says in error["message"]
        client.close()


def test_a_link_from_another_site_opens_the_docs_but_may_not_call(worker):
    control, _, _ = worker
    link = {"sec_fetch_site": "cross-site", "sec_fetch_mode": "navigate"}
    client = hand_off(control, request("POST", "/functions/work", b"[0]"))
    assert read_response(client)[:1] == (200,)
    client.sendall(head("GET", "/functions/work/docs", key=None, **link))  # the same, kept-alive connection
    status, headers, _ = read_response(client)
    assert status == 200 and "default-src 'none'" in headers["content-security-policy"]
    client.close()
    client = hand_off(control, request("POST", "/functions/work", b"[0]", **link))
    status, _, answer = read_response(client)
    assert (status, json.loads(answer)["error"]) == (403, "forbidden_origin")
    client.close()


def test_the_names_the_worker_is_reached_by_are_accepted(worker):
    control, port, _ = worker
    same_site = {"origin": f"http://{PUBLIC}", "sec_fetch_site": "same-origin"}
    client = hand_off(control, request("POST", "/functions/work", b"[0]", **same_site))
    assert read_response(client)[:1] == (200,)
    client.close()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):  # its own address: the server's probes and proxy
        client = direct(port, request("POST", "/", b"[0]", host=host))
        assert read_response(client)[:1] == (200,)
        client.close()


# ── 4 and 6. pages: no sample without the key, the URL the client used, the CSP ─────────────────


def get(control, path, key=None):
    client = hand_off(control, head("GET", path, key=key))
    answer = read_response(client)
    client.close()
    return answer


def test_a_keyed_functions_pages_show_the_sample_only_with_the_key(worker):
    control, _, _ = worker
    _, _, info = get(control, "/functions/work")
    assert json.loads(info)["sample"] is None and json.loads(info)["sample_output"] is None
    _, _, document = get(control, "/functions/work/openapi.json")
    assert "example" not in json.dumps(json.loads(document)["paths"])
    _, _, page = get(control, "/functions/work/docs")
    assert "0.001" not in page.decode() and "shown only to callers that send the function" in page.decode()

    _, _, info = get(control, "/functions/work", key=KEY)
    assert json.loads(info)["sample"] == {"seconds": 0.001} and json.loads(info)["sample_output"] == 0.001
    _, _, document = get(control, "/functions/work/openapi.json", key=KEY)
    post = json.loads(document)["paths"]["/functions/work"]["post"]
    assert post["requestBody"]["content"]["application/json"]["example"] == {"seconds": 0.001}
    _, _, page = get(control, "/functions/work/docs", key=KEY)
    assert "0.001" in page.decode()
    # A wrong key is no key.
    _, _, info = get(control, "/functions/work", key="wrong")
    assert json.loads(info)["sample"] is None


def test_pages_name_the_url_the_client_used_and_carry_the_csp(worker):
    control, _, _ = worker
    status, _, document = get(control, "/functions/work/openapi.json")
    document = json.loads(document)
    assert status == 200 and document["servers"] == [{"url": f"http://{PUBLIC}"}]
    assert set(document["paths"]) == {"/functions/work", "/functions/work/docs"}
    status, headers, page = get(control, "/functions/work/docs")
    assert status == 200 and "default-src 'none'" in headers["content-security-policy"]
    curl = re.search(r'<pre id="curl">(.*?)</pre>', page.decode(), re.S).group(1)
    assert curl.startswith(f"curl -X POST http://{PUBLIC}/functions/work ")


# ── 2. an inline call cannot hold the worker ────────────────────────────────────────────────────


def health(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
        return json.loads(response.read())


def test_an_inline_call_that_overruns_gets_a_504_and_does_not_hold_the_others(bundle, upstream):
    control, port, process, log = start_worker(bundle, upstream)
    try:
        client = hand_off(control, request("POST", "/functions/work", b"[0]"))
        for sent in range(1, 3000):  # quick calls until the worker runs them inline (a busy machine may take a few windows)
            assert read_response(client)[0] == 200
            if sent % 5 == 0 and health(port)["calls"] == "inline":
                break
            client.sendall(request("POST", "/functions/work", b"[0]"))
        assert health(port)["calls"] == "inline"
        # A call that would sleep for 60 s on the event loop, and behind it another client's quick call.
        client.sendall(request("POST", "/functions/work", b"[60]"))
        time.sleep(0.2)
        other = hand_off(control, request("POST", "/functions/work", b"[0]"))
        client.settimeout(TIMEOUT - 5)  # the 504 comes from the watchdog, well before the worker's --timeout
        status, _, body = read_response(client)
        error = json.loads(body)
        assert status == 504 and error["error"] == "timeout" and "stopped" in error["message"]
        assert "threads" in error["hint"]
        assert read_response(other)[:1] == (200,)
        assert health(port)["calls"] == "thread"  # a slow call sends the function back to threads
        # In threads, --timeout applies as before, and the same connection goes on.
        client.settimeout(30)
        client.sendall(request("POST", "/functions/work", b"[0.05]"))
        assert read_response(client)[:1] == (200,)
        other.close()
        client.close()
    finally:
        stop_worker(control, process, log)


# ── 7. SIGTERM drains ───────────────────────────────────────────────────────────────────────────


def test_sigterm_lets_a_call_in_progress_finish_within_its_timeout_not_a_fixed_five_seconds(bundle, upstream):
    control, port, process, log = start_worker(bundle, upstream)
    try:
        busy = hand_off(control, request("POST", "/functions/work", b"[6]"))  # longer than uvicorn's 5 s default
        idle = hand_off(control, request("POST", "/functions/work", b"[0]"))
        assert read_response(idle)[0] == 200
        time.sleep(0.3)  # the long call is running
        process.send_signal(signal.SIGTERM)
        idle.settimeout(10)
        assert connection_ended(idle)  # an idle connection is let go at once
        status, headers, body = read_response(busy)  # the call in progress is answered
        assert (status, json.loads(body)) == (200, 6)
        assert headers["connection"] == "close"
        process.wait(timeout=30)
        # No new connection is taken once it drains.
        with pytest.raises(OSError):
            direct(port, request("POST", "/", b"[0]", host=f"127.0.0.1:{port}"))
    finally:
        stop_worker(control, process, log)
