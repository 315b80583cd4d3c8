"""The embedded default target: the local function server, started on demand.

The server is a separate, detached process (``python -m jupyterlab_publish.functions serve``) so
published functions keep serving after the kernel stops, and so nothing runs inside the kernel.
Kernels find it through ``<state_dir>/server.json`` and talk to it like any function server.

server.json only *names* a server: before the token or a bundle goes to the address it records, the
server there must prove it holds this state directory's admin token (``GET /api/prove``, an HMAC
of a fresh nonce under the token; state/proof.py). A stale server.json whose port another local
user has taken is refused with nothing sent.

Its lifetime is ``$JUPYTERLAB_PUBLISH_SERVER_LIFETIME`` (or ``LocalTarget(lifetime=...)``):
``persistent`` (default) keeps it running after JupyterLab exits, so URLs stay up; ``session`` starts
it with ``--exit-with-pid <the kernel's parent>``, the Jupyter server, so it stops when JupyterLab
does. The setting applies when a kernel starts the server; a server already running is reused as is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

from ..errors import PublishError
from ..state.lock import exclusive_lock
from ..state.logs import tail
from ..state.paths import SERVER_INFO, SERVER_LOG, START_LOCK, TOKEN_FILE, default_state_dir, read_server_info
from ..state.proof import new_nonce, proof_matches
from .base import DEFAULT_LOG_LINES, Deployment, Gate, Progress, Target, progress_or_noop
from .http import FunctionServerTarget
from .results import CallResult, FunctionInfo, LogTail, RollbackResult

SERVER_PYTHON_ENV = "JUPYTERLAB_PUBLISH_SERVER_PYTHON"
LIFETIME_ENV = "JUPYTERLAB_PUBLISH_SERVER_LIFETIME"
LIFETIMES = ("persistent", "session")
DEFAULT_START_TIMEOUT = 30.0
_LOG_TAIL_LINES = 20


def _healthy(info: dict, timeout: float = 2.0) -> bool:
    """True if the server in ``info`` answers /healthz as the process server.json names.

    Comparing the pid guards against a stale server.json whose port now belongs to someone else.
    """
    try:
        with urllib.request.urlopen(info["url"].rstrip("/") + "/healthz", timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("status") == "ok" and body.get("pid") == info["pid"]


def _proves_token(info: dict, token: str, timeout: float = 5.0) -> bool:
    """True if the server in ``info`` answers a fresh nonce with its HMAC under ``token``.

    Nothing secret travels: the request carries the nonce only, never the token.
    """
    nonce = new_nonce()
    url = info["url"].rstrip("/") + "/api/prove?nonce=" + nonce
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),
                                    timeout=timeout) as response:
            body = json.loads(response.read(4096).decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and proof_matches(token, nonce, body.get("proof"))


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        raise NotImplementedError  # os.kill(pid, 0) would send CTRL_C_EVENT there; see _gone
    try:
        # Reap it first if it is our own child, or a finished server would linger as a zombie.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except (ChildProcessError, OSError, AttributeError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _gone(info: dict) -> bool:
    """True once the server process in ``info`` has exited."""
    if os.name == "nt":
        # SIGTERM is TerminateProcess on Windows: the process is gone once it stops answering.
        return not _healthy(info, timeout=0.5)
    return not _pid_alive(info["pid"])


def _server_environment(python: str) -> dict:
    env = dict(os.environ)
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        # Same interpreter: make sure the server imports the very package this kernel runs, even
        # from a source checkout that is not installed.
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def _detach_options() -> dict:
    if os.name == "nt":
        flags = getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def _start_lock_busy(expired) -> PublishError:
    return PublishError(
        "target_unreachable", str(expired),
        "another kernel may be starting the local function server; try again in a moment",
    )


class LocalTarget(Target):
    """The local function server; every verb starts it first if it is not running."""

    kind = "local"
    label = "Local function server (this machine)"
    spec_example = "local"
    capabilities = FunctionServerTarget.capabilities
    gates_switch = True

    def __init__(self, state_dir=None, *, python: Optional[str] = None, start_timeout: float = DEFAULT_START_TIMEOUT,
                 lifetime: Optional[str] = None):
        self.state_dir = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
        self.python = python or os.environ.get(SERVER_PYTHON_ENV) or sys.executable
        self.start_timeout = start_timeout
        self.lifetime = (lifetime or os.environ.get(LIFETIME_ENV) or "persistent").strip().lower()
        if self.lifetime not in LIFETIMES:
            raise PublishError(
                "unknown_target", f"{LIFETIME_ENV}={self.lifetime!r} is not a server lifetime",
                "use 'persistent' (the server outlives JupyterLab, the default) or 'session' (it exits with it)",
            )

    @classmethod
    def from_spec(cls, spec: str, *, token: Optional[str] = None) -> "LocalTarget":
        if spec.strip().lower() != "local":
            raise PublishError("unknown_target", f"cannot read the target spec {spec!r}", "write it as 'local'")
        return cls()

    def spec(self) -> str:
        return "local"

    @property
    def log_path(self) -> Path:
        return self.state_dir / SERVER_LOG

    # -- server lifecycle ------------------------------------------------------------------------

    def ensure_server(self, progress: Optional[Progress] = None) -> dict:
        """Return the running server's info, starting the server first if none answers.

        A server that answers must prove it holds the admin token (``_proves_token``) before
        anything is sent to it; one that cannot is refused with ``target_error``.
        """
        info = read_server_info(self.state_dir)
        if info is not None and _healthy(info):
            return self.proven(info)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Re-check under the lock: another kernel may have started it while we waited.
        with exclusive_lock(self.state_dir / START_LOCK, self.start_timeout + 10, on_timeout=_start_lock_busy):
            info = read_server_info(self.state_dir)
            if info is not None and _healthy(info):
                return self.proven(info)
            progress_or_noop(progress)("starting", 0.0, "starting the local function server")
            return self.proven(self._start())

    def proven(self, info: dict) -> dict:
        """``info`` once its server proved it holds this state directory's token; else target_error."""
        if _proves_token(info, self.admin_token()):
            return info
        raise PublishError(
            "target_error",
            f"the server answering at {info['url']} (named by {self.state_dir / SERVER_INFO}) did not prove "
            "that it holds this state directory's admin token, so nothing was sent to it: another program "
            "may have taken the port of a local server that has stopped, or it is a server from an older "
            "jupyterlab-publish",
            f"stop the program listening on {info['url']} (an older function server: stop it and publish "
            f"again, which starts a new one), or delete {self.state_dir / SERVER_INFO} and try again",
            {"url": info["url"]},
        )

    def _start(self) -> dict:
        command = [self.python, "-m", "jupyterlab_publish.functions", "serve", "--port", "0",
                   "--state-dir", str(self.state_dir)]
        if self.lifetime == "session":
            # A kernel's parent is the Jupyter server that started it: end with JupyterLab.
            command += ["--exit-with-pid", str(os.getppid())]
        # The log may hold the admin token (printed once on first start): keep it private.
        log_fd = os.open(str(self.log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, cwd=str(self.state_dir),
                env=_server_environment(self.python), **_detach_options(),
            )
        except OSError as exc:
            raise self._start_failed(f"cannot run {self.python}: {exc}") from exc
        finally:
            os.close(log_fd)

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self._start_failed(f"it exited with status {process.returncode}")
            info = read_server_info(self.state_dir)
            if info is not None and info["pid"] == process.pid and _healthy(info):
                return info
            time.sleep(0.1)
        # Do not leave a half-started server behind that a later push might half-trust.
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        raise self._start_failed(f"it did not become healthy within {self.start_timeout:.0f} s")

    def _start_failed(self, why: str) -> PublishError:
        log = tail(self.log_path, _LOG_TAIL_LINES)
        message = f"the local function server did not start: {why}"
        if log:
            message += f"\n--- {self.log_path} (last lines) ---\n{log}"
        return PublishError(
            "target_unreachable",
            message,
            f"read the log at {self.log_path}; you can also start the server yourself with "
            f"`jupyter publish serve` (or `{self.python} -m jupyterlab_publish.functions serve`)",
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the running local server (SIGTERM, then SIGKILL after ``timeout``); True if one ran."""
        info = read_server_info(self.state_dir)
        if info is None or not _healthy(info):
            return False
        self.proven(info)  # the pid is the server's own word: signal it only once it proved itself
        os.kill(info["pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not _gone(info):
            if time.monotonic() > deadline:
                os.kill(info["pid"], getattr(signal, "SIGKILL", signal.SIGTERM))
                break
            time.sleep(0.05)
        return True

    def admin_token(self) -> str:
        try:
            return (self.state_dir / TOKEN_FILE).read_text("utf-8").strip()
        except OSError as exc:
            raise PublishError(
                "target_error",
                f"cannot read the local server's admin token: {exc}",
                f"check the permissions of {self.state_dir / TOKEN_FILE}",
            ) from exc

    def client(self, progress: Optional[Progress] = None) -> FunctionServerTarget:
        """A FunctionServerTarget for the running local server (started if needed)."""
        info = self.ensure_server(progress)
        return FunctionServerTarget(info["url"], self.admin_token())

    # -- Target ----------------------------------------------------------------------------------

    def push(self, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False,
             public: bool = False, gate: Optional[Gate] = None) -> Deployment:
        deployment = self.client(progress).push(bundle, progress, new_version=new_version, public=public, gate=gate)
        deployment.target = self.kind
        return deployment

    def list(self) -> list:
        return self.client().list()

    def show(self, name: str) -> FunctionInfo:
        return self.client().show(name)

    def versions(self, name: str) -> list:
        return self.client().versions(name)

    def rollback(self, name: str, to: Optional[int] = None) -> RollbackResult:
        return self.client().rollback(name, to)

    def delete(self, name: str) -> None:
        self.client().delete(name)

    def logs(self, name: str, version: Optional[int] = None, lines: int = DEFAULT_LOG_LINES) -> LogTail:
        return self.client().logs(name, version, lines)

    # -- the Deployments panel's verbs ------------------------------------------------------------

    def started(self) -> bool:
        """Whether the local server runs now: listing must not start one as a side effect."""
        info = read_server_info(self.state_dir)
        return info is not None and _healthy(info)

    def metrics(self) -> list:
        return self.client().metrics()

    def call(self, name: str, payload: Any) -> CallResult:
        return self.client().call(name, payload)

    def docs(self, name: str) -> str:
        return self.client().docs(name)
