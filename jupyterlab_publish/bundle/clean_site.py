"""A site directory holding only some installed distributions, for the pre-flight check.

``distribution_closure`` is the lock of the declared requirements (``frontier.lock``: ``Requires-Dist``
followed through installed metadata, markers and extras included); ``link_site`` mirrors those
distributions into an empty directory with symlinks, so a ``python -I -S`` child whose ``sys.path``
is the standard library plus that directory imports exactly what the service's environment will
hold, without copying anything.

What is linked is what each distribution's RECORD lists (its package directories, ``.libs``
directories of manylinux wheels, compiled extensions, its ``.dist-info``). A directory is linked
whole when no other installed distribution has module files under it, which keeps a
scikit-learn closure at a few dozen links; shared directories (namespace packages such as
``google/``) are created for real and their entries linked one by one. Standard library only
(requirements are read by ``jupyterlab_publish.requirement``), like the rest of the kernel side.
"""

from __future__ import annotations

import bisect
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from jupyterlab_publish.frontier.distributions import get_index
from jupyterlab_publish.frontier.lock import LockRoot, lock_closure
from jupyterlab_publish.requirement import Requirement, canonical_name

DECLARED = "declared"


@dataclass
class ClosureEntry:
    """One distribution of the closure, and who required it ("declared" for the roots)."""

    distribution: importlib.metadata.Distribution
    name: str
    version: str
    required_by: list[str]


@dataclass
class Closure:
    entries: dict[str, ClosureEntry] = field(default_factory=dict)  # canonical name -> entry
    not_installed: list[str] = field(default_factory=list)  # declared distributions this kernel lacks

    def describe(self) -> list[str]:
        return [f"{e.name} {e.version}" for e in self.entries.values()]


def distribution_closure(requirements: Iterable[Requirement]) -> Closure:
    """The installed distributions ``requirements`` need (their extras' too), dependencies included.

    A requirement whose marker fails in this interpreter is not for it, so it adds nothing.
    """
    roots = [LockRoot.of(r, DECLARED) for r in requirements if r.applies() is not False]
    lock = lock_closure(roots)
    index = get_index()
    closure = Closure(not_installed=[m.name for m in lock.missing if DECLARED in m.required_by])
    for entry in lock.entries:
        key = canonical_name(entry.name)
        dist = index.by_key.get(key)
        if dist is not None:
            # the installed version: a declared pin that differs cannot be checked here
            closure.entries[key] = ClosureEntry(dist, entry.name, dist.version, list(entry.required_by))
    return closure


# ── Linking ────────────────────────────────────────────────────────────────────────────────────


def link_site(closure: Closure, dest: Path) -> list[str]:
    """Mirror the closure's distributions into ``dest`` (an empty directory) with symlinks.

    Returns further directories the child must put on ``sys.path``: the source trees of editable
    installs, which a ``.pth`` file adds in a normal environment and ``-S`` switches off.
    """
    linker = _Linker(dest)
    for key, entry in closure.entries.items():
        linker.link_distribution(key, entry.distribution)
    return linker.extra_paths


