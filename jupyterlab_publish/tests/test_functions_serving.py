"""Serving reliability, end to end: keys, limits, supervision, rollback, logs, crash recovery, lifetime.

Real ``jupyter publish serve`` processes on 127.0.0.1 and real bundles; nothing mocked. Most tests
share one server (two worker processes per version, a 4 KiB body limit, a 3 s health timeout) and
use function names of their own; the ones that kill or stop a server get their own state directory.
Every wait is bounded; none asserts on timing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import pack_bundle
from jupyterlab_publish.bundle.signature import key_from_token
from jupyterlab_publish.cli import main as cli
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.state.paths import read_server_info
from jupyterlab_publish.targets.local import LocalTarget

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; POSIX process control")

from function_server import (  # noqa: E402
    HTTP_TIMEOUT, REPO, WAIT, Server, adder, alive, call, make_bundle, wait_for, worker_pids,
)

MAX_BODY = 4096
CONTRACT_FLAGS = ("--name", "--handoff-fd", "--upstream", "--timeout", "--concurrency", "--max-body")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("serving") / "state"
    started = Server(state, "--processes", "2", "--max-body", str(MAX_BODY), "--health-timeout", "3",
                     "--request-timeout", "20", "--concurrency", "3").start()
    yield started
    started.stop()


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


# -- keys --------------------------------------------------------------------------------------------


def test_a_function_needs_its_key_unless_published_public(server, tmp):
    target = server.target()
    first = target.push(make_bundle(tmp, adder(1), "add", "keyed", sample=[1]))
    assert first.key and first.url == f"{server.url}/functions/keyed"

    status, body = call(first.url, [1])
    assert status == 401 and body["error"] == "unauthorized"
    assert call(first.url, [1], key="not-the-key")[0] == 401
    assert call(first.url, [1], key=first.key) == (200, 2)
    assert call(first.url, [1], key=server.token) == (200, 2)  # the admin token is accepted too
    assert call(first.url, None, method="GET")[0] == 200  # describing it needs no key

    public = target.push(make_bundle(tmp, adder(2), "add", "keyed", sample=[1]), new_version=True, public=True)
    assert public.key is None and public.version == 2
    assert call(public.url, [1]) == (200, 3)
    shown = target.show("keyed")
    assert (shown.public, shown.key, shown.version) == (True, None, 2)

    # A later publish makes it keyed again, with the key it always had.
    third = target.push(make_bundle(tmp, adder(3), "add", "keyed", sample=[1]), new_version=True)
    assert third.key == first.key
    assert call(third.url, [1])[0] == 401
    assert call(third.url, [1], key=first.key) == (200, 4)


def test_workers_get_the_contract_flags_their_runtime_offers_and_the_key_hashes(server, tmp):
    deployment = server.target().push(make_bundle(tmp, adder(1), "add", "flags", sample=[1]))
    pids = wait_for(lambda: worker_pids(server.state, "flags") if len(worker_pids(server.state, "flags")) == 2
                    else None, "two worker processes")
    bundle_dir = server.state / "functions" / "flags" / "v1" / "bundle"
    offered = set(re.findall(r"--[a-z][a-z0-9-]*", subprocess.run(
        [sys.executable, str(bundle_dir / "service.py"), "--help"], capture_output=True, text=True).stdout))
    for pid in pids:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for flag in CONTRACT_FLAGS:
            assert (flag in command) == (flag in offered), (flag, command)
        expected_values = {"--max-body": str(MAX_BODY), "--concurrency": "3", "--timeout": "20.0",
                           "--name": "flags"}
        for flag, value in expected_values.items():
            if flag in offered:
                assert command[command.index(flag) + 1] == value
        if "--upstream" in offered:
            # Relayed requests go to the server's private relay listener, never the public port:
            # what arrives there is answered by the server, never handed back to a worker.
            upstream = command[command.index("--upstream") + 1]
            assert upstream.startswith("http://127.0.0.1:") and upstream != server.url
        environ = dict(line.split("=", 1) for line in
                       Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in line)
        expected = {hashlib.sha256(k.encode()).hexdigest() for k in (deployment.key, server.token)}
        assert set(environ["JUPYTERLAB_PUBLISH_KEYS_SHA256"].split(",")) == expected
        assert "JUPYTERLAB_PUBLISH_TOKEN" not in environ


def test_connections_handed_to_the_workers_are_served_round_robin(tmp):
    """The server side of the hand-off (docs/bundle-format.md, "Connection hand-off"): one socketpair per worker."""
    import asyncio

    from jupyterlab_publish.functions.core import FunctionService
    from jupyterlab_publish.functions.environment import SharedInterpreter
    from jupyterlab_publish.functions.layout import Layout
    from jupyterlab_publish.functions.settings import ServingSettings

    bundle = make_bundle(tmp, adder(1), "add", "handed", sample=[1])
    archive = tmp / "handed.tar.gz"
    pack_bundle(bundle, archive)
    layout = Layout(tmp / "state")
    layout.create()

    async def scenario():
        service = FunctionService(layout, SharedInterpreter(), settings=ServingSettings(processes=2),
                                  admin_token="admin-token", upstream="http://127.0.0.1:9")
        await service.open()
        try:
            answer = await service.publish("handed", archive, False, "http://127.0.0.1:9")
            pool = service.workers["handed"]
            # This repository's runtime takes --handoff-fd and can serve handed-off connections.
            assert all(worker.handoff_socket is not None for worker in pool.running())
            assert all(worker.handoff_ready for worker in pool.running())
            assert {id(pool.next_handoff_socket()) for _ in range(4)} == {id(w.handoff_socket) for w in pool.running()}

            bodies = []
            for _ in range(2):  # one connection to each process
                with socket.create_server(("127.0.0.1", 0)) as listener:
                    client = socket.create_connection(listener.getsockname())
                    accepted, _ = listener.accept()
                with client:
                    client.sendall(b"POST /functions/handed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                   b"Authorization: Bearer " + answer["key"].encode() + b"\r\n"
                                   b"Content-Length: 3\r\nConnection: close\r\n\r\n[1]")
                    socket.send_fds(pool.next_handoff_socket(), [b"c"], [accepted.fileno()])
                    accepted.close()
                    client.settimeout(HTTP_TIMEOUT)
                    bodies.append(await asyncio.to_thread(_read_all, client))
            for body in bodies:
                assert body.startswith(b"HTTP/1.1 200") and body.endswith(b"\r\n\r\n2"), body
        finally:
            await service.close()

    asyncio.run(scenario())


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- limits and errors -----------------------------------------------------------------------------


def test_unknown_function_is_404_naming_the_list_command(server):
    status, body = call(server.url + "/functions/nothing-here", [1])
    assert status == 404 and "jupyter publish list" in body["message"]


def test_an_oversized_request_is_413(server, tmp):
    deployment = server.target().push(make_bundle(tmp, "def size(s):\n    return len(s)\n", "size", "size",
                                                  sample=["abc"]))
    assert call(deployment.url, ["x" * (MAX_BODY - 100)], key=deployment.key) == (200, MAX_BODY - 100)
    status, body = call(deployment.url, ["x" * (MAX_BODY + 1)], key=deployment.key)
    assert status == 413 and str(MAX_BODY) in body["message"]


# -- supervision -----------------------------------------------------------------------------------


def test_killed_workers_are_restarted_and_other_functions_keep_answering(server, tmp):
    target = server.target()
    victim = target.push(make_bundle(tmp, adder(1), "add", "victim", sample=[1]))
    bystander = target.push(make_bundle(tmp, adder(10), "add", "bystander", sample=[1]))
    old = wait_for(lambda: worker_pids(server.state, "victim") if len(worker_pids(server.state, "victim")) == 2
                   else None, "two victim workers")
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    assert call(bystander.url, [1], key=bystander.key) == (200, 11)

    # The supervisor brings both back without any request asking for them.
    def restarted():
        pids = worker_pids(server.state, "victim")
        return len(pids) == 2 and not set(pids) & set(old) and all(alive(p) for p in pids)

    # Pid files appear at spawn; the restart counts once the new process answers /healthz.
    wait_for(lambda: restarted() and target.show("victim").restarts == 2,
             "the victim's workers to be restarted")
    assert call(victim.url, [1], key=victim.key) == (200, 2)
    assert call(bystander.url, [1], key=bystander.key) == (200, 11)
    log = target.logs("victim", lines=50).log
    assert "exited with status -9" in log


def test_a_worker_that_stops_answering_healthz_is_replaced(server, tmp):
    deployment = server.target().push(make_bundle(tmp, adder(1), "add", "stuck", sample=[1]))
    pids = wait_for(lambda: worker_pids(server.state, "stuck") if len(worker_pids(server.state, "stuck")) == 2
                    else None, "two workers")
    os.kill(pids[0], signal.SIGSTOP)  # alive, but answers nothing: like a call stuck holding the GIL
    try:
        wait_for(lambda: not alive(pids[0]), "the stopped worker to be killed")
        wait_for(lambda: len(worker_pids(server.state, "stuck")) == 2
                 and pids[0] not in worker_pids(server.state, "stuck"), "a replacement worker")
    finally:
        if alive(pids[0]):
            os.kill(pids[0], signal.SIGKILL)
    assert "has not answered /healthz" in server.target().logs("stuck").log
    for _ in range(4):  # round robin reaches both processes
        assert call(deployment.url, [1], key=deployment.key) == (200, 2)


# -- rollback and logs, through the CLI ------------------------------------------------------------


def test_rollback_logs_and_show_through_the_cli(server, tmp, monkeypatch, capsys):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_TOKEN", server.token)
    target = server.target()
    for n in (1, 2, 3):
        deployment = target.push(make_bundle(tmp, adder(n), "add", "roll", sample=[1]), new_version=n > 1)
    on = ["--target", server.url]

    def run(*args):
        code = cli([*args, *on])
        out, err = capsys.readouterr()
        return code, out, err

    def statuses():
        return [(v.version, v.status) for v in target.show("roll").versions]

    assert run("rollback", "roll")[0] == 0  # to the version live before: v2
    assert call(deployment.url, [1], key=deployment.key) == (200, 3)
    assert statuses() == [(1, "retired"), (2, "live"), (3, "retired")]

    code, out, _ = run("rollback", "roll", "--to", "1")
    assert code == 0 and "v1 is live again (was v2)" in out
    assert call(deployment.url, [1], key=deployment.key) == (200, 2)
    assert run("rollback", "roll")[0] == 0  # "back" means the version live before: v2 again
    assert call(deployment.url, [1], key=deployment.key) == (200, 3)
    assert statuses() == [(1, "retired"), (2, "live"), (3, "retired")]

    code, _, err = run("rollback", "roll", "--to", "9")
    assert code == 1 and "no version 9" in err and "jupyter publish show roll" in err
    code, _, err = run("rollback", "roll", "--to", "2")
    assert code == 1 and "already live" in err
    code, _, err = run("rollback", "nothing-here")
    assert code == 1 and "jupyter publish list" in err
    assert statuses() == [(1, "retired"), (2, "live"), (3, "retired")]
    # A rolled-back version's workers are stopped: only the live version runs.
    wait_for(lambda: {p.parent.name for p in server.state.glob("functions/roll/v*/worker*.pid")} == {"v2"},
             "only v2's workers to run")

    code, out, _ = run("show", "roll", "--json")
    shown = json.loads(out)
    assert code == 0 and (shown["url"], shown["version"], shown["key"]) == (deployment.url, 2, deployment.key)
    code, out, _ = run("show", "roll")
    assert code == 0 and f"Authorization: Bearer {deployment.key}" in out

    code, out, _ = run("logs", "roll", "--lines", "3")
    assert code == 0 and 0 < len(out.splitlines()) <= 3
    code, out, _ = run("logs", "roll", "--version", "1")
    assert code == 0 and "starting on port" in out
    code, _, err = run("logs", "roll", "--lines", "0")
    assert code == 1 and "lines" in err

    code, out, _ = run("list")
    assert code == 0 and re.search(r"^roll\tv2\tkey\t", out, re.M)
    assert run("delete", "roll")[0] == 0
    assert run("show", "roll")[0] == 1


def test_a_function_with_one_version_has_nothing_to_roll_back_to(server, tmp):
    server.target().push(make_bundle(tmp, adder(1), "add", "single", sample=[1]))
    with pytest.raises(PublishError) as caught:
        server.target().rollback("single")
    assert caught.value.code == "target_error"  # a 409 that is not a taken name
    assert "no earlier version" in caught.value.message and "jupyter publish show single" in caught.value.hint


def test_a_rollback_to_a_version_that_cannot_start_changes_nothing(server, tmp):
    target = server.target()
    target.push(make_bundle(tmp, adder(1), "add", "broken-old", sample=[1]))
    current = target.push(make_bundle(tmp, adder(2), "add", "broken-old", sample=[1]), new_version=True)
    pickled = server.state / "functions" / "broken-old" / "v1" / "bundle" / "function.pkl"
    pickled.write_bytes(pickled.read_bytes() + b"corrupted on disk")
    with pytest.raises(PublishError) as caught:
        target.rollback("broken-old", 1)
    assert "cannot roll broken-old back to v1" in caught.value.message
    assert caught.value.details["status"] == 409 and caught.value.details["log"]
    assert call(current.url, [1], key=current.key) == (200, 3)
    assert [(v.version, v.status) for v in target.show("broken-old").versions] == [
        (1, "retired"), (2, "live")]


# -- crash recovery --------------------------------------------------------------------------------

SLOW_TO_LOAD = """
import time

