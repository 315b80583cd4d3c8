"""The server's lifecycle under SIGTERM, against a real ``jupyter publish serve`` on 127.0.0.1.

The first SIGTERM drains: new connections are refused, a call in flight finishes with its answer,
the workers stop, ``server.json`` goes and the process exits 0 with its state intact. A second
SIGTERM, or ``--drain-timeout`` passing, ends it at once (exit status 1) and stops the workers.
A call is known to be in flight when the worker has logged that it started; nothing is timed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from jupyterlab_publish.state.paths import read_server_info

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and /proc")

from function_server import WAIT, Server, alive, call, make_bundle, wait_for, worker_pids  # noqa: E402

SLOW = """
def slow(seconds, tag):
    import time
    print("call started:", tag, flush=True)  # to worker.log: the test waits for this line
    time.sleep(seconds)
    return "finished " + tag
"""


def _publish_slow(server: Server, tmp: Path):
    return server.target().push(make_bundle(tmp, SLOW, "slow", "slow"), lambda *a, **k: None)


def _call_in_background(deployment, seconds: float, tag: str) -> dict:
    outcome: dict = {}

    def run():
        try:
            outcome["answer"] = call(deployment.url, [seconds, tag], key=deployment.key)
        except Exception as exc:  # a dropped connection is an outcome too
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _wait_in_flight(server: Server, tag: str) -> None:
    log = server.state / "functions" / "slow" / "v1" / "worker.log"
    wait_for(lambda: log.exists() and f"call started: {tag}" in log.read_text(), f"call {tag} to start")


def _refuses_connections(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_lets_the_call_in_flight_finish_then_exits_0_with_state_intact(tmp_path):
    server = Server(tmp_path / "state").start()
    try:
        deployment = _publish_slow(server, tmp_path)
        workers = worker_pids(server.state, "slow")
        in_flight = _call_in_background(deployment, 3, "first")
        _wait_in_flight(server, "first")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: _refuses_connections(server.url), "the server to stop accepting")
        in_flight["thread"].join(WAIT)
        assert in_flight.get("answer") == (200, "finished first"), in_flight
        assert server.process.wait(WAIT) == 0
        assert read_server_info(server.state) is None
        assert not any(alive(pid) for pid in workers)
        log = (tmp_path / "state.log").read_text()
        assert "draining" in log and "stopping now" not in log
    finally:
        server.stop()

    restarted = Server(server.state).start()  # the function, its key and its versions survived
    try:
        assert call(deployment.url.replace(server.url, restarted.url), [0, "again"], key=deployment.key) \
            == (200, "finished again")
    finally:
        restarted.stop()


def test_a_second_sigterm_stops_at_once_and_takes_the_workers_with_it(tmp_path):
    server = Server(tmp_path / "state").start()
    try:
        deployment = _publish_slow(server, tmp_path)
        workers = worker_pids(server.state, "slow")
        in_flight = _call_in_background(deployment, 600, "stuck")
        _wait_in_flight(server, "stuck")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in (tmp_path / "state.log").read_text(), "the drain to begin")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(WAIT) == 1
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to be stopped")
        assert read_server_info(server.state) is None
        assert "stopping now: asked twice" in (tmp_path / "state.log").read_text()
        in_flight["thread"].join(WAIT)
        assert "answer" not in in_flight or in_flight["answer"][0] >= 500, in_flight
    finally:
        server.stop()


def test_the_drain_bound_ends_a_drain_that_would_not_finish(tmp_path):
    server = Server(tmp_path / "state", "--drain-timeout", "1").start()
    try:
        deployment = _publish_slow(server, tmp_path)
        workers = worker_pids(server.state, "slow")
        in_flight = _call_in_background(deployment, 600, "long")
        _wait_in_flight(server, "long")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(WAIT) == 1
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to be stopped")
        assert "did not finish within 1 s" in (tmp_path / "state.log").read_text()
        in_flight["thread"].join(WAIT)
        assert "answer" not in in_flight or in_flight["answer"][0] >= 500, in_flight
    finally:
        server.stop()
    assert os.path.exists(server.state / "state.db") and (server.state / "token").read_text().strip() == server.token


CHATTY = """
def chatty(megabytes):
    print("x" * (megabytes * 1024 * 1024), flush=True)  # a function that logs far too much
    return megabytes
