"""Run the local function server: ``serve(host, port, state_dir)``.

Start-up order matters to the kernels that wait for us: state directory, run lock (one server per
state directory), token, bound socket, app start-up (store, crash recovery, worker restarts in the
background), and only then ``server.json`` naming the real port. Shutdown (SIGTERM/SIGINT) stops the
workers and removes ``server.json`` inside the app's lifespan, before uvicorn re-raises the signal.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import sys
from typing import Optional

import uvicorn

from ..targets.filelock import try_lock
from ..targets.paths import default_state_dir, read_server_info
from .app import create_app
from .auth import ensure_token
from .core import FunctionService
from .layout import Layout, write_atomically

DEFAULT_HOST = "127.0.0.1"  # exposing functions beyond this machine is the operator's decision


class AlreadyRunning(Exception):
    pass


def _hold_run_lock(layout: Layout) -> int:
    """Lock held for the server's lifetime (released by the OS if it dies): one server per state dir."""
    fd = os.open(str(layout.run_lock), os.O_RDWR | os.O_CREAT, 0o600)
    if not try_lock(fd):
        os.close(fd)
        info = read_server_info(layout.root)
        where = f" at {info['url']} (pid {info['pid']})" if info else ""
        raise AlreadyRunning(f"a function server is already running for {layout.root}{where}")
    return fd


def _bind(host: str, port: int, layout: Layout) -> socket.socket:
    """Bind the listening socket. Port 0 first retries the last port, so function URLs survive restarts."""
    candidates = [port]
    if port == 0:
        try:
            candidates.insert(0, int(layout.last_port.read_text("utf-8").strip()))
        except (OSError, ValueError):
            pass
    family, _, _, _, address = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
    last_error: Optional[OSError] = None
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        if os.name != "nt":  # on Windows SO_REUSEADDR would let another process share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address[0], candidate) + tuple(address[2:]))
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error


def _public_url(host: str, port: int) -> str:
    # A wildcard address is not something a client can connect to; this machine's loopback is.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve(host: str = DEFAULT_HOST, port: int = 0, state_dir=None, *, log_level: str = "info") -> int:
    """Serve until SIGTERM/SIGINT; return the process exit status."""
    # Our own messages (worker restarts, failed admin requests) go to the same log as uvicorn's.
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    layout = Layout(state_dir if state_dir is not None else default_state_dir())
    layout.create()
    try:
        lock_fd = _hold_run_lock(layout)
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        token, created = ensure_token(layout.token)
        if created:
            print(f"jupyterlab-publish admin token (kept in {layout.token}): {token}", flush=True)
        sock = _bind(host, port, layout)
        bound_port = sock.getsockname()[1]
        url = _public_url(host, bound_port)
        pid = os.getpid()

        service = FunctionService(layout)
        app = create_app(service, token, on_shutdown=lambda: layout.remove_server_info(pid))
        config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)

        async def run() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            if server.started:
                started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                layout.write_server_info({"pid": pid, "url": url, "started": started})
                write_atomically(layout.last_port, str(bound_port))
                print(f"serving functions at {url} (state in {layout.root})", flush=True)
            await task

        try:
            asyncio.run(run())
        finally:
            layout.remove_server_info(pid)
        return 0
    finally:
        os.close(lock_fd)


__all__ = ["DEFAULT_HOST", "serve"]
