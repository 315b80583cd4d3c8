"""Helpers for tests that run a real ``jupyter publish serve`` process and publish real bundles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.state.paths import read_server_info
from jupyterlab_publish.targets.http import FunctionServerTarget

REPO = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT = 30
WAIT = 40.0  # the longest any condition below is awaited


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def worker_pids(state: Path, name: str) -> list:
    pids = []
    for path in sorted(state.glob(f"functions/{name}/v*/worker*.pid")):
        try:
            pids.append(int(path.read_text()))
        except (OSError, ValueError):
            pass  # being rewritten
    return pids


def call(url: str, body=None, *, key: str | None = None, method: str = "POST", raw: bytes | None = None):
    """(status, JSON body) of one request; HTTP errors are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def make_bundle(tmp: Path, src: str, fn_name: str, name: str, **options):
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(src), namespace)
    out = tmp / f"{name}-{time.monotonic_ns()}"
    return build_bundle(namespace[fn_name], out, name=name, **options)


def adder(n: int) -> str:
    return f"def add(x):\n    return x + {n}\n"


class Server:
    """A ``jupyter publish serve`` process with its own state directory."""

    def __init__(self, state: Path, *flags: str):
        self.state = state
        self.flags = flags
        self.process = None

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items() if k != "JUPYTERLAB_PUBLISH_TOKEN"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.log = open(self.state.parent / f"{self.state.name}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab_publish.cli", "serve", "--state-dir", str(self.state),
             "--environments", "shared", *self.flags],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        info = wait_for(lambda: self._info(), "the server to write server.json")
        self.url = info["url"]
        self.token = (self.state / "token").read_text().strip()
        return self

    def _info(self):
        assert self.process.poll() is None, (self.state.parent / f"{self.state.name}.log").read_text()
        info = read_server_info(self.state)
        return info if info and info["pid"] == self.process.pid else None

    def target(self) -> FunctionServerTarget:
        return FunctionServerTarget(self.url, self.token)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: its workers are left running."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in [int(p.read_text()) for p in self.state.glob("functions/*/v*/worker*.pid")]:
            try:
                os.kill(pid, signal.SIGKILL)  # only left if the server could not stop them
            except (ProcessLookupError, ValueError):
                pass
        if not self.log.closed:
            self.log.close()
