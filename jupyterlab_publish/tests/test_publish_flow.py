"""The publish path as the dialog drives it (issue 11): the name is checked before anything is
built, the sample runs as its own stage and stops at once on cancel, a cancel after the push began
says so, errors carry no terminal colours, and the result says how to call what was published."""

from __future__ import annotations

import json
import shlex
import textwrap
import threading

import pytest

import jupyterlab_publish
from jupyterlab_publish.bundle.sample import run_sample_cancellable
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.kernel import protocol
from jupyterlab_publish.kernel.channel import Channel
from jupyterlab_publish.tests.function_server import Server, call, make_bundle
from jupyterlab_publish.tests.test_kernel_channel import RecordingComm


def notebook(source, **names):
    namespace = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), namespace)
    return namespace


def send(chan, rid, method, **params):
    chan.handle_message({"content": {"data": {"type": "request", "id": rid, "method": method, "params": params}}})


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "state").start()
    yield started
    started.stop()


def test_a_taken_name_is_refused_before_anything_is_built_and_a_new_version_checks_once(tmp_path, server):
    server.target().push(make_bundle(tmp_path, "def double(x):\n    return 2 * x\n", "double", "double"))
    calls, stages = [], []
    ns = notebook("def double(x):\n    calls.append(x)\n    return 2 * x\n", calls=calls)
    options = dict(name="double", target=server.url, token=server.token, sample=[21],
                   progress=lambda stage, fraction, message: stages.append((stage, fraction)))

    with pytest.raises(PublishError) as caught:
        jupyterlab_publish.publish(ns["double"], **options)
    assert caught.value.code == "name_taken"
    assert "A function named double exists already" in caught.value.message
    assert "(live version 1)" in caught.value.message
    assert "new version" in caught.value.hint and "another name" in caught.value.hint
    assert stages == [] and calls == []  # not analysed, the sample not run, nothing built

    deployment = jupyterlab_publish.publish(ns["double"], new_version=True, **options)
    assert deployment.version == 2
    assert call(deployment.url, [21], key=deployment.key) == (200, 42)
    assert calls == [21]  # the sample ran once, in the notebook
    assert [s for s in stages if s == ("preflight", 0.1)] == [("preflight", 0.1)]  # one pre-flight
    order = list(dict.fromkeys(stage for stage, _ in stages))
    assert order[:4] == ["analysing", "sample", "pickling", "bundling"]


SLOW = """
import time
finished = []
def slow(x):
    end = time.monotonic() + 120
    while time.monotonic() < end:  # Python-level work, as a slow model's code is
        pass
    finished.append(x)
    return x
"""


def test_cancel_stops_a_slow_sample_in_the_notebook():
    ns = notebook(SLOW)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(PublishError) as caught:
        run_sample_cancellable(ns["slow"], [1], cancel=cancel)
    assert caught.value.code == "cancelled" and "Nothing was changed" in caught.value.hint
    assert ns["finished"] == []  # interrupted, not run to its end


def test_a_cancel_before_the_sample_starts_stops_it_too():
    ns = notebook(SLOW)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(PublishError) as caught:
        run_sample_cancellable(ns["slow"], [1], cancel=cancel)
    assert caught.value.code == "cancelled" and ns["finished"] == []


def test_a_sample_that_finishes_is_answered_and_leaves_no_pending_cancellation():
    ns = notebook("def inc(x):\n    return x + 1\n")
    cancel = threading.Event()
    assert run_sample_cancellable(ns["inc"], [1], cancel=cancel) == 2
    cancel.set()  # after the sample: nothing may fire into this thread any more
    total = sum(range(200_000))  # a few thousand bytecodes where a stray exception would surface
    assert total == 199_999 * 100_000


def test_cancel_during_the_sample_stage_of_a_publish(tmp_path):
    comm = RecordingComm()
    ns = notebook(SLOW)
    chan = Channel(comm, lambda: ns)
    send(chan, "p1", "publish", function="slow", name="slow", target=f"dir:{tmp_path}", sample=[1])
    comm_wait_stage(comm, "p1", "sample")
    send(chan, "c1", "cancel", request_id="p1")
    assert comm.wait_for("c1")["result"] == {"cancelled": True, "too_late": False}
    error = comm.wait_for("p1")["error"]
    assert error["code"] == "cancelled" and "Nothing was changed" in error["hint"]
    assert ns["finished"] == [] and not any(tmp_path.iterdir())