class _Linker:
    def __init__(self, dest: Path):
        self.dest = dest
        self.extra_paths: list[str] = []
        index = get_index()
        self._owners = index.by_file  # normalised module file -> distribution keys
        self._sorted_files = _sorted_module_files(index)
        self._editable = getattr(index, "editable", {})  # key -> (.pth roots, finder mapping)

    def link_distribution(self, key: str, dist: importlib.metadata.Distribution) -> None:
        self._link_editable(key)
        base = Path(os.path.realpath(str(dist.locate_file(""))))
        files = _recorded_files(dist)
        if files is None:
            self._link_without_record(dist, base)
            return
        tree: dict = {}
        for parts in files:
            if parts[-1].endswith(".pth"):
                continue  # site is off in the child; editable installs are handled above
            node = tree
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if node is None:  # a file and a directory of the same name: RECORD is broken
                    break
            else:
                node.setdefault(parts[-1], None)
        for name, node in tree.items():
            self._link(base / name, self.dest / name, node, key)

    def _link(self, source: Path, target: Path, node: dict | None, key: str) -> None:
        if node is None:  # a file
            if not os.path.lexists(target) and os.path.exists(source):
                os.symlink(source, target)
            return
        if not source.is_dir():
            return
        if not os.path.lexists(target) and not self._shared(source, key):
            os.symlink(source, target, target_is_directory=True)
            return
        _make_real_directory(target)
        for name, child in node.items():
            self._link(source / name, target / name, child, key)

    def _shared(self, directory: Path, key: str) -> bool:
        """Does another installed distribution have module files under ``directory``?"""
        prefix = os.path.normcase(str(directory)) + os.sep
        position = bisect.bisect_left(self._sorted_files, prefix)
        for path in self._sorted_files[position:]:
            if not path.startswith(prefix):
                return False
            if any(owner != key for owner in self._owners[path]):
                return True
        return False

    def _link_editable(self, key: str) -> None:
        """An editable install's code lives in a work tree that a .pth file or finder puts on the path."""
        roots, mapping = self._editable.get(key, ([], {}))
        for root in roots:
            if root not in self.extra_paths:
                self.extra_paths.append(root)
        for name, path in mapping.items():  # setuptools' finder: {top-level name: path}
            source = Path(path)
            # a package directory is imported by the name, a module file by the name plus its suffix
            target = self.dest / (name if source.is_dir() else name + "".join(source.suffixes))
            if source.exists() and not os.path.lexists(target):
                os.symlink(source, target, target_is_directory=source.is_dir())

    def _link_without_record(self, dist: importlib.metadata.Distribution, base: Path) -> None:
        """System and conda packages may lack RECORD: link their top-level packages and metadata."""
        metadata_dir = getattr(dist, "_path", None)  # PathDistribution's .dist-info/.egg-info
        if metadata_dir is not None and Path(metadata_dir).exists():
            target = self.dest / Path(metadata_dir).name
            if not os.path.lexists(target):
                os.symlink(Path(metadata_dir).resolve(), target, target_is_directory=Path(metadata_dir).is_dir())
        tops = (dist.read_text("top_level.txt") or "").split() or [
            (dist.metadata["Name"] or "").replace("-", "_")
        ]
        for top in tops:
            for candidate in [base / top, *base.glob(f"{top}.*")]:
                if candidate.name.split(".")[0] != top or not candidate.exists():
                    continue
                if candidate.is_dir() or candidate.suffix in (".py", ".so", ".pyd") or ".cpython-" in candidate.name:
                    target = self.dest / candidate.name
                    if not os.path.lexists(target):
                        os.symlink(candidate, target, target_is_directory=candidate.is_dir())


def _recorded_files(dist: importlib.metadata.Distribution) -> list[tuple[str, ...]] | None:
    """RECORD's paths as parts, minus anything outside the site directory (scripts, data files)."""
    try:
        files = dist.files
    except Exception:
        return None
    if files is None:
        return None
    out = []
    for record in files:
        parts = Path(str(record)).parts
        if not parts or parts[0] in ("..", "/") or Path(str(record)).is_absolute() or ".." in parts:
            continue
        out.append(parts)
    return out


def _make_real_directory(target: Path) -> None:
    """Turn a linked directory into a real one holding links to its entries (or create it)."""
    if target.is_symlink():
        source = Path(os.readlink(target))
        target.unlink()
        target.mkdir()
        for entry in os.scandir(source):
            os.symlink(entry.path, target / entry.name, target_is_directory=entry.is_dir())
    elif not target.exists():
        target.mkdir()


_sorted_cache: list = [None, []]  # [index, its module files sorted], rebuilt with the index


def _sorted_module_files(index) -> list[str]:
    if _sorted_cache[0] is not index:
        _sorted_cache[:] = [index, sorted(index.by_file)]
    return _sorted_cache[1]
