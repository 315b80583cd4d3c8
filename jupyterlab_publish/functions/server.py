"""Run the local function server: ``serve(host, port, state_dir)``.

Start-up order matters to the kernels that wait for us: state directory, run lock (one server per
state directory), token, bound socket, app start-up (store, crash recovery, worker restarts in the
background), and only then ``server.json`` naming the real port and the worker sandbox in force.

Shutdown (SIGTERM/SIGINT, or the exit of the ``exit_with_pid`` process) drains: the front door stops
accepting, calls in progress finish (uvicorn waits for the connections it serves; each worker gets
SIGTERM and finishes its handed-off calls), the workers exit, ``server.json`` goes, and the process
exits 0 with its state intact. All of it within ``--drain-timeout`` seconds: past that bound, or on a
second signal, the workers are killed and the server exits 1 at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Optional

import uvicorn

from ..bundle.signature import key_from_token
from ..state.atomic import write_atomically
from ..state.lock import try_hold
from ..state.paths import default_state_dir, read_server_info
from .app import create_server_app, server_host_names
from .auth import ensure_token
from .core import FunctionService
from .front import Front, bind_relay_listener, uvicorn_protocol_factory
from .layout import Layout
from .resolvers import make_resolver
from .sandbox import SandboxUnavailable, choose
from .settings import ServingSettings, from_arguments

DEFAULT_HOST = "127.0.0.1"  # exposing functions beyond this machine is the operator's decision
_POLL_INTERVAL = 1.0  # watching a pid where pidfd_open is unavailable (macOS, old Linux)
_COLLECT_INTERVAL = 3600.0  # unused environments are looked for at start-up and then hourly

log = logging.getLogger("jupyterlab_publish.functions")


class AlreadyRunning(Exception):
    pass


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with our signal handling: the first SIGTERM/SIGINT drains, a second forces.

    uvicorn itself forces only on a second SIGINT, and re-raises the signal after a graceful
    shutdown, so the process would die of it instead of exiting 0.
    """

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.exit_requested_at: Optional[float] = None

    def handle_exit(self, sig, frame) -> None:
        if self.should_exit:
            self.force_exit = True
        else:
            self.exit_requested_at = time.monotonic()
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _hold_run_lock(layout: Layout) -> int:
    """Lock held for the server's lifetime (released by the OS if it dies): one server per state dir."""
    fd = try_hold(layout.run_lock)
    if fd is None:
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


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but it exists
    return True


