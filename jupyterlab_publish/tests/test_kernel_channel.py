"""The kernel's comm dispatch, driven through a recording comm so no kernel is needed."""

import textwrap
import threading
import time

import pytest

from jupyterlab_publish.kernel import protocol
from jupyterlab_publish.kernel.channel import Channel


class RecordingComm:
    """Stands in for a comm: records what the kernel side sends, like ipywidgets' DummyComm."""

    def __init__(self):
        self.sent = []
        self.changed = threading.Condition()

    def send(self, data):
        protocol.check_reply(data)  # everything the kernel sends must be valid protocol
        with self.changed:
            self.sent.append(data)
            self.changed.notify_all()

    def wait_for(self, request_id, timeout=60):
        """The final result or error for ``request_id``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for data in self.sent:
                    if data.get("id") == request_id and data["type"] in ("result", "error"):
                        return data
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no reply to {request_id}: {self.sent}"
                self.changed.wait(remaining)


def notebook(source):
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace


CELL = """\
import json

def predictor(x):
    '''Double x.'''
    return json.loads(json.dumps(x)) * 2

def validator(x):
    return isinstance(x, int)
"""


@pytest.fixture
def channel():
    comm = RecordingComm()
    namespace = notebook(CELL)
    return Channel(comm, lambda: namespace), comm, namespace


def send(channel, rid, method, **params):
    message = {"type": "request", "id": rid, "method": method, "params": params}
    channel.handle_message({"content": {"data": message}})


def test_list_functions_reports_each_def_and_its_state(channel):
    chan, comm, _ = channel
    send(chan, "r1", "list_functions", code=CELL)
    reply = comm.wait_for("r1")
    assert [(f["name"], f["defined"], f["stale"]) for f in reply["result"]["functions"]] == [
        ("predictor", True, False),
        ("validator", True, False),
    ]
    send(chan, "r2", "list_functions", code=CELL.replace("* 2", "* 3"))
    assert comm.wait_for("r2")["result"]["functions"][0]["stale"] is True
    send(chan, "r3", "list_functions", code="def brand_new(): pass")
    assert comm.wait_for("r3")["result"]["functions"][0]["defined"] is False


@pytest.mark.parametrize(
    "code, error",
    [("x = 1\n", "no_function"), ("def broken(:\n    pass\n", "syntax_error")],
)
def test_list_functions_errors_have_stable_codes(channel, code, error):
    chan, comm, _ = channel
    send(chan, "r1", "list_functions", code=code)
    reply = comm.wait_for("r1")
    assert reply["type"] == "error" and reply["error"]["code"] == error
    assert reply["error"]["hint"]


def test_analyze_runs_in_a_worker_and_names_validators(channel):
    chan, comm, _ = channel
    send(chan, "r1", "analyze", function="predictor")
    result = comm.wait_for("r1")["result"]
    assert result["function"]["signature"] == "(x)"
    assert result["requirements"] == []  # json is standard library
    assert result["suggested_name"] == "predictor"
    assert result["validators"] == ["validator"]


def test_analyze_of_a_function_never_run_says_run_the_cell(channel):
    chan, comm, _ = channel
    send(chan, "r1", "analyze", function="missing")
    assert comm.wait_for("r1")["error"]["code"] == "not_defined"


def test_publish_to_a_directory_sends_progress_then_the_deployment(channel, tmp_path):
    chan, comm, _ = channel
    send(chan, "r1", "publish", function="predictor", name="double", target=f"dir:{tmp_path}",
         sample=[21], validator="validator", requirements=[], new_version=False)
    reply = comm.wait_for("r1")
    assert reply["type"] == "result", reply
    assert reply["result"]["name"] == "double" and reply["result"]["version"] == 1
    assert "-d '[21]'" in reply["result"]["curl"]
    stages = [m["stage"] for m in comm.sent if m["type"] == "progress"]
    assert stages[0] == "analysing" and stages[-1] == "done"
    assert {"pickling", "bundling", "pushing"} <= set(stages)


def test_publish_rejects_a_bad_endpoint_name(channel, tmp_path):
    chan, comm, _ = channel
    send(chan, "r1", "publish", function="predictor", name="Not Valid", target=f"dir:{tmp_path}")
    assert comm.wait_for("r1")["error"]["code"] == "invalid_name"
    assert not any(tmp_path.iterdir())


def test_cancel_stops_a_publish_and_a_second_publish_is_busy(tmp_path):
    comm = RecordingComm()
    namespace = notebook("import time\ndef slow(x):\n    time.sleep(1.0)\n    return x\n")
    chan = Channel(comm, lambda: namespace)
    send(chan, "p1", "publish", function="slow", name="slow", target=f"dir:{tmp_path}", sample=[1])
    send(chan, "p2", "publish", function="slow", name="slow", target=f"dir:{tmp_path}")
    assert comm.wait_for("p2")["error"]["code"] == "busy"
    send(chan, "c1", "cancel", request_id="p1")
    assert comm.wait_for("c1")["result"] == {"cancelled": True, "too_late": False}
    assert comm.wait_for("p1")["error"]["code"] == "cancelled"
    assert not any(tmp_path.iterdir())  # nothing half-written

    send(chan, "p3", "publish", function="slow", name="slow", target=f"dir:{tmp_path}")
    assert comm.wait_for("p3")["type"] == "result"  # the next publish works


def test_malformed_and_unknown_requests_get_errors(channel):
    chan, comm, _ = channel
    chan.handle_message({"content": {"data": ["nonsense"]}})
    assert comm.sent[-1]["error"]["code"] == "bad_request" and comm.sent[-1]["id"] is None
    send(chan, "r9", "deploy_everything")
    assert comm.wait_for("r9")["error"]["code"] == "unknown_method"


def test_check_requirements_answers_each_text_so_the_dialog_never_parses_pep_508(channel):
    chan, comm, _ = channel
    send(chan, "r1", "check_requirements", texts=["scikit-learn>=1.0", "pandas[parquet]", "nope nope", "numpy>=999"])
    result = comm.wait_for("r1")["result"]
    first, second, third, fourth = result["requirements"]
    assert first["requirement"] == "scikit-learn>=1.0" and first["version"] == "" and first["installed"]
    assert second["requirement"] == "pandas[parquet]" and second["why"] == "added by you"
    assert third is None and fourth is None
    assert [(e["index"], bool(e["hint"])) for e in result["errors"]] == [(2, True), (3, True)]
    assert "numpy>=999" in result["errors"][1]["message"]


def test_check_requirements_needs_a_list_of_texts(channel):
    chan, comm, _ = channel
    send(chan, "r1", "check_requirements", texts="numpy")
    assert comm.wait_for("r1")["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "requirements",
    [
        [{"requirement": "cloudpickle>=1", "why": "added by you"}],  # protocol 3
        [{"name": "cloudpickle", "version": ""}],  # protocol 2, still accepted
    ],
)
def test_publish_takes_protocol_3_and_protocol_2_requirements(channel, tmp_path, requirements):
    chan, comm, _ = channel
    send(chan, "r1", "publish", function="predictor", name="double", target=f"dir:{tmp_path}", sample=[21],
         requirements=requirements, preflight=False)
    reply = comm.wait_for("r1")
    assert reply["type"] == "result", reply
    manifest = next(tmp_path.rglob("manifest.json")).read_text()
    assert '"requirement": "cloudpickle' in manifest


def test_publish_refuses_a_range_the_kernel_does_not_satisfy(channel, tmp_path):
    chan, comm, _ = channel
    send(chan, "r1", "publish", function="predictor", name="double", target=f"dir:{tmp_path}",
         requirements=[{"requirement": "cloudpickle>=999", "why": "added by you"}], preflight=False)
    error = comm.wait_for("r1")["error"]
    assert error["code"] == "bad_request" and "cloudpickle>=999" in error["message"] and error["hint"]
    assert error["details"]["index"] == 0
    assert not any(tmp_path.iterdir())