"""


def test_a_worker_log_past_its_bound_is_rotated_while_the_worker_runs_and_when_it_restarts(tmp_path):
    from jupyterlab_publish.functions.workers import LOG_ROTATE_BYTES

    server = Server(tmp_path / "state").start()
    try:
        deployment = server.target().push(make_bundle(tmp_path, CHATTY, "chatty", "chatty"), lambda *a, **k: None)
        megabytes = LOG_ROTATE_BYTES // (1024 * 1024) + 1
        log = server.state / "functions" / "chatty" / "v1" / "worker.log"
        rotated = log.with_name("worker.log.1")
        (pid,) = worker_pids(server.state, "chatty")

        # The running worker's log is cut back by the supervisor, and the worker keeps writing to it.
        assert call(deployment.url, [megabytes], key=deployment.key) == (200, megabytes)
        wait_for(lambda: rotated.exists() and log.stat().st_size < LOG_ROTATE_BYTES, "the log to be rotated")
        assert rotated.stat().st_size > LOG_ROTATE_BYTES and "starting on port" in rotated.read_text()
        assert call(deployment.url, [0], key=deployment.key) == (200, 0)
        wait_for(lambda: log.stat().st_size > 0, "the running worker to write to the emptied log")
        assert worker_pids(server.state, "chatty") == [pid]

        # A log grown past the bound is rotated when a process starts, too.
        assert call(deployment.url, [megabytes], key=deployment.key) == (200, megabytes)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: worker_pids(server.state, "chatty") not in ([], [pid]), "the worker to be restarted")
        wait_for(lambda: "starting on port" in log.read_text() and log.stat().st_size < LOG_ROTATE_BYTES,
                 "the restarted worker's log to be rotated")
        assert rotated.stat().st_size > LOG_ROTATE_BYTES
        assert call(deployment.url, [0], key=deployment.key) == (200, 0)
    finally:
        server.stop()


def _age_environments(state: Path, days: int) -> None:
    """Make every environment look unused for ``days`` days, as if that much time had passed."""
    import datetime
    import json

    from jupyterlab_publish.functions.uv_environments import METADATA_FILE

    then = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)).isoformat(timespec="seconds")
    for metadata_path in state.glob(f"envs/*/{METADATA_FILE}"):
        metadata = json.loads(metadata_path.read_text())
        metadata["last_used"] = then
        metadata_path.write_text(json.dumps(metadata))


def _environments(state: Path) -> set:
    return {p.name for p in (state / "envs").iterdir() if p.is_dir() and not p.name.startswith(".")}


def test_environments_no_version_needs_are_removed_once_unused_for_long_enough(tmp_path):
    from jupyterlab_publish.functions.uv_environments import lock_hash

    six = [{"name": "six", "version": "1.17.0", "why": "a second, different environment"}]
    server = Server(tmp_path / "state", "--environments", "uv").start()
    try:
        kept = server.target().push(make_bundle(tmp_path, "def one(x):\n    return 1\n", "one", "kept", sample=[0]))
        dropped = server.target().push(make_bundle(tmp_path, "def two(x):\n    return 2\n", "two", "dropped",
                                                   sample=[0], requirements=six))
        assert len(_environments(server.state)) == 2
        server.target().delete("dropped")
    finally:
        server.stop()
    bundle = server.state / "functions" / "kept" / "v1" / "bundle"
    manifest = __import__("json").loads((bundle / "manifest.json").read_text())
    needed = lock_hash(manifest["python"]["minor"], (bundle / "requirements.txt").read_text(),
                       (bundle / "requirements.lock").read_text())
    (unneeded,) = _environments(server.state) - {needed}

    _age_environments(server.state, days=3)  # not yet past the default of 7 days: both stay
    server = Server(server.state, "--environments", "uv").start()
    try:
        assert call(kept.url.replace(kept.url.split("/functions")[0], server.url), [0], key=kept.key) == (200, 1)
    finally:
        server.stop()
    assert _environments(server.state) == {needed, unneeded}

    _age_environments(server.state, days=30)
    server = Server(server.state, "--environments", "uv").start()
    try:
        wait_for(lambda: _environments(server.state) == {needed}, "the unneeded environment to be removed")
        # The environment a stored version needs stays however old it is, and still serves.
        assert call(kept.url.replace(kept.url.split("/functions")[0], server.url), [0], key=kept.key) == (200, 1)
        assert dropped.name not in [f.name for f in server.target().list()]
    finally:
        server.stop()
    assert "removed environment " + unneeded[:12] in (tmp_path / "state.log").read_text()
