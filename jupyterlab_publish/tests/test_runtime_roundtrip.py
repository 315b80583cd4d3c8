"""End to end: a k-means predictor built in this process, served from a fresh environment.

The bundle's requirements.txt is installed with uv into a new virtual environment that has neither
Jupyter nor jupyterlab_publish, service.py runs there as its own process, and its answer over HTTP
must equal what the function answers here. This is slow (an install from the index, cached by uv
after the first run) and deliberately not skipped: it is the only test that proves a bundle stands
on its own.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

from jupyterlab_publish.bundle import build_bundle, json_ready

INSTALL_TIMEOUT = 600  # seconds; a cold uv cache downloads numpy, scipy and scikit-learn
START_TIMEOUT = 60
REQUEST_TIMEOUT = 30

CELL = """
    import numpy as np
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(7)
    points = np.vstack([rng.normal(0.0, 0.3, (40, 2)), rng.normal(3.0, 0.3, (40, 2))])

    def make_predictor(model):
        def predictor(point):
            '''The cluster of a 2-D point and its distance to every centre.'''
            x = np.asarray([point], dtype=float)
            return {"cluster": model.predict(x)[0], "distances": model.transform(x)[0]}
        return predictor

    predictor = make_predictor(KMeans(n_clusters=2, n_init=10, random_state=0).fit(points))
"""


def notebook(source, **names):
    ns = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), ns)
    return ns


def uv_executable() -> str:
    return shutil.which("uv") or str(Path(sys.executable).with_name("uv"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def isolated_env() -> dict:
    """This process's environment minus anything that would let the child import our sources."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def run(command, timeout, cwd):
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=isolated_env()
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"service.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError(f"service.py did not answer /healthz within {START_TIMEOUT}s:\n{log.read_text()}")


def test_kmeans_bundle_serves_from_a_fresh_environment(tmp_path):
    started = time.monotonic()
    ns = notebook(CELL)
    predictor = ns["predictor"]
    bundle = build_bundle(
        predictor,
        tmp_path / "predictor",
        name="predictor",
        requirements=[
            {"name": "scikit-learn", "version": version("scikit-learn"), "why": "predictor → model (KMeans)"},
            {"name": "numpy", "version": version("numpy"), "why": "predictor → np"},
        ],
        sample=[[0.5, 0.5]],
    )
    expected = json_ready(predictor([0.5, 0.5]))
    assert bundle.manifest["sample_output"] == expected

    env = tmp_path / "env"
    python = env / "bin" / "python"
    run([uv_executable(), "venv", "--quiet", env, "--python", sys.executable], timeout=120, cwd=tmp_path)
    run([uv_executable(), "pip", "install", "--quiet", "--python", python, "-r", bundle.path / "requirements.txt"],
        timeout=INSTALL_TIMEOUT, cwd=tmp_path)
    installed = time.monotonic()
    # The environment must not be able to lean on this package.
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('jupyterlab_publish') is not None)"
    run([python, "-c", probe], timeout=60, cwd=tmp_path)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "service.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [str(python), str(bundle.path / "service.py"), "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp_path, env=isolated_env(),
        )
    try:
        health = wait_until_healthy(url, process, log)
        assert health["status"] == "ok" and health["name"] == "predictor" and health["function"] == "predictor"
        request = urllib.request.Request(
            f"{url}/", data=json.dumps([[0.5, 0.5]]).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            assert response.status == 200
            answer = json.loads(response.read())
        assert answer == expected
        assert answer["cluster"] in (0, 1) and len(answer["distances"]) == 2
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(env, ignore_errors=True)
    print(f"\nround trip: install {installed - started:.1f}s, total {time.monotonic() - started:.1f}s")
