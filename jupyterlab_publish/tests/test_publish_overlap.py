"""The pre-flight runs while the function server starts the new version (issue 11, "Faster publish").

The server holds a started, smoke-tested version (``?hold=``) without giving it traffic until the
client promotes it; a failed pre-flight, a cancel or a hold that runs out abandons it, and the live
version serves throughout. Each test runs a real ``jupyter publish serve`` on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.request

import pytest

import jupyterlab_publish
from jupyterlab_publish.bundle import pack_bundle
from jupyterlab_publish.bundle.signature import key_from_token
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.tests.function_server import Server, adder, call, make_bundle, wait_for, worker_pids


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "state").start()
    yield started
    started.stop()


def statuses(server, name="add"):
    return [(v.version, v.status) for v in server.target().show(name).versions]


def admin(server, path, *, method="GET", data=None):
    """(status, JSON) of one admin API request with the server's token."""
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {server.token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_held_version_takes_no_traffic_until_its_gate_passes_and_a_failed_gate_leaves_nothing(tmp_path, server):
    target = server.target()
    live = target.push(make_bundle(tmp_path, adder(1), "add", "add", sample=[1]))
    seen_while_held = {}

    def failing_gate():
        # Called once v2 is started and smoke-tested: it exists, but v1 still answers every call.
        seen_while_held["answer"] = call(live.url, [1], key=live.key)
        seen_while_held["statuses"] = statuses(server)
        raise PublishError("preflight_failed", "the pre-flight found a difference", "fix it")

    with pytest.raises(PublishError) as caught:
        target.push(make_bundle(tmp_path, adder(2), "add", "add", sample=[1]), new_version=True, gate=failing_gate)
    assert caught.value.code == "preflight_failed"  # the gate's own error, not a target error
    assert seen_while_held == {"answer": (200, 2), "statuses": [(1, "live"), (2, "staging")]}
    assert call(live.url, [1], key=live.key) == (200, 2)
    assert statuses(server) == [(1, "live")]
    assert not (server.state / "functions" / "add" / "v2").exists()
    wait_for(lambda: len(worker_pids(server.state, "add")) == 1, "only v1's worker to run")

    passed = target.push(make_bundle(tmp_path, adder(3), "add", "add", sample=[1]), new_version=True,
                         gate=lambda: None)
    # The abandoned number is free again, as after any failed publish.
    assert passed.version == 2 and passed.key == live.key
    assert call(live.url, [1], key=live.key) == (200, 4)
    assert statuses(server) == [(1, "retired"), (2, "live")]


def test_a_hold_that_runs_out_abandons_the_version_and_a_late_promote_is_refused(tmp_path, server):
    server.target().push(make_bundle(tmp_path, adder(1), "add", "add"))
    archive = io.BytesIO()
    pack_bundle(make_bundle(tmp_path, adder(2), "add", "add"), archive, signing_key=key_from_token(server.token))

    for hold in ("0", "901", "-1", "soon"):
        status, body = admin(server, f"/api/functions/add/versions?new_version=true&hold={hold}", method="POST",
                             data=archive.getvalue())
        assert (status, body["error"]) == (400, "bad_request"), hold
    status, body = admin(server, "/api/functions/add/versions?new_version=true&hold=1", method="POST",
                         data=archive.getvalue())
    assert status == 202 and body["staged"] is True and body["version"] == 2
    wait_for(lambda: statuses(server) == [(1, "live")], "the hold to run out and v2 to be abandoned")
    status, body = admin(server, "/api/functions/add/versions/2/promote", method="POST", data=b"")
    assert (status, body["error"]) == (404, "not_found")
    assert "publish again" in body["hint"]
    status, body = admin(server, "/api/functions/add/versions/x/promote", method="POST", data=b"")
    assert (status, body["error"]) == (400, "bad_request")
    # The name's publish lock was given back: the next publish goes through.
    assert server.target().push(make_bundle(tmp_path, adder(3), "add", "add"), new_version=True).version == 2


def test_a_preflight_failure_during_the_push_is_the_error_and_the_started_version_is_dropped(tmp_path, server):
    target = server.target()
    live = target.push(make_bundle(tmp_path, adder(1), "add", "add"))
    namespace = {"__name__": "__main__"}
    exec("def add(x):\n    import packaging.version\n    return x + len(str(packaging.version.Version('2')))\n",
         namespace)
    # No requirements declared: the server (shared interpreter) finds packaging, the clean pre-flight does not.
    with pytest.raises(PublishError) as caught:
        jupyterlab_publish.publish(namespace["add"], name="add", target=server.url, token=server.token,
                                   requirements=[], sample=[1], new_version=True)
    assert caught.value.code == "missing_requirement" and "packaging" in caught.value.message
    assert call(live.url, [1], key=live.key) == (200, 2)
    assert statuses(server) == [(1, "live")]


def test_a_cancel_while_the_server_starts_the_version_changes_nothing(tmp_path, server):
    target = server.target()
    live = target.push(make_bundle(tmp_path, adder(1), "add", "add"))
    namespace = {"__name__": "__main__"}
    exec(adder(5), namespace)
    cancel = threading.Event()

    def progress(stage, fraction, message):
        if stage == "preflight":
            cancel.set()  # the user presses Cancel as the pre-flight and the push begin

    with pytest.raises(PublishError) as caught:
        jupyterlab_publish.publish(namespace["add"], name="add", target=server.url, token=server.token,
                                   sample=[1], new_version=True, progress=progress, cancel=cancel)
    assert caught.value.code == "cancelled"
    assert call(live.url, [1], key=live.key) == (200, 2)
    assert statuses(server) == [(1, "live")]


def test_a_server_that_switched_at_once_is_put_back_when_the_gate_fails(tmp_path, server):
    # A server older than ?hold= answers 201 (live) at once; the target then runs the gate after the
    # switch, and a failing gate restores what was live before (or removes a first version).
    target = server.target()
    live = target.push(make_bundle(tmp_path, adder(1), "add", "add"))
    switched = target.push(make_bundle(tmp_path, adder(2), "add", "add"), new_version=True)

    def failing_gate():
        raise PublishError("preflight_failed", "the pre-flight found a difference", "fix it")

    with pytest.raises(PublishError) as caught:
        target._gate_after_the_switch("add", {"version": switched.version}, failing_gate)
    assert caught.value.code == "preflight_failed"
    assert call(live.url, [1], key=live.key) == (200, 2)
    assert [v for v, status in statuses(server) if status == "live"] == [1]

    first = target.push(make_bundle(tmp_path, adder(1), "add", "other"))
    with pytest.raises(PublishError):
        target._gate_after_the_switch("other", {"version": first.version}, failing_gate)
    assert [f.name for f in target.list()] == ["add"]
