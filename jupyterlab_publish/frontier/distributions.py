"""Which installed distribution provides a module, read from installed metadata.

The file that defines a module is the most reliable key: RECORD lists every file a distribution
installed, so import names that differ from distribution names (sklearn -> scikit-learn) resolve
without a table. System and conda packages often ship without RECORD, hence the fallbacks to
top_level.txt, to ``packages_distributions()`` and finally to the module's own name.

The index is built once per process and rebuilt only when a directory on ``sys.path`` changes
(``pip install`` touches site-packages), so a lookup after the first costs a few dictionary reads.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.machinery
import importlib.metadata
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field

from ..requirement import canonical_name
from .paths import in_site_packages, normalize_path

_MODULE_SUFFIXES = tuple(importlib.machinery.all_suffixes())


@dataclass(frozen=True)
class DistributionMatch:
    """The distribution chosen for a module, how it was found, and who else claimed the module."""

    name: str  # the distribution's own Name metadata
    version: str | None
    source: str  # "RECORD", "top_level.txt", "packages_distributions", "module name", "editable install"
    others: tuple[str, ...] = ()
    choice: str = "first by name"  # why this one, when ``others`` claim the module too
    editable: bool = False  # installed with ``pip install -e`` (PEP 660): the code lives in a work tree
    location: str = ""  # the work tree of an editable install

    @property
    def key(self) -> str:
        return canonical_name(self.name)

    @property
    def reason(self) -> str:
        text = f"{self.name} found by {self.source}"
        if self.others:
            text += f"; also provided by {', '.join(self.others)}, chose {self.name} ({self.choice})"
        return text


@dataclass
class _Index:
    fingerprint: tuple
    by_key: dict[str, importlib.metadata.Distribution] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # key -> the distribution's own Name
    versions: dict[str, str | None] = field(default_factory=dict)  # key -> installed Version
    by_file: dict[str, list[str]] = field(default_factory=dict)
    by_top_level: dict[str, list[str]] = field(default_factory=dict)
    module_files: dict[str, list[str]] = field(default_factory=dict)  # key -> its module files
    # module file -> {key: RECORD hash}, to tell which of several claimants wrote the file on disk
    file_hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    # editable installs: key -> (import roots added by its .pth files, {top-level name: path})
    editable: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
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


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    # Each .metadata access parses the METADATA file again: read it once per distribution.
    try:
        metadata = dist.metadata
        return metadata["Name"], metadata["Version"]
    except Exception:
        return None, None


def _add_distribution(index: _Index, dist: importlib.metadata.Distribution) -> None:
    name, version = _name_and_version(dist)
    if not name:
        return
    key = canonical_name(name)
    if key in index.by_key:
        return  # shadowed by an earlier sys.path entry, as import would be
    index.by_key[key] = dist
    index.names[key] = name
    index.versions[key] = version
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
            if record.hash is not None:
                index.file_hashes.setdefault(path, {})[key] = f"{record.hash.mode}={record.hash.value}"
    index.module_files[key] = module_files
    if _is_editable(dist):
        index.editable[key] = _editable_roots(base, files)
    top_level = dist.read_text("top_level.txt") or ""
    for line in top_level.split():
        index.by_top_level.setdefault(line.strip(), []).append(key)


def _is_editable(dist: importlib.metadata.Distribution) -> bool:
    """PEP 610: an editable install records ``{"dir_info": {"editable": true}}`` in direct_url.json."""
    try:
        data = json.loads(dist.read_text("direct_url.json") or "{}")
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and bool((data.get("dir_info") or {}).get("editable"))


# setuptools' PEP 660 editable finder spells its table as ``MAPPING: dict[str, str] = {...}``.
_FINDER_MAPPING = re.compile(r"^MAPPING\s*(?::[^=]*)?=\s*(\{.*?\})\s*$", re.MULTILINE | re.DOTALL)


def _editable_roots(base: str, files) -> tuple[list[str], dict[str, str]]:
    """Where an editable install makes its modules importable from.

    Build backends do it one of two ways: a ``.pth`` file naming directories to add to ``sys.path``
    (hatchling, flit, setuptools' compat mode), or a meta-path finder module holding a table of
    top-level names to paths (setuptools' strict and lenient modes).
    """
    roots, mapping = [], {}
    for record in files:
        text = str(record)
        path = os.path.join(base, text)
        if text.endswith(".pth"):
            for line in _read(path).splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")) and os.path.isdir(line):
                    roots.append(normalize_path(line))
        elif os.path.basename(text).startswith("__editable__") and text.endswith("_finder.py"):
            found = _FINDER_MAPPING.search(_read(path))
            try:
                table = ast.literal_eval(found.group(1)) if found else {}
            except (ValueError, SyntaxError):
                table = {}
            mapping.update({str(k): normalize_path(str(v)) for k, v in table.items()})
    return roots, mapping


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return ""


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


def _choose(index: _Index, keys: list[str], source: str, path: str | None = None) -> DistributionMatch | None:
    """One distribution among those claiming a module; ``path`` is the module's file if known.

    Two distributions can install the same file (opencv-python and opencv-python-headless both ship
    ``cv2/__init__.py``): the one whose RECORD hash matches the bytes on disk installed last, so its
    version is the one running. Without such evidence the first by name is chosen, so the answer
    is at least stable.
    """
    keys = sorted(set(keys))
    if not keys:
        return None
    choice = "first by name"
    if len(keys) > 1 and path is not None:
        matching = _keys_matching_file(index, keys, path)
        if matching and len(matching) < len(keys):
            keys = matching + [k for k in keys if k not in matching]
            choice = "its RECORD hash matches the file on disk"
    chosen = index.by_key.get(keys[0])
    others = tuple(_display_name(index, k) for k in keys[1:])
    if chosen is None:  # packages_distributions() can name a distribution the index skipped
        return DistributionMatch(keys[0], installed_version(keys[0]), source, others, choice)
    return DistributionMatch(index.names[keys[0]], index.versions[keys[0]], source, others, choice)


def _keys_matching_file(index: _Index, keys: list[str], path: str) -> list[str]:
    recorded = index.file_hashes.get(path, {})
    modes = {value.partition("=")[0] for value in recorded.values()}
    if not recorded or modes - set(hashlib.algorithms_available):
        return []
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return []
    actual = {}
    for mode in modes:
        digest = base64.urlsafe_b64encode(hashlib.new(mode, data).digest()).rstrip(b"=").decode()
        actual[mode] = f"{mode}={digest}"
    return [k for k in keys if k in recorded and recorded[k] == actual[recorded[k].partition("=")[0]]]


def _display_name(index: _Index, key: str) -> str:
    return index.names.get(key) or key


def match_file(path: str) -> DistributionMatch | None:
    """The distribution whose RECORD lists ``path``."""
    index = get_index()
    normalized = normalize_path(path)
    keys = index.by_file.get(normalized)
    return _choose(index, keys, "RECORD", normalized) if keys else None


def match_editable(module_name: str, path: str) -> DistributionMatch | None:
    """The editable install (PEP 660) whose work tree provides ``module_name`` from ``path``.

    Only the module's top-level package counts, and only where the install puts it: ``<root>/<top>``
    for a ``.pth`` root, or the finder's own table. A ``utils.py`` next to a notebook that happens to
    sit inside the work tree is therefore still a local module.
    """
    index = get_index()
    if not index.editable:
        return None
    top = module_name.partition(".")[0]
    real = normalize_path(path)
    for key in sorted(index.editable):
        roots, mapping = index.editable[key]
        places = [mapping[top]] if top in mapping else [os.path.join(root, top) for root in roots]
        for place in places:
            if real == place or real.startswith(place + os.sep) or real.startswith(place + "."):
                return DistributionMatch(
                    index.names[key],
                    index.versions[key],
                    "editable install",
                    editable=True,
                    location=os.path.dirname(place),
                )
    return None


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
        return _choose(index, [canonical_name(n) for n in packages[top]], "packages_distributions")
    key = canonical_name(top)
    if key in index.by_key:
        return _choose(index, [key], "module name")
    return None


def installed_version(dist_name: str) -> str | None:
    """Installed version of a distribution (any spelling of its name), or None."""
    index = get_index()
    key = canonical_name(dist_name)
    if key in index.versions:
        return index.versions[key]
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None


def distribution_names() -> dict[str, str]:
    """Canonical key -> the distribution's own Name, for every installed distribution."""
    index = get_index()
    return {key: _display_name(index, key) for key in index.by_key}