async def _wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` (not our child) has exited."""
    try:
        pidfd = os.pidfd_open(pid)  # Linux: readable when the process exits, no polling
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is None:
        while _pid_exists(pid):
            await asyncio.sleep(_POLL_INTERVAL)
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def serve(host: str = DEFAULT_HOST, port: int = 0, state_dir=None, *, log_level: str = "info",
          environments: Optional[str] = None, offline: bool = False, find_links=(),
          settings: Optional[ServingSettings] = None, exit_with_pid: Optional[int] = None,
          base_python: Optional[str] = None, unused_env_days: Optional[float] = None) -> int:
    """Serve until SIGTERM/SIGINT (or until process ``exit_with_pid`` exits); return the exit status."""
    # Our own messages (worker restarts, failed admin requests) go to the same log as uvicorn's.
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    if exit_with_pid is not None and (exit_with_pid <= 0 or not _pid_exists(exit_with_pid)):
        print(f"error: --exit-with-pid {exit_with_pid}: no such process", file=sys.stderr, flush=True)
        return 2
    layout = Layout(state_dir if state_dir is not None else default_state_dir())
    layout.create()
    os.chmod(layout.root, 0o700)  # an existing directory may be wider: it holds the token and every key
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

        try:
            # environments None: $JUPYTERLAB_PUBLISH_ENVIRONMENTS, else uv (see environment.py).
            resolver = make_resolver(environments, layout.root / "envs", offline=offline, find_links=find_links,
                                     base_python=base_python, unused_days=unused_env_days)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        settings = settings or ServingSettings()
        try:
            sandbox = choose(settings.sandbox_mode, layout.root)
        except SandboxUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        # The Host names served: loopback, the bound address, and what --allowed-host adds (DNS rebinding).
        settings = dataclasses.replace(settings, sandbox=sandbox,
                                       allowed_hosts=server_host_names(host, settings.allowed_hosts))
        # Workers relay the requests that are not theirs here; this listener never hands off (no loops).
        relay_sock, relay_url = bind_relay_listener(sock)
        if sandbox.secrets_hidden:
            log.info("workers run in a bubblewrap sandbox: the state directory is hidden from function code")
        else:
            log.warning("workers run WITHOUT a sandbox (%s): function code runs as this user and could read "
                        "the admin token and state.db by path; install bubblewrap (scripts/install-sandbox.sh)",
                        sandbox.reason)
        # Publishers sign bundles with the key derived from this token; the server checks it.
        service = FunctionService(layout, resolver, signing_key=key_from_token(token), settings=settings,
                                  admin_token=token, upstream=relay_url)
        app = create_server_app(service, token, on_shutdown=lambda: layout.remove_server_info(pid))
        config = uvicorn.Config(app, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=settings.drain_timeout, http=_fastest("httptools", "h11"))
        server = _DrainingServer(config)
        forced = []

        async def run() -> None:
            # uvicorn gets no listening socket: the front door accepts every connection, hands
            # function calls to their workers and gives the rest to uvicorn (see front.py).
            task = asyncio.create_task(server.serve(sockets=[]))
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            front = None
            if server.started:
                loop = asyncio.get_running_loop()
                protocol = uvicorn_protocol_factory(server, header_timeout=settings.header_timeout)
                front = Front(sock, service.workers,
                              lambda conn: loop.create_task(loop.connect_accepted_socket(protocol, conn)),
                              service.counters, relay_listener=relay_sock, header_timeout=settings.header_timeout)
                front.start()
                started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                layout.write_server_info({"pid": pid, "url": url, "started": started, "exit_with_pid": exit_with_pid,
                                          "sandbox": sandbox.describe()})
                write_atomically(layout.last_port, str(bound_port), mode=0o600)
                print(f"serving functions at {url} (state in {layout.root})", flush=True)
            watcher = asyncio.create_task(_exit_with(exit_with_pid)) if exit_with_pid is not None else None
            guard = asyncio.create_task(_drain(task, front))
            collector = asyncio.create_task(_collect_environments()) if server.started else None
            try:
                await task
            finally:
                for helper in (watcher, guard, collector):
                    if helper is not None:
                        helper.cancel()
                if front is not None:
                    await front.close()

        async def _drain(task: asyncio.Task, front: Optional[Front]) -> None:
            """Once asked to exit: stop accepting at once; force the exit past the bound or on a second signal."""
            while not server.should_exit:
                await asyncio.sleep(0.05)
            deadline = (server.exit_requested_at or time.monotonic()) + settings.drain_timeout
            log.info("draining: finishing the calls in progress (at most %g s; signal again to stop now)",
                     settings.drain_timeout)
            if front is not None:
                await front.close()
            sock.close()  # new connections are refused from here on; those in progress go on
            while not task.done() and not server.force_exit and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if task.done():
                return
            forced.append(True)
            log.warning("stopping now: %s", "asked twice" if server.force_exit else
                        f"the calls in progress did not finish within {settings.drain_timeout:g} s")
            server.force_exit = True
            for pool in list(service.workers.values()):
                pool.kill_now()

        async def _collect_environments() -> None:
            """Remove environments no stored version needs (uv_environments.UvEnvironments.collect)."""
            collect = getattr(resolver, "collect", None)
            while collect is not None and not server.should_exit:
                try:
                    await asyncio.to_thread(collect, service.store.known_bundle_dirs())
                except Exception:  # bookkeeping: never take the server down over it
                    log.exception("collecting unused environments failed")
                await asyncio.sleep(_COLLECT_INTERVAL)

        async def _exit_with(watched: int) -> None:
            await _wait_for_exit(watched)
            log.info("process %s exited; stopping the function server with it", watched)
            server.handle_exit(signal.SIGTERM, None)  # the same graceful shutdown as SIGTERM

        try:
            with asyncio.Runner(loop_factory=_fastest_loop_factory()) as runner:
                runner.run(run())
        finally:
            layout.remove_server_info(pid)
            relay_sock.close()
        return 1 if forced else 0
    finally:
        os.close(lock_fd)


def serve_from_arguments(options: argparse.Namespace) -> int:
    """``serve`` with the flags of ``settings.add_arguments`` (``jupyter publish serve``, ``__main__``)."""
    try:
        settings = from_arguments(options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(options.host, options.port, options.state_dir, settings=settings,
                 exit_with_pid=options.exit_with_pid, log_level=options.log_level,
                 environments=options.environments, offline=options.offline, find_links=options.find_links,
                 base_python=options.base_python, unused_env_days=options.unused_env_days)


def _fastest(preferred: str, fallback: str) -> str:
    """uvicorn's name for the faster implementation when it is installed (httptools parses in C)."""
    return preferred if importlib.util.find_spec(preferred) is not None else fallback


def _fastest_loop_factory():
    if sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None:
        import uvloop  # optional: found by find_spec above

        return uvloop.new_event_loop
    return None


__all__ = ["DEFAULT_HOST", "serve", "serve_from_arguments"]
