"""Isolated environments built with uv: one per lock hash, shared by every version that has it.

```
<envs>/<hash>/                        a virtual environment holding only the bundle's requirements
<envs>/<hash>/jupyterlab-publish.json {"hash", "python", "minor", "requirements", "created", "last_used", ...}
<envs>/.<hash>.lock                   held while the environment is checked or built
<envs>/.<hash>.<random>.building/     an environment being built (renamed to <hash> when complete)
```

The hash covers the Python minor version and the normalised lines of the bundle's requirements.txt
(and of requirements.lock when the bundle has one), so two publishes with the same requirements get
the same environment, built once. Building happens in a temporary directory beside the final one
and ends with a rename, so an environment directory either is complete or does not exist; a crash
mid-build leaves only a ``.building`` directory, removed by the next build of that hash.

Unused environments are removed: one that no stored version (live, or retired and so a rollback
target) needs and that has not been used for ``unused_days`` days is deleted when the server starts
and every hour after (``collect``), under its hash lock so a publish that wants it waits or rebuilds.

Supply chain. A lock whose every line carries ``--hash=sha256:...`` is installed as it stands with
``--require-hashes``: every file uv installs must match. (The kernel can only record the hash of a
distribution it installed from an archive, so its locks are hashed where it knows: uv checks those
hashes as constraints.) A locked distribution with an ``origin`` in the manifest (installed in the
kernel from a directory, a VCS URL or an archive, not from an index) is never looked up on the
index, where another package could own its name: it is installed from a ``--find-links`` wheelhouse
that holds that name and version (pinned to that file), and the publish is refused, naming it,
when none does.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..bundle.format import LOCK_FILE, MANIFEST, REQUIREMENTS_FILE
from ..requirement import Requirement, canonical_name
from ..state.atomic import write_atomically
from ..state.lock import exclusive_lock
from .environment import EnvironmentMismatch, EnvironmentResolver, WorkerEnvironment, check_python_minor

log = logging.getLogger("jupyterlab_publish.functions")

METADATA_FILE = "jupyterlab-publish.json"
COMPILED_MARKER = ".jupyterlab-publish-compiled"  # bytecode written (see UvEnvironments._compile_later)
# Environments whose bytecode is being written now, across resolvers of this process.
_COMPILING: set = set()
_COMPILING_GUARD = threading.Lock()
DEFAULT_INSTALL_TIMEOUT = 900.0  # seconds for one `uv pip install`; large ML stacks are slow
DEFAULT_UNUSED_DAYS = 7.0  # an environment no version needs is kept this long after its last use
_ERROR_TAIL_LINES = 25


class EnvironmentBuildFailed(EnvironmentMismatch):
    """uv could not build the environment; ``message`` ends with the tail of uv's output."""


def find_uv() -> str:
    """The uv executable: the one the ``uv`` wheel installed, else ``uv`` on PATH."""
    try:
        import uv  # the PyPI wheel ships the binary and says where it is

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise EnvironmentMismatch(
        "cannot build the function's environment: uv is not installed where the function server runs",
        f"install it into the server's environment ({sys.executable} -m pip install uv), or start the "
        "server with --environments shared (JUPYTERLAB_PUBLISH_ENVIRONMENTS=shared) to run every "
        "function on the server's own interpreter",
    )


