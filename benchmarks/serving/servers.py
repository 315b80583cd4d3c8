"""Start and stop the servers under test, each in its own process group on 127.0.0.1.

Every server is started by us with ``start_new_session=True``, so stopping it (SIGTERM to the
server, then SIGKILL to its own process group if anything is left) reaches its worker processes and
nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def post(url: str, body: object, headers: Optional[dict] = None, timeout: float = 10.0):
    """(status, parsed JSON) of one POST; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


class Server:
    """A started server process; ``stop()`` is idempotent."""

    def __init__(self, label: str, command: list, log: Path, env: Optional[dict] = None, cwd: Path = HERE):
        self.label = label
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}")

    def wait_answers(self, url: str, body: object, headers: Optional[dict] = None) -> object:
        """Wait until ``url`` answers ``body`` with 200; return the answer."""
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, answer = post(url, body, headers, timeout=5)
                if status == 200:
                    return answer
                last = f"HTTP {status}: {answer}"
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not answer {url} in {START_TIMEOUT:.0f} s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers of our own group only
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)


def flask_server(port: int, log: Path) -> Server:
    return Server("Flask development server", [sys.executable, "flask_app.py", str(port)], log)


def bare_server(port: int, workers: int, log: Path) -> Server:
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", HOST, "--port", str(port),
               "--workers", str(workers), "--http", "httptools", "--loop", "uvloop",
               "--no-access-log", "--log-level", "warning"]
    return Server(f"bare Starlette/uvicorn ({workers} worker{'s' if workers > 1 else ''})", command, log)


SERVE_COMMANDS = [
    [str(Path(sys.executable).with_name("jupyter-publish")), "serve"],  # `jupyter publish serve`
    [sys.executable, "-m", "jupyterlab_publish.functions", "serve"],  # what LocalTarget starts
]


def serve_help(command: list) -> str:
    # Not run from the repository: `python -m` would import the package from the working directory.
    return subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60,
                          cwd=tempfile.gettempdir()).stdout


def serve_command() -> list:
    """`jupyter publish serve`, unless only the module entry point has `--processes` yet (the two
    are meant to take the same flags; while they differ, the one with the flag is measured)."""
    for command in SERVE_COMMANDS:
        if "--processes" in serve_help(command):
            return command
    return SERVE_COMMANDS[0]


class FunctionServer(Server):
    """``<serve command> --state-dir D --port 0 [extra]``; ``url`` and ``token`` once started."""

    def __init__(self, command: list, state_dir: Path, extra: list, log: Path, env: dict, label: str):
        self.state_dir = state_dir
        # Started outside this directory, so `python -m` cannot pick up our modules as its own.
        super().__init__(label, [*command, "--state-dir", str(state_dir), "--port", "0", *extra], log, env,
                         cwd=state_dir.parent)
        self.url, self.token = self._wait_started()

    def _wait_started(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                info = json.loads((self.state_dir / "server.json").read_text("utf-8"))
                if info.get("pid") == self.process.pid:
                    return info["url"], (self.state_dir / "token").read_text("utf-8").strip()
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.label} did not write server.json in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
