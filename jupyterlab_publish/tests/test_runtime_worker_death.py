"""A worker killed mid-call: its handed-off client gets a JSON 502 from the server, not a dropped connection;
its idle connections, and those of a worker drained because a new version went live, are served on.

A real ``jupyter publish serve`` on 127.0.0.1 hands the call's connection to the worker (contract 3,
with the slot table); the test SIGKILLs the worker while the function sleeps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX process control")

from function_server import HTTP_TIMEOUT, Server, adder, call, make_bundle, wait_for, worker_pids  # noqa: E402

NAP = """
import time

def nap(seconds):
    time.sleep(seconds)
    return seconds
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("death") / "state"
    started = Server(state, "--request-timeout", "120").start()
    yield started
    started.stop()


def server_get(server, path) -> bytes:
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        return response.read()


def in_flight(server, name) -> float:
    metrics = server_get(server, "/metrics").decode()
    found = re.search(r'^jupyterlab_publish_in_flight\{[^}]*function="%s"[^}]*\} (\S+)$' % name, metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_worker_killed_mid_call_answers_its_client_with_a_json_502(server, tmp_path):
    deployment = server.target().push(make_bundle(tmp_path, NAP, "nap", "nap", sample=[0]))
    url = f"{server.url}/functions/nap"
    assert call(url, [0], key=deployment.key) == (200, 0)  # the worker is up and takes connections
    handed = json.loads(server_get(server, "/healthz"))["handed_off"]

    answers = []
    caller = threading.Thread(target=lambda: answers.append(call(url, [90], key=deployment.key)))
    caller.start()
    wait_for(lambda: in_flight(server, "nap") >= 1, "the call to be running in the worker")
    assert json.loads(server_get(server, "/healthz"))["handed_off"] > handed  # served by the worker itself

    (pid,) = worker_pids(server.state, "nap")
    os.kill(pid, signal.SIGKILL)
    caller.join(HTTP_TIMEOUT)
    assert not caller.is_alive(), "the client got no answer"
    (status, body), = answers
    assert status == 502 and body["error"] == "worker_failed"
    assert "killed by SIGKILL" in body["message"] and "while the call was running" in body["message"]
    assert "jupyter publish logs nap" in body["hint"]

    # The worker is restarted and serves again.
    wait_for(lambda: call(url, [0], key=deployment.key) == (200, 0), "the restarted worker to answer")


def _exchange(client: socket.socket, request: bytes) -> bytes:
    """Send one request, read one response framed by its Content-Length."""
    client.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(65536)
        assert chunk, f"the connection ended: {answer!r}"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = client.recv(65536)
        assert chunk, f"the connection ended: {answer!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_of_a_killed_worker_is_served_by_the_server_from_then_on(server, tmp_path):
    deployment = server.target().push(make_bundle(tmp_path, NAP, "nap", "nap-idle", sample=[0]))
    host, port = server.url.removeprefix("http://").split(":")
    body = b"[0]"
    request = (b"POST /functions/nap-idle HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
               % (host.encode(), port.encode(), deployment.key.encode(), len(body), body))
    handed = json.loads(server_get(server, "/healthz"))["handed_off"]
    client = socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT)
    (pid,) = worker_pids(server.state, "nap-idle")
    assert _exchange(client, request).startswith(b"HTTP/1.1 200")
    os.kill(pid, signal.SIGKILL)  # at once: well inside the worker's keep-alive timeout
    assert json.loads(server_get(server, "/healthz"))["handed_off"] >= handed + 1  # the worker served it
    # Nothing was running on the connection: the server took it back, and its next request is answered.
    answer = _exchange(client, request)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n0"), answer
    client.close()


def test_idle_connections_of_a_version_replaced_by_a_new_one_are_served_by_the_new_one(server, tmp_path):
    target = server.target()
    first = target.push(make_bundle(tmp_path, adder(1), "add", "swapped", sample=[1]))
    host, port = server.url.removeprefix("http://").split(":")

    def request(key):
        return (b"POST /functions/swapped HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer %s\r\nContent-Length: 3\r\n\r\n[1]" % (host.encode(), port.encode(), key.encode()))

    clients = [socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT) for _ in range(4)]
    for client in clients:  # each handed to the v1 worker, then left idle
        assert _exchange(client, request(first.key)).endswith(b"\r\n\r\n2")
    (old,) = worker_pids(server.state, "swapped")
    second = target.push(make_bundle(tmp_path, adder(100), "add", "swapped", sample=[1]), new_version=True)
    wait_for(lambda: old not in worker_pids(server.state, "swapped"), "the v1 worker to be stopped")
    # The v1 worker let its idle connections go to the server instead of closing them: the same
    # connections now reach v2.
    for client in clients:
        answer = _exchange(client, request(second.key))
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n101"), answer
        client.close()
