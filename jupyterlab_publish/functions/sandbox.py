"""Where a worker runs, and what of this machine it can see: function code never reaches the server's secrets.

A worker runs user code. The state directory holds the admin token (``token``), ``server.json``,
``state.db`` (every function's key) and every other function's bundle, so a worker must not see it.
Two modes, chosen once when the server starts (``--sandbox`` or ``JUPYTERLAB_PUBLISH_SANDBOX``):

``bwrap`` (the default where bubblewrap is installed and passes its self-test)
    The worker runs inside a bubblewrap sandbox: a new mount, PID, IPC and UTS namespace showing
    only /usr, /lib*, /bin, a few files of /etc (name resolution, TLS roots, time zone, users), the
    Python installation its environment links to, its environment and its bundle (all read-only),
    a private /tmp (its working directory and $HOME) and /dev, /proc of its own. The state
    directory is an empty tmpfs in there, so the token, ``server.json``, ``state.db`` and other
    functions' files do not exist for it and nothing can be written there. The network is the
    host's (workers listen on 127.0.0.1 and may call out). The worker's hand-off socket is an
    inherited descriptor, which bwrap passes on like any other. The worker is the sandbox's PID 1
    (``--as-pid-1``) so the server's SIGTERM reaches it and it drains its calls; killing it ends the
    sandbox. Like an unsandboxed worker it outlives a server killed with SIGKILL, and the next server
    stops it (its pid file names it).

``fallback`` (no bubblewrap, or it fails its self-test: e.g. a container without namespaces)
    The worker's working directory, ``$TMPDIR`` and ``$HOME`` are a private directory outside the
    state directory, and the admin token and state directory's path are kept out of its environment.
    File permissions do the rest, and they only bind another user:

    - a server running as root starts each worker as an unprivileged account (``nobody``, or
      ``$JUPYTERLAB_PUBLISH_WORKER_USER``) when that account can run the worker's interpreter and
      read its bundle (checked per interpreter). The state directory and the directories down to the
      bundle and environment become 0711 (enter, not list), the bundle and environment readable,
      and the token, ``server.json``, ``state.db*``, ``last_port`` and worker logs 0600: the
      worker can neither read them nor write anywhere in the state directory. It could still read
      another function's bundle whose name it knows;
    - otherwise (a server that is not root, or an interpreter the account cannot reach, e.g. under
      /root) the worker runs as the server's user, which can open the token by path: this stops
      accidents, not a function written to steal it. The server says so in worker.log.

    The server logs a warning and reports ``"secrets_hidden": false``; install bubblewrap
    (``scripts/install-sandbox.sh``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

try:
    import pwd  # POSIX only: accounts to run fallback workers as
except ImportError:
    pwd = None

log = logging.getLogger("jupyterlab_publish.functions")

SANDBOX_ENV = "JUPYTERLAB_PUBLISH_SANDBOX"
SANDBOX_CHOICES = ("auto", "bwrap", "fallback")
SELF_TEST_TIMEOUT = 20.0
# Read by name resolution, TLS, time zones, locale and user lookups; nothing else of /etc is shown.
ETC_ESSENTIALS = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "gai.conf", "group", "host.conf", "hosts",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types", "nsswitch.conf", "os-release",
    "passwd", "pki", "protocols", "resolv.conf", "services", "ssl", "timezone", "xml",
)
# Top-level system directories (each a directory or, on merged-/usr systems, a symlink into /usr).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Environment variables a worker must not inherit: the admin token and where the state lives.
HIDDEN_ENV = ("JUPYTERLAB_PUBLISH_TOKEN", "JUPYTERLAB_PUBLISH_STATE_DIR")
SANDBOX_TMP = "/tmp"  # inside bwrap: a private tmpfs, the worker's working directory and $HOME
WORKER_USER_ENV = "JUPYTERLAB_PUBLISH_WORKER_USER"
DEFAULT_WORKER_USER = "nobody"
# What the state directory holds that no worker may read (fallback mode; bwrap hides all of it).
SECRET_FILES = ("token", "server.json", "state.db", "state.db-wal", "state.db-shm", "state.db-journal", "last_port")


class SandboxUnavailable(Exception):
    """``--sandbox bwrap`` was asked for but cannot work here; the message says why."""


def requested_mode(cli_value: Optional[str] = None) -> str:
    """The mode asked for: the flag, else ``$JUPYTERLAB_PUBLISH_SANDBOX``, else auto."""
    value = (cli_value or os.environ.get(SANDBOX_ENV, "") or "auto").strip().lower()
    if value not in SANDBOX_CHOICES:
        raise ValueError(f"sandbox {value!r}: use one of {', '.join(SANDBOX_CHOICES)} ({SANDBOX_ENV} or --sandbox)")
    return value


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """How workers of one server are confined; ``wrap`` turns a worker command into its sandboxed form."""

    mode: str  # "bwrap" or "fallback"
    state_dir: Optional[Path] = None  # hidden from workers (bwrap: an empty tmpfs over it)
    bwrap: Optional[str] = None  # the bwrap executable (mode "bwrap")
    reason: str = ""  # why this mode is in force (for the log and server.json)
    user: Optional[str] = None  # fallback under root: the unprivileged account workers run as, if it can

    @property
    def secrets_hidden(self) -> bool:
        return self.mode == "bwrap"

    def describe(self) -> dict:
        """What ``server.json`` and the log say about worker isolation."""
        described = {"mode": self.mode, "secrets_hidden": self.secrets_hidden, "reason": self.reason}
        if self.mode == "fallback":
            described["worker_user"] = self.user  # None: the server's own user
        return described

    def fallback_user(self, python: str, isolated: bool, bundle_dir: Path, workdir: Path):
        """Fallback mode: ``(uid, gid)`` to run a worker as, after opening the way to its bundle and
        environment and closing the state directory's secrets; None (and why) to run it as we are."""
        if self.mode != "fallback" or self.user is None:
            return None, ""
        account = pwd.getpwnam(self.user)
        # First whether the account can start the interpreter at all (one under /root it cannot):
        # if not, nothing is opened up for it.
        base = os.path.realpath(python)  # a venv's python is a link to its base interpreter
        problem = "" if self._inside_state(Path(base)) else _runs_as(account, base, True, None, Path("/"))
        if problem:
            return None, f"{self.user} cannot run {base} ({problem})"
        bundle_dir = Path(bundle_dir)
        readable = [bundle_dir] + [p for p in python_paths(python, isolated) if self._inside_state(p)]
        self._close_secrets()
        for path in readable:
            self._open_path_to(path)
        os.chown(workdir, account.pw_uid, account.pw_gid)
        problem = _runs_as(account, python, isolated, bundle_dir / "service.py", workdir)
        if problem:
            os.chown(workdir, os.geteuid(), os.getegid())
            return None, f"{self.user} cannot read the bundle ({problem})"
        return (account.pw_uid, account.pw_gid), ""

    def _inside_state(self, path: Path) -> bool:
        return self.state_dir is not None and path.exists() and _is_within(path.resolve(), self.state_dir)

    def _close_secrets(self) -> None:
        if self.state_dir is None:
            return
        for name in SECRET_FILES:
            try:
                os.chmod(self.state_dir / name, 0o600)
            except FileNotFoundError:
                pass
        for log_file in self.state_dir.glob("functions/*/v*/worker.log*"):
            os.chmod(log_file, 0o600)

    def _open_path_to(self, path: Path) -> None:
        """Directories from the state directory down to ``path``: enter-only (0711); ``path`` itself readable."""
        path = path.resolve()
        for directory in reversed(path.parents):
            if _is_within(directory, self.state_dir):
                os.chmod(directory, 0o711)
        stat = path.stat()
        identity = (path, stat.st_ino, stat.st_ctime_ns)  # a directory removed and written again is new
        if identity in _opened:
            return  # bundles and environments do not change once written: walked once is enough
        for root, dirs, files in os.walk(path):
            os.chmod(root, os.stat(root).st_mode | 0o555)
            for name in files:
                file_path = os.path.join(root, name)
                if not os.path.islink(file_path):
                    os.chmod(file_path, os.stat(file_path).st_mode | 0o444)
        _opened.add((path, stat.st_ino, path.stat().st_ctime_ns))

    def environment(self, base: dict) -> dict:
        env = {k: v for k, v in base.items() if k not in HIDDEN_ENV}
        if self.mode == "bwrap":
            # The host's home and temporary directories do not exist in the sandbox.
            env.update(HOME=SANDBOX_TMP, TMPDIR=SANDBOX_TMP)
        return env

    def wrap(self, command: Sequence[str], *, python: str, isolated: bool, bundle_dir: Path,
             info_fd: Optional[int] = None) -> list:
        """``command`` as it must be run in this mode (unchanged in fallback)."""
        if self.mode != "bwrap":
            return list(command)
        return [*bwrap_arguments(self.bwrap, self.state_dir, python_paths(python, isolated), [Path(bundle_dir)],
                                 info_fd=info_fd), "--", *command]