def comm_wait_stage(comm, request_id, stage):
    with comm.changed:
        while not any(m.get("id") == request_id and m.get("stage") == stage for m in comm.sent):
            assert not any(m.get("id") == request_id and m["type"] in ("result", "error") for m in comm.sent), comm.sent
            comm.changed.wait(30)


def test_a_cancel_after_the_push_began_is_answered_too_late_and_the_version_goes_live(tmp_path):
    comm = RecordingComm()
    ns = notebook("def inc(x):\n    return x + 1\n")
    chan = Channel(comm, lambda: ns)
    pushing = threading.Event()
    release = threading.Event()
    progress_sender = chan._progress_sender

    def holding_sender(request_id):
        report = progress_sender(request_id)

        def hold(stage, fraction, message):
            report(stage, fraction, message)
            if stage == "pushing" and not pushing.is_set():
                pushing.set()
                release.wait(30)  # hold the publish inside the push until the cancel is answered

        return hold

    chan._progress_sender = holding_sender
    send(chan, "p1", "publish", function="inc", name="inc", target=f"dir:{tmp_path}", sample=[1], preflight=False)
    assert pushing.wait(60)
    send(chan, "c1", "cancel", request_id="p1")
    answer = comm.wait_for("c1")["result"]
    release.set()
    assert answer == {"cancelled": False, "too_late": True}
    result = comm.wait_for("p1")["result"]
    assert result["version"] == 1 and (tmp_path / "inc" / "v1").is_dir()


def test_error_messages_lose_terminal_colours():
    err = PublishError("environment_mismatch", "\x1b[31merror\x1b[0m: No solution found when resolving",
                       "\x1b[1mpin\x1b[0m it", {"log": "\x1b[2K\x1b[1A  × \x1b[1mfailed\x1b[0m", "lines": ["\x1b[33mx"]})
    sent = protocol.error("r1", err)["error"]
    assert sent["message"] == "error: No solution found when resolving"
    assert sent["hint"] == "pin it"
    assert sent["details"] == {"log": "  × failed", "lines": ["x"]}


def test_without_a_sample_the_curl_line_names_each_parameter(tmp_path):
    comm = RecordingComm()
    ns = notebook("def area(width, height=1, *, unit='m'):\n    return width * height\n")
    chan = Channel(comm, lambda: ns)
    send(chan, "p1", "publish", function="area", name="area", target=f"dir:{tmp_path}", preflight=False)
    result = comm.wait_for("p1")["result"]
    body = json.loads(shlex.split(result["curl"])[shlex.split(result["curl"]).index("-d") + 1])
    assert body == {"width": "<width>", "height": "<height>", "unit": "<unit>"}
    assert "replace each <…>" in result["curl_note"] and "width, height, unit" in result["curl_note"]


def test_a_directory_result_says_where_the_bundle_is_and_how_to_serve_it(tmp_path):
    comm = RecordingComm()
    ns = notebook("def inc(x):\n    return x + 1\n")
    chan = Channel(comm, lambda: ns)
    send(chan, "p1", "publish", function="inc", name="inc", target=f"dir:{tmp_path}", sample=[1], preflight=False)
    result = comm.wait_for("p1")["result"]
    bundle = str((tmp_path / "inc" / "v1").resolve())
    assert result["bundle_path"] == bundle
    assert "file:" not in result["curl"]
    assert "http://127.0.0.1:8000/functions/inc" in result["curl"] and "-d '[1]'" in result["curl"]
    assert f"{bundle}/service.py --host 127.0.0.1 --port 8000 --bundle {bundle}" in result["serve"]
    assert f"pip install -r {bundle}/requirements.txt" in result["serve"]


def test_a_requirement_range_is_accepted_from_the_dialog_to_a_live_function(server):
    # Issue 11: "a requirement range is refused". The dialog sends what the user typed in the
    # version field (">=1,<99") as the requirement; the kernel and the server accept it, and the
    # bundle pins the installed version in its lock.
    ns = notebook("import numpy as np\ndef total(xs):\n    return float(np.sum(xs))\n")
    comm = RecordingComm()
    chan = Channel(comm, lambda: ns)
    send(chan, "k1", "check_requirements", texts=["numpy>=1,<99"])
    assert comm.wait_for("k1")["result"]["errors"] == []
    deployment = jupyterlab_publish.publish(
        ns["total"], name="total", target=server.url, token=server.token, sample=[[1, 2]],
        requirements=[{"requirement": "numpy>=1,<99", "why": "added by you"}],
    )
    assert call(deployment.url, [[1, 2, 3]], key=deployment.key) == (200, 6.0)
    [entry] = [v for v in server.target().show("total").versions]
    assert entry.version == 1
