"""Which installed distribution provides a module, read from installed metadata.

The file that defines a module is the most reliable key: RECORD lists every file a distribution
installed, so import names that differ from distribution names (sklearn -> scikit-learn) resolve
without a table. System and conda packages often ship without RECORD, hence the fallbacks to
top_level.txt, to ``packages_distributions()`` and finally to the module's own name.

The index is built once per process and rebuilt only when a directory on ``sys.path`` changes
(``pip install`` touches site-packages), so a lookup after the first costs a few dictionary reads.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import os
import re
import sys
import threading
from dataclasses import dataclass, field

from .paths import in_site_packages, normalize_path

_MODULE_SUFFIXES = tuple(importlib.machinery.all_suffixes())


def canonicalize_name(name: str) -> str:
    """PEP 503 normal form: lowercase, runs of ``-_.`` become one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class DistributionMatch:
    """The distribution chosen for a module, how it was found, and who else claimed the module."""

    name: str  # the distribution's own Name metadata
    version: str | None
    source: str  # "RECORD", "top_level.txt", "packages_distributions", "module name"
    others: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def reason(self) -> str:
        text = f"{self.name} found by {self.source}"
        if self.others:
            text += f"; also provided by {', '.join(self.others)}, chose {self.name} (first by name)"
        return text


@dataclass
class _Index:
    fingerprint: tuple
    by_key: dict[str, importlib.metadata.Distribution] = field(default_factory=dict)
    by_file: dict[str, list[str]] = field(default_factory=dict)
    by_top_level: dict[str, list[str]] = field(default_factory=dict)
    module_files: dict[str, list[str]] = field(default_factory=dict)  # key -> its module files
    # per-index memo for callers (module name -> classification); dropped with the index
    cache: dict = field(default_factory=dict)
    _packages: dict[str, list[str]] | None = None

    def packages(self) -> dict[str, list[str]]:
        if self._packages is None:
            try:
                self._packages = dict(importlib.metadata.packages_distributions())
            except Exception:  # broken metadata somewhere must not break analysis
                self._packages = {}
        return self._packages


_lock = threading.Lock()
_index: _Index | None = None


def _path_fingerprint() -> tuple:
    """sys.path plus the mtimes of its site directories: installing a distribution changes one.

    Other entries (the notebook's own directory) change on every save and rarely hold metadata.
    """
    stamps = []
    for entry in sys.path:
        stamp = None
        if entry and in_site_packages(entry):
            try:
                stamp = os.stat(entry).st_mtime_ns
            except OSError:
                pass
        stamps.append((entry, stamp))
    return tuple(stamps)


def _dist_name(dist: importlib.metadata.Distribution) -> str | None:
    try:
        return dist.metadata["Name"]
    except Exception:
        return None


def _add_distribution(index: _Index, dist: importlib.metadata.Distribution) -> None:
    name = _dist_name(dist)
    if not name:
        return
    key = canonicalize_name(name)
    if key in index.by_key:
        return  # shadowed by an earlier sys.path entry, as import would be
    index.by_key[key] = dist
    try:
        files = dist.files or ()
        base = os.path.realpath(str(dist.locate_file("")))
    except Exception:
        files, base = (), ""
    module_files = []
    for record in files:
        text = str(record)
        if text.endswith(_MODULE_SUFFIXES):
            path = os.path.normcase(os.path.normpath(os.path.join(base, text)))
            index.by_file.setdefault(path, []).append(key)
            module_files.append(path)
    index.module_files[key] = module_files
    top_level = dist.read_text("top_level.txt") or ""
    for line in top_level.split():
        index.by_top_level.setdefault(line.strip(), []).append(key)


def _build_index(fingerprint: tuple) -> _Index:
    index = _Index(fingerprint)
    for dist in importlib.metadata.distributions():
        _add_distribution(index, dist)
    return index


def get_index() -> _Index:
    global _index
    fingerprint = _path_fingerprint()
    with _lock:
        if _index is None or _index.fingerprint != fingerprint:
            _index = _build_index(fingerprint)
        return _index


def invalidate_caches() -> None:
    """Forget the index (call after installing into the running environment by other means)."""
    global _index
    with _lock:
        _index = None


def _choose(index: _Index, keys: list[str], source: str) -> DistributionMatch | None:
    keys = sorted(set(keys))
    if not keys:
        return None
    chosen = index.by_key.get(keys[0])
    others = tuple(_display_name(index, k) for k in keys[1:])
    if chosen is None:  # packages_distributions() can name a distribution the index skipped
        return DistributionMatch(keys[0], installed_version(keys[0]), source, others)
    return DistributionMatch(_dist_name(chosen) or keys[0], chosen.version, source, others)


def _display_name(index: _Index, key: str) -> str:
    dist = index.by_key.get(key)
    return (_dist_name(dist) if dist else None) or key


def match_file(path: str) -> DistributionMatch | None:
    """The distribution whose RECORD lists ``path``."""
    index = get_index()
    keys = index.by_file.get(normalize_path(path))
    return _choose(index, keys, "RECORD") if keys else None


def match_directory(directory: str) -> DistributionMatch | None:
    """The distribution(s) with module files under ``directory`` (a namespace package portion)."""
    index = get_index()
    prefix = normalize_path(directory) + os.sep
    keys = [key for key, paths in index.module_files.items() if any(p.startswith(prefix) for p in paths)]
    return _choose(index, keys, "RECORD") if keys else None


def match_top_level(top: str) -> DistributionMatch | None:
    """Fallbacks when no RECORD lists the module's file."""
    index = get_index()
    if top in index.by_top_level:
        return _choose(index, index.by_top_level[top], "top_level.txt")
    packages = index.packages()
    if top in packages:
        return _choose(index, [canonicalize_name(n) for n in packages[top]], "packages_distributions")
    key = canonicalize_name(top)
    if key in index.by_key:
        return _choose(index, [key], "module name")
    return None


def installed_version(dist_name: str) -> str | None:
    """Installed version of a distribution (any spelling of its name), or None."""
    index = get_index()
    dist = index.by_key.get(canonicalize_name(dist_name))
    if dist is not None:
        return dist.version
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None


def distribution_names() -> dict[str, str]:
    """Canonical key -> the distribution's own Name, for every installed distribution."""
    index = get_index()
    return {key: _display_name(index, key) for key in index.by_key}