class SlowToLoad:
    # Unpickling it in the worker sleeps: the new version stays in its start-up for a long time.
    def __reduce__(self):
        return (time.sleep, (120,))

SLOW = SlowToLoad()

def add(x):
    SLOW
    return x + 2
"""


def _start_upload(server: Server, name: str, archive: bytes) -> socket.socket:
    """Send the headers and half of a publish's body, then stall, like a client cut off mid-upload."""
    conn = socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(server.url).port), timeout=HTTP_TIMEOUT)
    head = (f"POST /api/functions/{name}/versions?new_version=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Type: application/gzip\r\n"
            f"Content-Length: {len(archive)}\r\n\r\n")
    conn.sendall(head.encode() + archive[: len(archive) // 2])
    return conn


def _assert_only_v1(server: Server, deployment) -> None:
    assert call(deployment.url, [1], key=deployment.key) == (200, 2)
    described = server.target().show("survivor")
    assert [(v.version, v.status) for v in described.versions] == [(1, "live")]
    assert sorted(p.name for p in (server.state / "functions" / "survivor").iterdir()) == ["v1"]
    assert list((server.state / "uploads").iterdir()) == []


def test_sigkill_mid_upload_or_mid_start_leaves_no_half_version(tmp):
    server = Server(tmp / "state").start()
    try:
        deployment = server.target().push(make_bundle(tmp, adder(1), "add", "survivor", sample=[1]))
        signing_key = key_from_token(server.token)

        # 1. Killed while the next version's archive is still arriving.
        packed = io.BytesIO()
        pack_bundle(make_bundle(tmp, adder(2), "add", "survivor", sample=[1]), packed, signing_key=signing_key)
        conn = _start_upload(server, "survivor", packed.getvalue())
        wait_for(lambda: any(p.stat().st_size > 0 for p in (server.state / "uploads").iterdir()),
                 "the upload to reach the server's disk")
        server.kill()
        conn.close()
        server = Server(server.state).start()
        _assert_only_v1(server, deployment)

        # 2. Killed while the next version's worker is starting (it has a row and a directory).
        packed = io.BytesIO()
        pack_bundle(make_bundle(tmp, SLOW_TO_LOAD, "add", "survivor", sample=[1]), packed, signing_key=signing_key)
        conn = _start_upload(server, "survivor", packed.getvalue())
        conn.sendall(packed.getvalue()[len(packed.getvalue()) // 2:])
        staging_pid = server.state / "functions" / "survivor" / "v2" / "worker.pid"
        orphan = wait_for(lambda: staging_pid.exists() and staging_pid.read_text().strip(), "v2's worker to start")
        server.kill()
        conn.close()
        assert alive(int(orphan))  # nobody stopped it: the server had no chance
        server = Server(server.state).start()
        _assert_only_v1(server, deployment)
        wait_for(lambda: not alive(int(orphan)), "the orphaned v2 worker to be stopped")
        # The number is free again: the next publish is v2, and it works.
        assert server.target().push(make_bundle(tmp, adder(2), "add", "survivor", sample=[1]),
                                    new_version=True).version == 2
    finally:
        server.stop()


# -- the server's lifetime -------------------------------------------------------------------------


def test_serve_exits_with_the_process_it_was_told_to_follow(tmp):
    followed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    server = Server(tmp / "state", "--exit-with-pid", str(followed.pid)).start()
    try:
        assert read_server_info(server.state)["exit_with_pid"] == followed.pid
        followed.kill()
        followed.wait()
        assert server.process.wait(WAIT) == 0
        assert read_server_info(server.state) is None  # a clean shutdown
    finally:
        followed.kill()
        server.stop()

    gone = subprocess.run(
        [sys.executable, "-m", "jupyterlab_publish.cli", "serve", "--state-dir", str(tmp / "state"),
         "--exit-with-pid", str(followed.pid)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert gone.returncode == 2 and "no such process" in gone.stderr


def test_session_lifetime_makes_the_local_server_follow_the_kernels_parent(tmp, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_ENVIRONMENTS", "shared")
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SERVER_LIFETIME", "session")
    target = LocalTarget(tmp / "state")
    info = target.ensure_server()
    try:
        command = Path(f"/proc/{info['pid']}/cmdline").read_bytes().decode().split("\0")
        assert command[command.index("--exit-with-pid") + 1] == str(os.getppid())
        assert info["exit_with_pid"] == os.getppid()
    finally:
        target.stop()
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SERVER_LIFETIME", "forever")
    with pytest.raises(PublishError) as caught:
        LocalTarget(tmp / "state")
    assert "persistent" in caught.value.hint and "session" in caught.value.hint
