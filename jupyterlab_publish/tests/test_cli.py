"""`jupyter publish` end to end: a real kernel runs the example notebook and publishes from it; the
management commands on a directory target; where the local admin token may go."""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.cli import main
from jupyterlab_publish.state.proof import server_proof
from jupyterlab_publish.targets import DirectoryTarget

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "kmeans.ipynb"


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(state))
    yield state
    server = state / "server.json"
    if server.exists():
        os.kill(json.loads(server.read_text())["pid"], signal.SIGTERM)


def post(url, body, key=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def run_cli(*args):
    # A subprocess, as a user runs it: the kernel it starts inherits the state directory.
    return subprocess.run(
        [sys.executable, "-m", "jupyterlab_publish.cli", *args], capture_output=True, text=True, timeout=300
    )


def notebook_answer(point):
    """What the example notebook itself answers (its code cells are plain Python, seeded)."""
    namespace = {"__name__": "__main__"}
    cells = json.loads(EXAMPLE.read_text())["cells"]
    for cell in cells[:-2]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)
    return namespace["predictor"](point)


def test_publish_a_notebook_function_without_a_browser(state_dir):
    done = run_cli(
        "notebook", str(EXAMPLE), "--function", "predictor", "--validator", "validator",
        "--sample", "[[0.5, 0.5]]", "--json",
    )
    assert done.returncode == 0, done.stderr
    deployment = json.loads(done.stdout)
    assert (deployment["name"], deployment["version"]) == ("predictor", 1)
    assert "-d '[[0.5, 0.5]]'" in deployment["curl"]
    key = deployment["key"]
    assert key and f"Authorization: Bearer {key}" in deployment["curl"]
    assert post(deployment["url"], [[0.5, 0.5]])[0] == 401  # not published --public
    assert post(deployment["url"], [[0.5, 0.5]], key) == (200, notebook_answer([0.5, 0.5]))
    assert post(deployment["url"], [[1, 2, 3]], key)[0] == 422

    taken = run_cli("notebook", str(EXAMPLE), "--function", "predictor")
    assert taken.returncode == 1 and "exists already" in taken.stderr

    again = run_cli("notebook", str(EXAMPLE), "--function", "predictor", "--new-version", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == 2
    status, body = post(deployment["url"], [[1, 2, 3]], key)  # version 2 has no validator
    assert status == 500 and body["error"] == "function_error"

    listed = run_cli("list", "--json")
    assert [f["name"] for f in json.loads(listed.stdout)] == ["predictor"]
    shown = json.loads(run_cli("show", "predictor", "--json").stdout)
    assert (shown["live_version"], shown["version"], shown["key"], shown["url"]) == (2, 2, key, deployment["url"])


def test_an_unknown_function_is_a_clear_error(state_dir, capsys):
    assert main(["notebook", str(EXAMPLE), "--function", "nothing_here"]) == 1
    err = capsys.readouterr().err
    assert "nothing_here" in err and "hint:" in err


def test_a_bad_sample_is_refused_before_running_anything(state_dir, capsys):
    assert main(["notebook", str(EXAMPLE), "--function", "predictor", "--sample", "[[0.5,"]) == 1
    assert "--sample is not JSON" in capsys.readouterr().err


# -- management verbs through the Target interface, on targets that need no server -------------------


@pytest.fixture
def dir_target(tmp_path, monkeypatch):
    """A directory target holding two versions of ``add-one`` (signed with a private user key)."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    namespace = {}
    exec("def add_one(x):\n    return x + 1\n", namespace)
    bundle = build_bundle(namespace["add_one"], tmp_path / "bundle", name="add-one", sample=[3])
    target = DirectoryTarget(tmp_path / "out")
    target.push(bundle)
    target.push(bundle)
    return target


def test_the_cli_manages_a_directory_target(dir_target, capsys):
    on = ["--target", f"dir:{dir_target.root}"]
    assert main(["list", *on]) == 0
    out = capsys.readouterr().out
    assert out == f"add-one\t-\t-\t{(dir_target.root / 'add-one').resolve().as_uri()}\n"

    assert main(["list", "--json", *on]) == 0
    assert [fn["name"] for fn in json.loads(capsys.readouterr().out)] == ["add-one"]

    assert main(["show", "add-one", *on]) == 0
    out = capsys.readouterr().out
    assert "live version: none" in out and "call it" not in out and "key:" not in out
    assert "v2\tstored\t" in out and str(dir_target.root / "add-one" / "v2") in out

    assert main(["versions", "add-one", "--json", *on]) == 0
    assert [(v["version"], v["status"]) for v in json.loads(capsys.readouterr().out)] == [(1, "stored"), (2, "stored")]

    assert main(["rollback", "add-one", *on]) == 1
    err = capsys.readouterr().err
    assert "the dir target has no 'rollback'" in err and "hint: 'rollback' is available on these targets: local, http" in err
    assert main(["logs", "add-one", *on]) == 1
    assert "hint: 'logs' is available on these targets: local, http" in capsys.readouterr().err

    assert main(["delete", "add-one", *on]) == 0
    assert capsys.readouterr().out == "Deleted add-one.\n"
    assert main(["show", "add-one", *on]) == 1
    assert "no function named add-one" in capsys.readouterr().err


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/api/prove?nonce="):
            # The local server's proof that it holds its token (only when this one plays that server).
            self.server.proofs.append(self.headers.get("Authorization"))
            nonce = self.path.split("=", 1)[1]
            proof = server_proof(self.server.holds_token, nonce) if self.server.holds_token else "0" * 64
            data = json.dumps({"proof": proof}).encode()
        else:
            self.server.authorizations.append(self.headers.get("Authorization"))
            data = b'{"functions": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.authorizations = []
    server.proofs = []  # the Authorization header of each /api/prove request
    server.holds_token = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _fake_local_server(state: Path, url: str) -> None:
    """A state directory whose server.json names ``url``, with the local admin token beside it."""
    state.mkdir(parents=True)
    (state / "token").write_text("the-local-admin-token\n")
    (state / "server.json").write_text(json.dumps({"pid": os.getpid(), "url": url, "started": "now"}))


def test_the_local_admin_token_is_not_sent_to_a_foreign_target(tmp_path, monkeypatch, capsys, recorder):
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "state"))
    _fake_local_server(tmp_path / "state", "http://127.0.0.1:1")  # the local server is elsewhere
    foreign = f"http://127.0.0.1:{recorder.server_port}"
    assert main(["list", "--target", foreign]) == 1
    err = capsys.readouterr().err
    assert f"no admin token for {foreign}" in err and "JUPYTERLAB_PUBLISH_TOKEN" in err
    assert recorder.authorizations == []  # nothing was sent at all

    monkeypatch.setenv("JUPYTERLAB_PUBLISH_TOKEN", "the-foreign-servers-token")
    assert main(["list", "--target", foreign]) == 0
    assert recorder.authorizations == ["Bearer the-foreign-servers-token"]


def test_the_local_admin_token_goes_to_the_local_servers_own_url(tmp_path, monkeypatch, capsys, recorder):
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "state"))
    url = f"http://127.0.0.1:{recorder.server_port}"
    _fake_local_server(tmp_path / "state", url)
    recorder.holds_token = "the-local-admin-token"
    assert main(["list", "--target", url + "/"]) == 0
    assert capsys.readouterr().out == "No functions published yet.\n"
    assert recorder.authorizations == ["Bearer the-local-admin-token"]
    assert recorder.proofs == [None]  # it proved it holds the token before the token was sent


def test_the_local_admin_token_is_not_sent_to_a_server_that_cannot_prove_it_holds_it(tmp_path, monkeypatch, capsys,
                                                                                     recorder):
    # server.json names a port another program now listens on (the server that wrote it is gone).
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "state"))
    url = f"http://127.0.0.1:{recorder.server_port}"
    _fake_local_server(tmp_path / "state", url)
    assert main(["list", "--target", url]) == 1
    assert "did not prove" in capsys.readouterr().err
    assert recorder.authorizations == [] and recorder.proofs == [None]
