"""Worker processes: each live version runs in ``processes`` copies of the bundle's own ``service.py``.

The function never runs inside the server (or the kernel): a crash, a leak or a blocking call in
user code takes down only its worker. A ``WorkerPool`` per live version starts its processes,
watches them (exit, or /healthz silent for ``health_timeout``) and restarts each one with
exponential backoff, independently of every other pool. How a worker is started and called follows
the manifest's runtime contract (``runtime_features``; docs/bundle-format.md, "Runtime contracts").

What the server's front door (``front.py``) and ``/metrics`` use, through ``FunctionService.workers``
(name -> the live version's ``WorkerPool``):

- ``pool.next_handoff_socket()``: the control socket of the next alive worker that accepts
  connections (round robin), or None (then the server proxies);
- ``pool.next_worker()`` / ``pool.url``: a worker to proxy to / the first one's URL;
- ``pool.worker_urls()``: every alive process, for scraping ``/stats``;
- ``pool.alive()``, ``await pool.stop()``, ``pool.restarts``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Optional

import httpx

from ..bundle.format import runtime_contract
from ..errors import PublishError
from ..state.logs import tail
from .environment import WorkerEnvironment
from .handoff_slots import HandedConnections
from .sandbox import Sandbox, private_workdir
from .settings import ServingSettings

log = logging.getLogger("jupyterlab_publish.functions")

WORKER_HOST = "127.0.0.1"  # workers are reached only through the server (proxy or handoff)
DEFAULT_START_TIMEOUT = 30.0
LOG_TAIL_LINES = 30
# The accepted keys' digests, for a runtime that checks keys (docs/bundle-format.md, "Invocation keys").
KEYS_ENV = "JUPYTERLAB_PUBLISH_KEYS_SHA256"
# worker.log is rotated when it has grown past this (checked when a process starts and every few
# seconds while it runs): worker.log.1 keeps the previous part, so a chatty function costs about
# twice this much disk per version.
LOG_ROTATE_BYTES = 10 * 1024 * 1024
LOG_CHECK_INTERVAL = 5.0
SANDBOX_INFO_TIMEOUT = 10.0  # for bwrap to report the sandboxed process's pid

# Supervision: crashed workers come back after 0.5 s, 1 s, 2 s ... at most 30 s apart; a process
# that has served for a minute is healthy again and its next crash restarts it after 0.5 s.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_RESET = 60.0
WATCH_INTERVAL = 0.25
HEALTH_INTERVAL = 1.0
# A request for a function whose workers are all down waits for a restart due within this long;
# beyond it (a crash loop in backoff) it is answered 503 at once.
WAIT_FOR_RESTART = 5.0


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


# -- what a bundle's runtime supports --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RuntimeFeatures:
    """How the server starts and calls a bundle's runtime: what its runtime contract promises."""

    contract: int  # the manifest's runtime contract (docs/bundle-format.md, "Runtime contracts")
    flags: frozenset  # the optional worker flags its service.py takes ("Worker command line")
    checks_keys: bool  # it enforces KEYS_ENV itself; if not, the server checks the key before proxying


# Every flag a server may pass beyond --host and --port, in the order it passes them.
WORKER_FLAGS = ("--name", "--handoff-fd", "--upstream", "--timeout", "--concurrency", "--max-body",
                "--allowed-hosts", "--slots-fd")
RUNTIME_CONTRACTS = {
    1: RuntimeFeatures(1, frozenset({"--max-body"}), checks_keys=False),
    2: RuntimeFeatures(2, frozenset(WORKER_FLAGS[:6]), checks_keys=True),
    3: RuntimeFeatures(3, frozenset(WORKER_FLAGS), checks_keys=True),
}


def runtime_features(manifest: dict) -> RuntimeFeatures:
    """What the bundle's runtime supports, read from its manifest (never probed: nothing runs)."""
    contract = runtime_contract(manifest)
    features = RUNTIME_CONTRACTS.get(contract)
    if features is None:  # parse_manifest refuses these already; a store written by a newer server may not
        raise PublishError(
            "invalid_bundle", f"the bundle's runtime speaks runtime contract {contract}, which this function "
            f"server does not know (it knows {', '.join(map(str, sorted(RUNTIME_CONTRACTS)))})",
            "upgrade jupyterlab-publish where the function server runs",
        )
    return features


def _worker_env(keys_sha256, sandbox: Sandbox) -> dict:
    env = sandbox.environment(dict(os.environ))  # without the admin token or the state directory's path
    env[KEYS_ENV] = ",".join(keys_sha256)
    return env