def bwrap_arguments(bwrap: str, state_dir: Optional[Path], readable: Sequence[Path], bundles: Sequence[Path],
                    info_fd: Optional[int] = None) -> list:
    """The bwrap command line up to ``--``: the system, ``readable`` paths and ``bundles``, read-only."""
    args = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--new-session", "--as-pid-1"]
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC_ESSENTIALS:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",  # CPU counts (numpy, torch)
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", SANDBOX_TMP, "--chdir", SANDBOX_TMP]
    state = Path(state_dir).resolve() if state_dir is not None else None
    inside, outside = [], []
    for path in _without_nested(readable + list(bundles)):
        (inside if state is not None and _is_within(path, state) else outside).append(path)
    for path in outside:
        args += ["--ro-bind", str(path), str(path)]
    if state is not None:
        # Whatever a bind above showed of the state directory is covered by an empty one; the
        # environment and bundle inside it are bound again on top.
        args += ["--tmpfs", str(state)]
    for path in inside:
        args += ["--ro-bind", str(path), str(path)]
    if state is not None:
        args += ["--remount-ro", str(state)]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    return args


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _without_nested(paths: Sequence[Path]) -> list:
    """Existing, resolved paths, without those inside another one (bound once, by their ancestor)."""
    resolved = sorted({Path(p).resolve() for p in paths if p and Path(p).exists()}, key=lambda p: len(p.parts))
    kept: list = []
    for path in resolved:
        if path == Path("/") or any(_is_within(path, other) for other in kept):
            continue
        kept.append(path)
    return kept