def venv_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def canonical_requirement_lines(text: str) -> list:
    """The requirement lines of a requirements file in a canonical, sorted form (for hashing).

    Comments, blank lines, line continuations, spacing, name spelling (``Scikit_Learn``) and order
    do not change what gets installed, so they do not change the hash either.
    """
    joined = re.sub(r"\\\r?\n", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        written, _, options = line.partition(" --")
        parsed = Requirement.read(written)
        if parsed is None:
            lines.append(" ".join(line.split()))  # an option line (-c, --index-url...): keep as written
            continue
        extras = f"[{','.join(parsed.extras)}]" if parsed.extras else ""  # canonical and sorted already
        url = f" @ {parsed.url}" if parsed.url else ""
        marker = f"; {parsed.marker}" if parsed.marker else ""
        canonical = f"{parsed.key}{extras}{parsed.specifier}{url}{marker}"
        if options:
            canonical += " " + " ".join(sorted(("--" + options).split()))
        lines.append(canonical)
    return sorted(lines)


def lock_hash(minor: str, requirements: str, lock: Optional[str] = None) -> str:
    parts = [f"python {minor}", *canonical_requirement_lines(requirements)]
    if lock is not None:
        parts += ["[lock]", *canonical_requirement_lines(lock)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def fully_hashed(lock: Optional[str]) -> bool:
    """True if every requirement line of the lock pins a version and carries a sha256 hash."""
    if not lock:
        return False
    lines = [line for line in canonical_requirement_lines(lock) if not line.startswith("-")]
    return bool(lines) and all("==" in line and "--hash=sha256:" in line for line in lines)


def _wheelhouse_files(directories: Sequence[Path], name: str, version: str) -> list:
    """The wheels, then the sdists, of ``name`` ``version`` in the wheelhouses."""
    wanted_name, wheels, sdists = canonical_name(name), [], []
    try:
        wanted_version = Version(version)
    except InvalidVersion:
        return []
    for directory in directories:
        for path in sorted(directory.iterdir()):
            try:
                if path.name.endswith(".whl"):
                    file_name, file_version, _, _ = parse_wheel_filename(path.name)
                    found = wheels
                elif path.name.endswith((".tar.gz", ".zip")):
                    file_name, file_version = parse_sdist_filename(path.name)
                    found = sdists
                else:
                    continue
            except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
                continue
            if file_name == wanted_name and file_version == wanted_version:
                found.append(path)
    return wheels + sdists


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lowest_priority() -> None:
    os.nice(19)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _tail(text: str, lines: int = _ERROR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class UvEnvironments(EnvironmentResolver):
    """Give each bundle a virtual environment holding only its requirements, built by uv.

    ``offline`` installs without any network access (``--offline --no-index``), from ``find_links``
    directories (wheelhouses) and uv's cache only; ``find_links`` alone adds local wheels to the index.
    """

    def __init__(self, root, *, python: str = sys.executable, offline: bool = False,
                 find_links: Sequence = (), install_timeout: float = DEFAULT_INSTALL_TIMEOUT,
                 unused_days: float = DEFAULT_UNUSED_DAYS):
        self.root = Path(root)
        self.python = python
        self.minor = "{}.{}".format(*sys.version_info[:2]) if python == sys.executable else _minor_of(python)
        self.offline = offline
        self.find_links = [Path(directory).expanduser().resolve() for directory in find_links]
        self.install_timeout = install_timeout
        self.unused_days = unused_days
        for directory in self.find_links:
            if not directory.is_dir():
                raise ValueError(f"--find-links {directory}: not a directory")

    # -- EnvironmentResolver ---------------------------------------------------------------------

    def prepare(self, manifest: dict, version_dir: Path) -> WorkerEnvironment:
        bundle_dir = Path(version_dir) / "bundle"
        wanted = str((manifest.get("python") or {}).get("minor") or "")
        requirements, lock = self._requirement_texts(manifest, bundle_dir)
        key = lock_hash(wanted, requirements, lock)
        env_dir = self.root / key
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._hash_lock(key):
            if not self._usable(env_dir):
                pinned_files = self._local_distributions(manifest)  # refuses before anything is installed
                base = self._interpreter_for(wanted)
                self._build(key, env_dir, base, wanted, bundle_dir, requirements, lock, manifest, pinned_files)
            self._touch(env_dir)
        self._compile_later(env_dir)
        return WorkerEnvironment(python=str(venv_python(env_dir)), minor=wanted, isolated=True)

    def collect(self, bundle_dirs) -> list:
        """Remove the environments none of ``bundle_dirs`` needs that were last used more than
        ``unused_days`` ago; return their hashes. A bundle that cannot be read keeps everything."""
        needed = set()
        for bundle_dir in map(Path, bundle_dirs):
            try:
                manifest = json.loads((bundle_dir / MANIFEST).read_text("utf-8"))
                requirements, lock = self._requirement_texts(manifest, bundle_dir)
            except (OSError, ValueError, EnvironmentMismatch) as exc:
                log.warning("not collecting environments: cannot tell what %s needs (%s)", bundle_dir, exc)
                return []
            needed.add(lock_hash(str((manifest.get("python") or {}).get("minor") or ""), requirements, lock))
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=self.unused_days)
        removed = []
        for env_dir in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            key = env_dir.name
            if key in needed or key.startswith(".") or not env_dir.is_dir():
                continue
            try:
                last_used = datetime.datetime.fromisoformat(
                    json.loads((env_dir / METADATA_FILE).read_text("utf-8"))["last_used"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being built, or not ours: leave it
            if last_used > cutoff:
                continue
            try:
                with exclusive_lock(self.root / f".{key}.lock", 0.1, on_timeout=_still_building):
                    shutil.rmtree(env_dir)
            except EnvironmentBuildFailed:
                continue  # a publish is using it right now
            log.info("removed environment %s, unused since %s", key[:12], last_used.isoformat())
            removed.append(key)
        return removed

    # -- the pieces ------------------------------------------------------------------------------

    @staticmethod
    def _requirement_texts(manifest: dict, bundle_dir: Path):
        files = manifest.get("files") or {}
        try:
            requirements = (bundle_dir / REQUIREMENTS_FILE).read_text("utf-8")
            lock = (bundle_dir / LOCK_FILE).read_text("utf-8") if LOCK_FILE in files else None
        except OSError as exc:
            raise EnvironmentMismatch(f"cannot read the bundle's requirements: {exc}",
                                      "publish the function again") from exc
        return requirements, lock

    def _local_distributions(self, manifest: dict) -> list:
        """``name @ file://...`` for each locked distribution that did not come from an index, found in
        the wheelhouses; EnvironmentMismatch naming those that are not there."""
        pinned, missing = [], []
        for entry in manifest.get("lock") or ():
            if not isinstance(entry, dict) or not entry.get("origin"):
                continue
            name, version = str(entry.get("name", "")), str(entry.get("version", ""))
            candidates = _wheelhouse_files(self.find_links, name, version)
            wanted = entry.get("sha256")
            if wanted:  # the kernel knows the very file it installed: only that one will do
                candidates = [path for path in candidates if _sha256_of(path) == wanted]
            if not candidates:
                same = f" with the sha256 {wanted} of the file the kernel installed" if wanted else ""
                missing.append(f"{name} {version}{same} (installed in the kernel from {entry['origin']})")
            else:
                pinned.append(f"{name} @ {candidates[0].as_uri()}")
        if missing:
            where = ("; the wheelhouses given to --find-links (" + ", ".join(map(str, self.find_links)) +
                     ") do not hold them") if self.find_links else ""
            raise EnvironmentMismatch(
                "the function needs distributions that were not installed from a package index: "
                f"{'; '.join(missing)}. The server does not look them up on its index, where another "
                f"package could own the same name{where}",
                "build a wheel of each (pip wheel --no-deps <its directory or URL> -w WHEELHOUSE) and start the "
                "function server with --find-links WHEELHOUSE, or publish them to an index the server trusts and "
                "reinstall them from there in the kernel",
            )
        return pinned

    def _interpreter_for(self, wanted: str) -> str:
        """The base interpreter for the bundle's Python minor: the server's, or one uv finds locally."""
        if wanted == self.minor:
            return self.python
        if re.fullmatch(r"3\.[0-9]+", wanted):
            # --no-python-downloads: finding an interpreter must not fetch one (and works air-gapped).
            found = subprocess.run([find_uv(), "python", "find", "--no-python-downloads", "--no-project", wanted],
                                   capture_output=True, text=True, timeout=60, cwd=str(self.root))
            path = found.stdout.strip()
            if found.returncode == 0 and path and _minor_of(path) == wanted:
                return path
        check_python_minor(wanted, self.minor, f"uv found no Python {wanted or '(unknown)'} interpreter on this "
                                               "machine either")
        raise AssertionError("unreachable: the minor versions differ")

    def _compile_later(self, env_dir: Path) -> None:
        """Write the environment's bytecode (.pyc) in the background, once.

        uv installs sources only, and a sandboxed worker sees its environment read-only, so without
        this every worker start compiles what it imports again: about 2 s of a 3 s start for
        scikit-learn. Compiling the whole environment takes several seconds of CPU, so it is not
        done while the first version starts: it runs after, at the lowest priority, and the next
        start finds the bytecode. The server writes it, outside any sandbox, so functions that share
        the environment cannot plant bytecode for each other.
        """
        if (env_dir / COMPILED_MARKER).exists():
            return
        with _COMPILING_GUARD:
            if env_dir in _COMPILING:
                return
            _COMPILING.add(env_dir)
        threading.Thread(target=self._compile, args=(env_dir,), name="jupyterlab-publish-compile",
                         daemon=True).start()

    def _compile(self, env_dir: Path) -> None:
        try:
            # lib64 is a link to lib in a venv: one directory, compiled once.
            sites = sorted({str(path.resolve()) for path in env_dir.glob("lib*/python*/site-packages") if path.is_dir()})
            if not sites:
                return
            done = subprocess.run(
                [str(venv_python(env_dir)), "-E", "-s", "-m", "compileall", "-q", "-j", "0", *sites],
                capture_output=True, text=True, timeout=self.install_timeout, cwd=str(env_dir),
                preexec_fn=_lowest_priority if os.name == "posix" else None,
            )
            # A file that does not compile (a py2 leftover in some package) is not worth a warning per start.
            write_atomically(env_dir / COMPILED_MARKER, json.dumps({"compiled": _now(), "exit": done.returncode}))
        except (OSError, subprocess.SubprocessError) as exc:  # a missed speed-up, never a failure
            log.warning("could not precompile %s: %s", env_dir, exc)
        finally:
            with _COMPILING_GUARD:
                _COMPILING.discard(env_dir)

    def _usable(self, env_dir: Path) -> bool:
        # The metadata file is written before the rename, so its presence means the build finished;
        # the interpreter link breaks if the base Python was removed since.
        return (env_dir / METADATA_FILE).is_file() and venv_python(env_dir).exists()

    def _build(self, key: str, env_dir: Path, base: str, minor: str, bundle_dir: Path,
               requirements: str, lock: Optional[str], manifest: dict, pinned_files: Sequence = ()) -> None:
        uv = find_uv()
        for stale in self.root.glob(f".{key}.*.building"):  # left by a crash; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if env_dir.exists():  # incomplete or broken: rebuild from scratch
            shutil.rmtree(env_dir, ignore_errors=True)
        name = manifest.get("name", "the function")
        log.info("building environment %s for %s (Python %s)", key[:12], name, minor)
        started = time.monotonic()
        building = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".building", dir=self.root))
        try:
            # --relocatable: the environment is built under a temporary name and then renamed.
            self._run(uv, ["venv", "--python", base, "--relocatable", "--no-project", "--no-python-downloads",
                           "--quiet", str(building)], "create the virtual environment", name)
            install = ["pip", "install", "--python", str(venv_python(building)), "--no-python-downloads"]
            hashed = fully_hashed(lock)
            if hashed:
                # Every file must match the lock's hashes; the lock is then the complete list.
                install += ["-r", str(bundle_dir / LOCK_FILE), "--require-hashes"]
            else:
                install += ["-r", str(bundle_dir / REQUIREMENTS_FILE)]
            if lock is not None and not hashed:
                # The lock pins the whole closure; as constraints it fixes versions without adding
                # packages the platform here does not need (and uv checks the hashes it carries).
                install += ["-c", str(bundle_dir / LOCK_FILE)]
            if pinned_files:
                # Distributions the index must not supply, pinned to their wheelhouse files.
                local = building / "local-distributions.txt"
                local.write_text("".join(f"{line}\n" for line in pinned_files), "utf-8")
                install += ["-c", str(local)]
            if self.offline:
                install += ["--offline", "--no-index"]
            for directory in self.find_links:
                install += ["--find-links", str(directory)]
            self._run(uv, install, "install the function's requirements", name)
            seconds = round(time.monotonic() - started, 3)
            metadata = {
                "hash": key, "python": base, "minor": minor, "requirements": canonical_requirement_lines(requirements),
                "locked": lock is not None, "hashes_required": hashed, "from_wheelhouse": list(pinned_files),
                "offline": self.offline, "created": _now(), "build_seconds": seconds,
                "built_for": name, "last_used": _now(),
            }
            write_atomically(building / METADATA_FILE, json.dumps(metadata, indent=1))
            os.rename(building, env_dir)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        log.info("built environment %s in %.1f s", key[:12], seconds)

    def _run(self, uv: str, arguments: list, what: str, name: str) -> None:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)  # uv must act on --python, never on an activated environment
        try:
            done = subprocess.run([uv, *arguments], capture_output=True, text=True, timeout=self.install_timeout,
                                  cwd=str(self.root), env=env)
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentBuildFailed(
                f"could not build the environment for {name}: uv did not {what} within {self.install_timeout:.0f} s",
                "check the network or the package index, or install from a local wheelhouse "
                "(jupyter publish serve --offline --find-links DIR)",
            ) from exc
        if done.returncode != 0:
            where = "from --find-links " + ", ".join(map(str, self.find_links)) if self.offline else "from the index"
            raise EnvironmentBuildFailed(
                f"could not build the environment for {name}: uv failed to {what} "
                f"(exit status {done.returncode}):\n{_tail(done.stderr or done.stdout)}",
                f"check the requirements (each name and version must be installable {where}); "
                "the previous version, if any, is still serving",
            )

    def _touch(self, env_dir: Path) -> None:
        """Record when the environment was last used, so unused ones can be found and removed."""
        path = env_dir / METADATA_FILE
        try:
            metadata = json.loads(path.read_text("utf-8"))
            metadata["last_used"] = _now()
            write_atomically(path, json.dumps(metadata, indent=1))
        except (OSError, ValueError) as exc:  # bookkeeping only: never fail a publish over it
            log.warning("could not record the use of %s: %s", env_dir, exc)

    def _hash_lock(self, key: str):
        return exclusive_lock(self.root / f".{key}.lock", self.install_timeout * 2 + 60, on_timeout=_still_building)


def _still_building(expired) -> EnvironmentBuildFailed:
    return EnvironmentBuildFailed(
        f"another publish has been building the same environment for more than {expired.timeout:.0f} s",
        "try again later; if no publish is running, restart the function server",
    )


def _minor_of(python: str) -> str:
    done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else ""