def _read_sandbox_pid(info_read: int) -> Optional[int]:
    """The pid (in our namespace) of the process bwrap runs, from its --info-fd JSON; None if it exited."""
    chunks = []
    deadline = time.monotonic() + SANDBOX_INFO_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([info_read], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(info_read, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        try:
            return int(json.loads(b"".join(chunks))["child-pid"])
        except (ValueError, KeyError, TypeError):
            continue  # not all of it yet
    return None


def rotate_log(path: Path, limit: int = LOG_ROTATE_BYTES) -> bool:
    """Once ``path`` is larger than ``limit`` bytes, copy it to ``path.1`` and empty it; True if it did.

    Copy and truncate rather than rename: running workers keep writing (O_APPEND) to the file they
    opened, which a rename would leave growing as ``path.1``. Lines written between the copy and the
    truncation are lost; that is the price of bounding a log nobody else rotates.
    """
    try:
        if path.stat().st_size <= limit:
            return False
        rotated = path.with_name(path.name + ".1")
        shutil.copyfile(path, rotated)
        os.chmod(rotated, 0o600)  # a function's output is for its owner only
        os.truncate(path, 0)
        return True
    except FileNotFoundError:
        return False


@dataclasses.dataclass(frozen=True)
class Launch:
    """Everything needed to start one process of a version; shared by the processes of a pool."""

    name: str
    version: int
    version_dir: Path
    environment: WorkerEnvironment
    settings: ServingSettings
    features: RuntimeFeatures
    keys_sha256: tuple = ()  # empty: public
    upstream: str = ""  # the server's URL, where a handed-off connection's other requests go
    allowed_hosts: tuple = ()  # the Host names the server answers to (contract 3 workers check them too)


def worker_allowed_hosts(launch: Launch) -> tuple:
    """The Host names a contract-3 worker accepts: the server's, as ``launch.allowed_hosts`` lists them,
    else the host of the server's own URL (and, for loopback, its other loopback names), any port."""
    if launch.allowed_hosts:
        return tuple(launch.allowed_hosts)
    host = urllib.parse.urlsplit(launch.upstream).hostname if launch.upstream else None
    if not host:
        return ()
    names = [f"[{host}]" if ":" in host else host]
    if host in ("127.0.0.1", "::1", "localhost"):
        names += ["127.0.0.1", "localhost", "[::1]"]
    return tuple(dict.fromkeys(names))


# -- one process -----------------------------------------------------------------------------------


class Worker:
    def __init__(self, launch: Launch, index: int = 0):
        self.launch = launch
        self.index = index
        self.name = launch.name
        self.version = launch.version
        self.version_dir = Path(launch.version_dir)
        self.bundle_dir = self.version_dir / "bundle"
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        # Our end of the AF_UNIX pair over which the front passes accepted connections
        # (docs/bundle-format.md, "Connection hand-off").
        self.handoff_socket: Optional[socket.socket] = None
        self.handoff_ready = False  # set once its /healthz says it serves handed-off connections
        # Contract 3: our copies of the connections handed to it and the slot table saying what
        # each is doing, so that clients get an answer if it dies (handoff_slots.py).
        self.connections: Optional[HandedConnections] = None
        self.started_at = 0.0
        self.last_healthy = 0.0
        self.sandbox = launch.settings.sandbox or Sandbox("fallback")
        self.sandboxed_pid: Optional[int] = None  # the worker itself inside bwrap (self.process is bwrap)
        self.workdir: Optional[Path] = None  # fallback mode: its private working directory

    @property
    def url(self) -> str:
        return f"http://{WORKER_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.version_dir / "worker.log"  # shared by the version's processes (appends)

    @property
    def pid_path(self) -> Path:
        return self.version_dir / ("worker.pid" if self.index == 0 else f"worker-{self.index}.pid")

    @property
    def pid(self) -> Optional[int]:
        """The worker's own process (inside bwrap, the sandboxed one, not bwrap)."""
        if self.sandboxed_pid is not None:
            return self.sandboxed_pid
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        """The worker's exit status as Popen gives it (-N: killed by signal N), also through bwrap,
        which exits 128+N when the process it runs is killed by signal N."""
        code = self.process.returncode if self.process is not None else None
        if code is not None and self.sandboxed_pid is not None and 128 < code < 128 + 65:
            return 128 - code
        return code

    def _command(self, handoff_fd: Optional[int], info_fd: Optional[int] = None, slots_fd: Optional[int] = None) -> list:
        launch, flags = self.launch, self.launch.features.flags
        command = list(launch.environment.command(self.bundle_dir, WORKER_HOST, self.port))
        wanted = [
            ("--name", launch.name),
            ("--handoff-fd", handoff_fd),
            ("--upstream", launch.upstream or None),
            ("--timeout", launch.settings.request_timeout),
            ("--concurrency", launch.settings.concurrency),
            ("--max-body", launch.settings.max_body),
            ("--allowed-hosts", ",".join(worker_allowed_hosts(launch)) or None),
            ("--slots-fd", slots_fd),
        ]
        for flag, value in wanted:
            if flag in flags and value is not None:
                command += [flag, str(value)]
        environment = launch.environment
        return self.sandbox.wrap(command, python=environment.python, isolated=environment.isolated,
                                 bundle_dir=self.bundle_dir, info_fd=info_fd)

    def spawn(self) -> None:
        self.port = free_port()
        child = None
        if "--handoff-fd" in self.launch.features.flags and hasattr(socket, "send_fds"):
            self.handoff_socket, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.handoff_socket.setblocking(False)  # the front must never wait on a busy worker
        info_read = info_write = None
        if self.sandbox.mode == "bwrap":
            info_read, info_write = os.pipe()  # bwrap writes the sandboxed pid here (--info-fd)
        else:
            self.workdir = private_workdir()
        slots_fd = None
        if child is not None and "--slots-fd" in self.launch.features.flags:
            self.connections = HandedConnections(self.name)
            slots_fd = self.connections.fd
        passed = tuple(fd for fd in (child.fileno() if child is not None else None, info_write, slots_fd)
                       if fd is not None)
        try:
            command = self._command(child.fileno() if child is not None else None, info_write, slots_fd)
            rotate_log(self.log_path)
            env = _worker_env(self.launch.keys_sha256, self.sandbox)
            credentials, how = {}, "in a bubblewrap sandbox"
            if self.workdir is not None:  # the fallback mode (sandbox.py)
                env.update(TMPDIR=str(self.workdir))
                environment = self.launch.environment
                run_as, why_not = self.sandbox.fallback_user(environment.python, environment.isolated,
                                                             self.bundle_dir, self.workdir)
                if run_as is not None:
                    credentials = {"user": run_as[0], "group": run_as[1], "extra_groups": []}
                    env["HOME"] = str(self.workdir)
                    how = f"without a sandbox, as {self.sandbox.user}"
                else:
                    how = ("without a sandbox, as the server's user: function code can read the server's "
                           f"secrets{'; ' + why_not if why_not else ''}")
            with open(self.log_path, "ab") as log_file:
                log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting on port {self.port}"
                               f" (process {self.index + 1} of {self.launch.settings.processes}, {how})\n".encode())
                log_file.flush()
                self.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    # Never inside the state directory: bwrap starts it in its private /tmp.
                    cwd=str(self.workdir) if self.workdir is not None else "/",
                    env=env, pass_fds=passed, **credentials,
                )
            if info_read is not None:
                os.close(info_write)
                info_write = None
                self.sandboxed_pid = _read_sandbox_pid(info_read)
        except BaseException:
            self._close_handoff()
            self._remove_workdir()
            self._answer_handed("did not start")
            raise
        finally:
            if child is not None:
                child.close()  # the worker holds its own copy
            for fd in (info_read, info_write):
                if fd is not None:
                    os.close(fd)
        self.started_at = time.monotonic()
        # Recorded so a server that was killed hard can stop its orphans on the next start.
        self.pid_path.write_text(str(self.pid), "utf-8")

    def _close_handoff(self) -> None:
        self.handoff_ready = False
        if self.handoff_socket is not None:
            self.handoff_socket.close()
            self.handoff_socket = None

    def _remove_workdir(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def terminate(self) -> None:
        """SIGTERM the worker (inside bwrap, the sandboxed process: bwrap itself would not pass it on)."""
        if self.process is None or self.process.poll() is not None:
            return
        if self.sandboxed_pid is not None:
            try:
                os.kill(self.sandboxed_pid, signal.SIGTERM)
                return
            except ProcessLookupError:
                pass
        self.process.terminate()

    def kill(self) -> None:
        """SIGKILL the worker (inside bwrap, the sandboxed process too: its namespace ends with it)."""
        if self.sandboxed_pid is not None and self.alive():
            try:
                os.kill(self.sandboxed_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def stop_blocking(self, timeout: float = 5.0) -> None:
        self._close_handoff()
        if self.process is not None and self.process.poll() is None:
            self.terminate()  # it finishes the calls in progress, within its own grace period
            try:
                self._wait_draining(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.process.wait()
        self._answer_handed(self._exit_reason())
        self._remove_workdir()
        try:
            self.pid_path.unlink()
        except OSError:
            pass

    async def stop(self, timeout: float = 5.0) -> None:
        await asyncio.to_thread(self.stop_blocking, timeout)

    # -- handed-off connections (contract 3; handoff_slots.py) -----------------------------------

    def hand_off(self, conn: socket.socket, serve_locally=None) -> bool:
        """Pass an accepted connection to this worker; False if it cannot take it now. ``serve_locally``
        (called on the running loop) serves a connection of this worker that the server takes back."""
        control = self.handoff_socket
        if control is None:
            return False
        if self.connections is None:
            try:
                socket.send_fds(control, [b"c"], [conn.fileno()])  # contract 2: one byte per descriptor
            except OSError:
                return False
            conn.close()  # the worker holds its own descriptor now; the connection stays open
            return True
        return self.connections.hand_off(control, conn, serve_locally)

    def _wait_draining(self, timeout: float) -> None:
        """Wait for the SIGTERMed process to exit (TimeoutExpired after ``timeout``), meanwhile serving
        the idle connections it releases (contract 3) so their next requests are not kept waiting."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.process.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
            connections = self.connections
            if connections is not None:
                connections.sweep()

    def _exit_reason(self) -> str:
        code = self.returncode
        if code is None or code == 0:
            return "stopped"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def _answer_handed(self, why: str) -> None:
        """Once the process is gone: answer the clients it left (502 mid-call, 503 unread), close the rest."""
        connections, self.connections = self.connections, None
        if connections is not None:
            connections.worker_gone(why)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def note(self, message: str) -> None:
        """A line in worker.log from the server (why it restarted the worker), next to its output."""
        try:
            with open(self.log_path, "a", encoding="utf-8") as log_file:
                log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        except OSError:
            pass


async def _wait_healthy(worker: Worker, client: httpx.AsyncClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise WorkerStartError(
                f"the worker for {worker.name} v{worker.version} exited during start-up "
                f"(status {worker.returncode})",
                worker.log_tail(),
            )
        try:
            response = await client.get(worker.url + "/healthz", timeout=2.0)
            if response.status_code == 200:
                try:
                    health = response.json()
                except ValueError:
                    health = {}
                worker.handoff_ready = (worker.handoff_socket is not None and isinstance(health, dict)
                                        and health.get("handoff") is True)
                worker.last_healthy = time.monotonic()
                return
        except httpx.TransportError:
            pass  # not listening yet
        await asyncio.sleep(0.05)
    await worker.stop()
    raise WorkerStartError(
        f"the worker for {worker.name} v{worker.version} did not answer /healthz within {timeout:.0f} s",
        worker.log_tail(),
    )


async def start_worker(launch: Launch, client: httpx.AsyncClient, timeout: float = DEFAULT_START_TIMEOUT,
                       index: int = 0) -> Worker:
    """Start one process and return it once it answers /healthz; raise WorkerStartError otherwise."""
    for attempt in range(3):
        worker = Worker(launch, index)
        worker.spawn()
        try:
            await _wait_healthy(worker, client, timeout)
            return worker
        except WorkerStartError as exc:
            lost_port_race = "address already in use" in exc.log.lower()
            if not lost_port_race or attempt == 2:
                await worker.stop()
                raise
        except BaseException:  # cancelled (the pool is stopping): leave no process behind
            await asyncio.shield(worker.stop(timeout=1.0))
            raise
    raise AssertionError("unreachable")


# -- the processes of one live version -------------------------------------------------------------


def backoff(crashes: int) -> float:
    """Seconds before restarting a process that has crashed ``crashes`` times in a row (>= 1)."""
    return min(BACKOFF_FIRST * 2 ** max(crashes - 1, 0), BACKOFF_MAX)


@dataclasses.dataclass(eq=False)
class _Slot:
    index: int
    worker: Optional[Worker] = None
    crashes: int = 0  # in a row; reset after HEALTHY_RESET seconds of service
    restart_at: float = 0.0
    restarting: Optional[asyncio.Task] = None
    probing: Optional[asyncio.Task] = None


class WorkerPool:
    """The ``processes`` workers of one live version, supervised. See the module doc for its API."""

    def __init__(self, launch: Launch, client: httpx.AsyncClient, start_timeout: float = DEFAULT_START_TIMEOUT,
                 counters: Optional[dict] = None):
        self.launch = launch
        self.client = client
        self.start_timeout = start_timeout
        self.counters = counters if counters is not None else {}
        self.slots = [_Slot(i) for i in range(launch.settings.processes)]
        self.restarts = 0
        self.closed = False
        self._next = 0
        self._watching: Optional[asyncio.Task] = None
        self._changed = asyncio.Event()  # set whenever a process comes up

    @property
    def name(self) -> str:
        return self.launch.name

    @property
    def version(self) -> int:
        return self.launch.version

    @property
    def version_dir(self) -> Path:
        return Path(self.launch.version_dir)

    @property
    def checks_keys(self) -> bool:
        return self.launch.features.checks_keys

    # -- what callers read -----------------------------------------------------------------------

    def running(self) -> list:
        return [slot.worker for slot in self.slots if slot.worker is not None and slot.worker.alive()]

    def alive(self) -> bool:
        return bool(self.running())

    def worker_urls(self) -> list:
        return [worker.url for worker in self.running()]

    def pids(self) -> list:
        return [worker.pid for worker in self.running()]

    @property
    def url(self) -> str:
        running = self.running()
        if not running:
            raise WorkerStartError(f"no worker of {self.name} v{self.version} is running", self.log_tail())
        return running[0].url

    def _round_robin(self, candidates: list):
        if not candidates:
            return None
        self._next = (self._next + 1) % len(candidates)
        return candidates[self._next]

    def next_worker(self) -> Optional[Worker]:
        return self._round_robin(self.running())

    def next_handoff_socket(self) -> Optional[socket.socket]:
        worker = self.next_handoff_worker()
        return worker.handoff_socket if worker is not None else None

    def next_handoff_worker(self) -> Optional[Worker]:
        """The next alive worker that takes connections (``worker.hand_off(conn)``), or None."""
        return self._round_robin([w for w in self.running() if w.handoff_ready and w.handoff_socket is not None])

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.version_dir / "worker.log", lines)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every process (raise WorkerStartError, leaving none, if one fails), then supervise."""
        started = await asyncio.gather(
            *(start_worker(self.launch, self.client, self.start_timeout, slot.index) for slot in self.slots),
            return_exceptions=True,
        )
        failures = [result for result in started if isinstance(result, BaseException)]
        if failures:
            await asyncio.gather(*(w.stop() for w in started if isinstance(w, Worker)))
            raise failures[0]
        for slot, worker in zip(self.slots, started):
            slot.worker = worker
        self.supervise()

    def supervise(self) -> None:
        """Watch the processes from now on; slots without one are started (used after a server restart)."""
        if self._watching is None and not self.closed:
            self._watching = asyncio.create_task(self._watch(), name=f"watch {self.name} v{self.version}")

    async def wait_alive(self, timeout: float) -> bool:
        """True once a process runs; False after ``timeout`` or at once if every restart is far off."""
        deadline = time.monotonic() + timeout
        while not self.alive():
            if self.closed:
                return False
            self._check_slots()  # notice a death now rather than at the next tick
            now = time.monotonic()
            due = min(slot.restart_at for slot in self.slots)
            if due - now > WAIT_FOR_RESTART or now >= deadline:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(deadline - now, WATCH_INTERVAL * 4))
            except asyncio.TimeoutError:
                pass
        return True

    async def stop(self) -> None:
        self.closed = True
        tasks = [self._watching] + [t for s in self.slots for t in (s.restarting, s.probing)]
        tasks = [task for task in tasks if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Each process gets SIGTERM and finishes its calls in progress, for at most the drain timeout.
        drain = self.launch.settings.drain_timeout
        await asyncio.gather(*(slot.worker.stop(drain) for slot in self.slots if slot.worker is not None),
                             return_exceptions=True)

    def kill_now(self) -> None:
        """SIGKILL every process at once (a forced shutdown: a second SIGTERM, or the drain bound passed)."""
        self.closed = True
        for slot in self.slots:
            if slot.worker is not None and slot.worker.alive():
                slot.worker.kill()

    def report_unreachable(self, worker: Worker) -> None:
        """The proxy could not connect to ``worker``: treat it as crashed (kill it, restart it)."""
        for slot in self.slots:
            if slot.worker is worker and slot.restarting is None:
                self._restart(slot, "refused a connection", kill=True)

    # -- supervision -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        log_checked = time.monotonic()
        while not self.closed:
            try:
                self._check_slots()
                if time.monotonic() - log_checked >= LOG_CHECK_INTERVAL:
                    log_checked = time.monotonic()
                    await asyncio.to_thread(rotate_log, self.version_dir / "worker.log")
            except Exception:  # supervision must outlive any surprise in one round
                log.exception("supervising %s v%s failed", self.name, self.version)
            await asyncio.sleep(WATCH_INTERVAL)

    def _check_slots(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            worker = slot.worker
            if slot.restarting is not None or self.closed:
                continue
            if worker is None:
                self._restart(slot, "not running")
            elif not worker.alive():
                self._restart(slot, f"exited with status {worker.returncode}")
            elif now - worker.last_healthy > self.launch.settings.health_timeout:
                self._restart(slot, f"has not answered /healthz for {self.launch.settings.health_timeout:g} s",
                              kill=True)
            else:
                connections = worker.connections
                if connections is not None:
                    connections.sweep()  # our copies of the connections it has closed
                if slot.crashes and now - worker.started_at >= HEALTHY_RESET:
                    slot.crashes = 0
                if slot.probing is None and now - worker.last_healthy >= HEALTH_INTERVAL:
                    slot.probing = asyncio.create_task(self._probe(slot, worker))

    async def _probe(self, slot: _Slot, worker: Worker) -> None:
        try:
            response = await self.client.get(
                worker.url + "/healthz", timeout=min(5.0, self.launch.settings.health_timeout))
            if response.status_code == 200:
                worker.last_healthy = time.monotonic()
        except httpx.HTTPError:
            pass  # counted by last_healthy not advancing
        finally:
            slot.probing = None

    def _restart(self, slot: _Slot, why: str, kill: bool = False) -> None:
        old = slot.worker
        if old is not None:
            slot.crashes += 1
            delay = backoff(slot.crashes)
            message = f"process {slot.index + 1} {why}; restarting it in {delay:g} s"
            log.warning("worker for %s v%s (pid %s) %s", self.name, self.version, old.pid, message)
            old.note(message)
            old._close_handoff()  # the front must stop handing it connections at once
            if kill and old.alive():
                old.kill()  # it may be stuck where SIGTERM is never handled
        else:
            delay = backoff(slot.crashes) if slot.crashes else 0.0  # a first start does not wait
        slot.restart_at = time.monotonic() + delay
        slot.restarting = asyncio.create_task(self._restart_slot(slot, old, delay))

    async def _restart_slot(self, slot: _Slot, old: Optional[Worker], delay: float) -> None:
        try:
            if old is not None:
                await old.stop(timeout=2.0)  # reaps it and removes its pid file
            while not self.closed:
                await asyncio.sleep(max(0.0, slot.restart_at - time.monotonic()))
                try:
                    worker = await start_worker(self.launch, self.client, self.start_timeout, slot.index)
                except WorkerStartError as exc:
                    slot.crashes += 1
                    slot.restart_at = time.monotonic() + backoff(slot.crashes)
                    log.error("could not restart %s v%s: %s", self.name, self.version, exc.message)
                    continue
                except OSError as exc:  # e.g. the interpreter vanished: keep trying, slowly
                    slot.crashes += 1
                    slot.restart_at = time.monotonic() + backoff(slot.crashes)
                    log.error("could not restart %s v%s: %s", self.name, self.version, exc)
                    continue
                slot.worker = worker
                if old is not None:
                    self.restarts += 1
                    self.counters["worker_restarts"] = self.counters.get("worker_restarts", 0) + 1
                self._changed.set()
                return
        finally:
            slot.restarting = None


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
    """Stop the workers left running by a server that died without cleaning up.

    A pid is trusted only if that process still runs this version's service.py, so a pid the OS
    has since given to an unrelated process is left alone.
    """
    for pid_path in Path(version_dir).glob("worker*.pid"):
        try:
            pid = int(pid_path.read_text("utf-8").strip())
        except (OSError, ValueError):
            continue
        if sys.platform != "win32" and str(Path(version_dir) / "bundle" / "service.py") in _command_line(pid):
            try:
                os.kill(pid, signal.SIGKILL)  # it may be stuck; its state is the bundle, nothing to flush
            except OSError:
                pass
        try:
            pid_path.unlink()
        except OSError:
            pass
