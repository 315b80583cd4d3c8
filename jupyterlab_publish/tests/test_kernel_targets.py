"""The target a publish request names (protocol 5): its token resolved in the kernel from where the
settings say it is, never sent over the comm; and scale settings passed through the kernel's
publish handler to the target, which checks them before anything is built."""

from __future__ import annotations

import pytest

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.kernel.channel import Channel
from jupyterlab_publish.server.service import TargetRef
from jupyterlab_publish.targets.tokens import resolve_token
from jupyterlab_publish.tests.function_server import Server, call
from jupyterlab_publish.tests.test_kernel_channel import RecordingComm, notebook, send

CELL = "def inc(x):\n    return x + 1\n"


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "state").start()
    yield started
    started.stop()


@pytest.fixture
def kernel():
    comm = RecordingComm()
    namespace = notebook(CELL)
    return Channel(comm, lambda: namespace), comm


def test_a_token_named_by_variable_is_read_in_the_kernel_and_publishes(kernel, server, monkeypatch):
    chan, comm = kernel
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_TOKEN", raising=False)  # only the named variable holds it
    monkeypatch.setenv("TEAM_SERVER_TOKEN", server.token)
    send(chan, "p1", "publish", function="inc", name="inc", target=server.url, token_env="TEAM_SERVER_TOKEN",
         sample=[1], preflight=False)
    reply = comm.wait_for("p1")
    assert reply["type"] == "result", reply
    assert call(reply["result"]["url"], [41], key=reply["result"]["key"]) == (200, 42)
    # What the kernel sent back holds no admin token, whatever else it says.
    assert server.token not in repr(comm.sent)


def test_a_token_file_is_read_in_the_kernel(kernel, server, tmp_path, monkeypatch):
    chan, comm = kernel
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_TOKEN", raising=False)
    token_file = tmp_path / "team-token"
    token_file.write_text(server.token + "\n")
    send(chan, "p1", "publish", function="inc", name="inc", target=server.url, token_file=str(token_file),
         preflight=False)
    reply = comm.wait_for("p1")
    assert reply["type"] == "result", reply
    assert [f.name for f in server.target().list()] == ["inc"]


@pytest.mark.parametrize(
    "where, code, says",
    [
        ({"token_env": "NO_SUCH_TOKEN_VARIABLE"}, "target_error",
         "the variable NO_SUCH_TOKEN_VARIABLE is not set in the kernel's environment"),
        ({"token_env": "NOT-A-NAME"}, "bad_request", "is not an environment variable name"),
        ({"token_file": "/nonexistent/jupyterlab-publish-token"}, "target_error",
         "the kernel cannot read the token file /nonexistent/jupyterlab-publish-token"),
    ],
)
def test_a_token_the_kernel_cannot_read_fails_clearly_before_anything_is_built(kernel, server, monkeypatch,
                                                                               where, code, says):
    chan, comm = kernel
    monkeypatch.delenv("NO_SUCH_TOKEN_VARIABLE", raising=False)
    send(chan, "p1", "publish", function="inc", name="inc", target=server.url, preflight=False, **where)
    error = comm.wait_for("p1")["error"]
    assert (error["code"], says in error["message"]) == (code, True), error
    assert error["hint"]
    assert not [m for m in comm.sent if m["type"] == "progress"]  # refused before the first stage
    assert server.target().list() == []


def test_the_server_and_the_kernel_read_tokens_by_the_same_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_SERVER_TOKEN", "  s3cret\n")
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    for token_env, token_file_name, expected in (
        ("TEAM_SERVER_TOKEN", None, "s3cret"),
        (None, str(token_file), "from-file"),
        ("TEAM_SERVER_TOKEN", str(token_file), "s3cret"),  # the variable first, as before
        (None, None, None),
    ):
        assert TargetRef("local", token_env, token_file_name).token() == expected
        assert resolve_token(token_env, token_file_name, where="the kernel") == expected
    monkeypatch.delenv("TEAM_SERVER_TOKEN")
    with pytest.raises(PublishError) as server_side:
        TargetRef("local", "TEAM_SERVER_TOKEN").token()
    assert server_side.value.code == "target_error"
    assert "the Jupyter server's environment" in server_side.value.message


@pytest.mark.parametrize(
    "scale, field",
    [
        ({"replicas": 2}, "scale"),  # a target that runs one copy refuses any scale
        ({"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2, "cpus": 0.5}, "scale"),
        ({"replicas": 0}, "replicas"),  # read before the target's capability: the field is named
        ({"min_replicas": 5, "max_replicas": 2}, "min_replicas"),
        ({"cpus": -1}, "cpus"),
        ({"replicas": 2, "max_replicas": 3}, "replicas"),
        ({"replica": 2}, "replica"),
    ],
)
def test_scale_goes_through_the_kernel_to_the_target_which_checks_it_first(kernel, tmp_path, scale, field):
    chan, comm = kernel
    out = tmp_path / "bundles"
    send(chan, "p1", "publish", function="inc", name="inc", target=f"dir:{out}", scale=scale, sample=[1])
    error = comm.wait_for("p1")["error"]
    assert (error["code"], error["details"]["field"]) == ("invalid_scale", field), error
    assert error["message"] and error["hint"]
    assert not [m for m in comm.sent if m["type"] == "progress"]  # nothing analysed, run or built
    assert not out.exists()


def test_an_empty_or_absent_scale_publishes_to_a_target_that_runs_one_copy(kernel, tmp_path):
    chan, comm = kernel
    send(chan, "p1", "publish", function="inc", name="inc", target=f"dir:{tmp_path}", scale={}, preflight=False)
    assert comm.wait_for("p1")["type"] == "result"
    send(chan, "p2", "publish", function="inc", name="inc", target=f"dir:{tmp_path}", scale=None, preflight=False)
    assert comm.wait_for("p2")["result"]["version"] == 2
