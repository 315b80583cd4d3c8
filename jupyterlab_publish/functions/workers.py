"""Worker processes: one per live version, each running the bundle's own ``service.py``.

The function never runs inside the server (or the kernel): a crash, a leak or a blocking call in
user code takes down only its worker, which the server restarts on the next request.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import httpx

from .environment import WorkerEnvironment

WORKER_HOST = "127.0.0.1"  # workers are reached only through the server's proxy
DEFAULT_START_TIMEOUT = 30.0
LOG_TAIL_LINES = 30


class WorkerStartError(Exception):
    """The worker did not come up; ``log`` holds the end of its log."""

    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.message = message
        self.log = log


def free_port(host: str = WORKER_HOST) -> int:
    # The OS picks a free port; the worker binds it a moment later. Another process could take it
    # in between, which start_worker detects and retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Worker:
    def __init__(self, name: str, version: int, version_dir: Path, environment: WorkerEnvironment):
        self.name = name
        self.version = version
        self.version_dir = Path(version_dir)
        self.bundle_dir = self.version_dir / "bundle"
        self.environment = environment
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{WORKER_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.version_dir / "worker.log"

    @property
    def pid_path(self) -> Path:
        return self.version_dir / "worker.pid"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        self.port = free_port()
        command = self.environment.command(self.bundle_dir, WORKER_HOST, self.port)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting on port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.version_dir)
            )
        # Recorded so a server that was killed hard can stop its orphans on the next start.
        self.pid_path.write_text(str(self.process.pid), "utf-8")

    def stop_blocking(self, timeout: float = 5.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            self.pid_path.unlink()
        except OSError:
            pass

    async def stop(self, timeout: float = 5.0) -> None:
        await asyncio.to_thread(self.stop_blocking, timeout)

    def log_tail(self) -> str:
        return tail(self.log_path)


async def _wait_healthy(worker: Worker, client: httpx.AsyncClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise WorkerStartError(
                f"the worker for {worker.name} v{worker.version} exited during start-up "
                f"(status {worker.process.returncode})",
                worker.log_tail(),
            )
        try:
            response = await client.get(worker.url + "/healthz", timeout=2.0)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        await asyncio.sleep(0.05)
    await worker.stop()
    raise WorkerStartError(
        f"the worker for {worker.name} v{worker.version} did not answer /healthz within {timeout:.0f} s",
        worker.log_tail(),
    )


async def start_worker(
    name: str, version: int, version_dir: Path, environment: WorkerEnvironment, client: httpx.AsyncClient,
    timeout: float = DEFAULT_START_TIMEOUT,
) -> Worker:
    """Start a worker and return it once it answers /healthz; raise WorkerStartError otherwise."""
    for attempt in range(3):
        worker = Worker(name, version, version_dir, environment)
        worker.spawn()
        try:
            await _wait_healthy(worker, client, timeout)
            return worker
        except WorkerStartError as exc:
            lost_port_race = "address already in use" in exc.log.lower()
            if not lost_port_race or attempt == 2:
                await worker.stop()
                raise
    raise AssertionError("unreachable")


def _command_line(pid: int) -> str:
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return ""
    try:
        return subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def reap_orphan(version_dir: Path) -> None:
    """Stop a worker left running by a server that died without cleaning up.

    The pid is trusted only if that process still runs this version's service.py, so a pid the OS
    has since given to an unrelated process is left alone.
    """
    pid_path = Path(version_dir) / "worker.pid"
    try:
        pid = int(pid_path.read_text("utf-8").strip())
    except (OSError, ValueError):
        return
    if sys.platform != "win32" and str(Path(version_dir) / "bundle" / "service.py") in _command_line(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        pid_path.unlink()
    except OSError:
        pass