_PATHS_PROBE = (
    "import json, os, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,"
    " os.path.realpath(sys.executable)] + [p for p in sys.path if p]))"
)
_paths_cache: dict = {}
_opened: set = set()  # bundles and environments made readable for fallback workers (sandbox.fallback_user)


def python_paths(python: str, isolated: bool) -> list:
    """What an interpreter reads: its prefixes (a venv's and the installation it links to) and sys.path.

    Asked of the interpreter itself, with the flags the worker runs it with, so ``.pth`` entries
    (editable installs) are included. Paths under /usr are already shown; the state directory is
    covered again by ``bwrap_arguments`` whatever this returns.
    """
    key = (python, isolated)
    if key not in _paths_cache:
        flags = ["-E", "-s"] if isolated else []
        done = subprocess.run([python, *flags, "-c", _PATHS_PROBE], capture_output=True, text=True,
                              timeout=SELF_TEST_TIMEOUT, stdin=subprocess.DEVNULL, cwd="/")
        if done.returncode != 0:
            raise OSError(f"{python} could not report its paths: {done.stderr.strip()[-500:]}")
        paths = [Path(p) for p in json.loads(done.stdout)]
        # The interpreter itself: a venv's bin/python is a symlink into the base installation.
        paths.append(Path(os.path.realpath(python)).parent)
        _paths_cache[key] = [p for p in paths if not _is_within(p.resolve() if p.exists() else p, Path("/usr"))]
    return list(_paths_cache[key])


def self_test(bwrap: str, state_dir: Optional[Path]) -> Optional[str]:
    """None if a bwrap sandbox works here and hides ``state_dir``; else what went wrong."""
    python = sys.executable
    probe = (
        "import os, sys; state = sys.argv[1]; "
        "print('visible' if state and os.path.isdir(state) and os.listdir(state) else 'hidden')"
    )
    try:
        command = [*bwrap_arguments(bwrap, state_dir, python_paths(python, False), []), "--",
                   python, "-c", probe, str(state_dir or "")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=SELF_TEST_TIMEOUT,
                              stdin=subprocess.DEVNULL, cwd="/")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not run: {exc}"
    if done.returncode != 0:
        return f"bwrap failed its self-test (exit status {done.returncode}): {done.stderr.strip()[-300:]}"
    if done.stdout.strip() != "hidden":
        return "bwrap ran, but the state directory was still visible inside the sandbox"
    return None


def _runs_as(account, python: str, isolated: bool, service: Optional[Path], workdir: Path) -> str:
    """"" if ``account`` can start ``python`` (and read ``service``); else what failed."""
    flags = ["-E", "-s"] if isolated else []
    check = "import sys; sys.argv[1] and open(sys.argv[1], 'rb').close()"
    try:
        done = subprocess.run([python, *flags, "-c", check, str(service or "")],
                              capture_output=True, text=True, timeout=SELF_TEST_TIMEOUT, cwd=str(workdir),
                              stdin=subprocess.DEVNULL, user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]


def _worker_account() -> Optional[str]:
    """The unprivileged account a root server runs fallback workers as, if there is one."""
    if pwd is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    name = os.environ.get(WORKER_USER_ENV, "").strip() or DEFAULT_WORKER_USER
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        log.warning("%s=%s: no such user; fallback workers run as root", WORKER_USER_ENV, name)
        return None
    return name if account.pw_uid != 0 else None


def choose(requested: str, state_dir: Optional[Path]) -> Sandbox:
    """The sandbox for ``requested`` (auto, bwrap, fallback); raise SandboxUnavailable if bwrap was
    required and cannot work."""
    state = Path(state_dir).resolve() if state_dir is not None else None
    if requested == "fallback":
        return Sandbox("fallback", state, reason="asked for (--sandbox fallback)", user=_worker_account())
    bwrap = shutil.which("bwrap") if sys.platform.startswith("linux") else None
    problem = "bubblewrap (bwrap) is not installed" if bwrap is None else self_test(bwrap, state)
    if problem is None:
        return Sandbox("bwrap", state, bwrap=bwrap, reason="bubblewrap passed its self-test")
    if requested == "bwrap":
        raise SandboxUnavailable(f"--sandbox bwrap: {problem}")
    return Sandbox("fallback", state, reason=problem, user=_worker_account())


def private_workdir() -> Path:
    """A fresh working directory outside the state directory, for a worker in the fallback mode."""
    return Path(tempfile.mkdtemp(prefix="jupyterlab-publish-worker-"))


__all__ = ["SANDBOX_CHOICES", "SANDBOX_ENV", "Sandbox", "SandboxUnavailable", "choose", "private_workdir",
           "requested_mode"]
