"""`jupyter publish` end to end: a real kernel runs the example notebook and publishes from it."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jupyterlab_publish.cli import main

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
