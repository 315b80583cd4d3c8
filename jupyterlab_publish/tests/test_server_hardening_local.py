"""The local target trusts a server only once it proved it holds the admin token (issue 10).

A stale ``server.json`` names a port; after the server died, anyone on the machine may bind it and
answer /healthz with the recorded pid. Such an impostor must get nothing: not the token, not a
bundle. The real server, on 127.0.0.1, proves itself with an HMAC of a fresh nonce.
"""

from __future__ import annotations

import http.server
import json
import os
import threading

import pytest

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.state.proof import proof_matches, server_proof
from jupyterlab_publish.targets.local import LocalTarget

from function_server import Server, adder, call, make_bundle


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers /healthz as the dead server would, guesses at the proof, and records every request."""

    def _answer(self):
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path == "/healthz":
            body = {"status": "ok", "pid": self.server.echoed_pid, "functions": 0, "handed_off": 0}
        elif self.path.startswith("/api/prove"):
            body = {"proof": "0" * 64}  # without the token, any answer is a guess
        else:
            body = {"functions": []}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def impostor():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    server.seen = []
    server.echoed_pid = os.getpid()  # a live pid, as a reused or guessed one would be
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _stale_state(state, port: int) -> None:
    """What a crashed server leaves: its token, and a server.json naming its port and pid."""
    state.mkdir(parents=True, mode=0o700)
    (state / "token").write_text("the-real-admin-token\n")
    (state / "token").chmod(0o600)
    (state / "server.json").write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{port}",
                                                   "started": "2026-01-01T00:00:00+00:00"}))


@pytest.mark.parametrize("verb", ["list", "push", "stop"])
def test_an_impostor_on_the_recorded_port_gets_nothing(tmp_path, impostor, verb):
    state = tmp_path / "state"
    _stale_state(state, impostor.server_port)
    target = LocalTarget(state)
    bundle = make_bundle(tmp_path, adder(1), "add", "secret-model", sample=[1])
    with pytest.raises(PublishError) as raised:
        {"list": target.list, "push": lambda: target.push(bundle), "stop": target.stop}[verb]()
    assert raised.value.code == "target_error"
    assert "did not prove" in raised.value.message and "server.json" in raised.value.message
    assert [auth for _, _, auth in impostor.seen] == [None] * len(impostor.seen)  # the token never went
    assert all(method == "GET" for method, _, _ in impostor.seen)  # nor did a bundle
    assert {path.split("?")[0] for _, path, _ in impostor.seen} <= {"/healthz", "/api/prove"}


def test_the_real_server_proves_it_holds_the_token(tmp_path):
    state = tmp_path / "state"
    server = Server(state).start()
    try:
        nonce = "ab" * 16
        status, body = call(f"{server.url}/api/prove?nonce={nonce}", method="GET")
        assert status == 200 and proof_matches(server.token, nonce, body["proof"])
        assert body["proof"] == server_proof(server.token, nonce) and server.token not in json.dumps(body)
        # A nonce is hexadecimal and long enough: the endpoint cannot be asked for arbitrary HMACs.
        for bad in ("", "xyz", "ab" * 8, "ab" * 100):
            status, body = call(f"{server.url}/api/prove?nonce={bad}", method="GET")
            assert status == 400 and body["error"] == "bad_request"
        deployment = LocalTarget(state).push(make_bundle(tmp_path, adder(1), "add", "proven", sample=[1]))
        assert call(deployment.url, [1], key=deployment.key) == (200, 2)
    finally:
        server.stop()
