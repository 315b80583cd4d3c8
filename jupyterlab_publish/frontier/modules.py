"""Where a module comes from: the standard library, an installed distribution, or a local file.

Classification never imports anything: it reads ``sys.modules`` and, for modules not yet imported,
asks the import system where the top-level package would be found.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass

from .distributions import (
    DistributionMatch,
    get_index,
    match_directory,
    match_editable,
    match_file,
    match_top_level,
)
from .paths import in_site_packages, in_stdlib_dir

STDLIB = "stdlib"
DISTRIBUTION = "distribution"
LOCAL = "local"
UNRESOLVED = "unresolved"

# Names that are never requirements: the interpreter itself and the notebook's namespace.
_ALWAYS_PRESENT = frozenset({"__main__", "builtins", "__future__", "__mp_main__"})


@dataclass(frozen=True)
class ModuleOrigin:
    name: str
    kind: str
    path: str | None = None
    match: DistributionMatch | None = None
    reason: str = ""


def top_level(module_name: str) -> str:
    return module_name.partition(".")[0]


def is_stdlib_name(module_name: str) -> bool:
    """True for the standard library, judged on the top-level package name."""
    top = top_level(module_name)
    if top in _ALWAYS_PRESENT or top in sys.builtin_module_names:
        return True
    names = getattr(sys, "stdlib_module_names", None)  # 3.10+
    if names is not None:
        return top in names
    return _is_stdlib_file(getattr(sys.modules.get(top), "__file__", None))


def _is_stdlib_file(path: str | None) -> bool:
    """Python 3.9 has no stdlib_module_names: judge by where the file lives."""
    return bool(path) and in_stdlib_dir(path)


def _locations(module_name: str) -> tuple[str | None, list[str]] | None:
    """(file, package search dirs) of a module, without importing it; None if it cannot be found."""
    module = sys.modules.get(module_name)
    if module is not None:
        return getattr(module, "__file__", None), list(getattr(module, "__path__", None) or ())
    parent = module_name.rpartition(".")[0]
    # A dotted spec lookup imports the parent: only do it when the parent is already imported.
    target = module_name if not parent or parent in sys.modules else top_level(module_name)
    try:
        spec = importlib.util.find_spec(target)
    except Exception:  # finders of broken packages raise anything; treat as not found
        spec = None
    if spec is None:
        return None
    origin = spec.origin if spec.has_location else None
    return origin, list(spec.submodule_search_locations or ())


def _match_locations(file: str | None, dirs: list[str]) -> DistributionMatch | None:
    if file:
        return match_file(file)
    for directory in sorted(dirs):
        found = match_directory(directory)
        if found is not None:
            return found
    return None


def _classify_uncached(module_name: str) -> ModuleOrigin:
    located = _locations(module_name)
    if located is None:
        return ModuleOrigin(module_name, UNRESOLVED, reason="it cannot be imported here")
    file, dirs = located
    path = file or (sorted(dirs)[0] if dirs else None)
    match = _match_locations(file, dirs)
    if match is None and path:
        match = match_editable(module_name, path)
    if match is None and path and not in_site_packages(path):
        if _is_stdlib_file(path):
            return ModuleOrigin(module_name, STDLIB, path)
        return ModuleOrigin(module_name, LOCAL, path, reason="no installed distribution lists its file")
    if match is None:
        match = match_top_level(top_level(module_name))
    if match is None:
        return ModuleOrigin(
            module_name, UNRESOLVED, path, reason="no installed distribution claims it (no RECORD or top_level.txt)"
        )
    return ModuleOrigin(module_name, DISTRIBUTION, path, match, match.reason)


def classify(module_name: str) -> ModuleOrigin:
    """Classify a module by name; answers are cached until the installed distributions change."""
    if is_stdlib_name(module_name):
        return ModuleOrigin(module_name, STDLIB)
    cache = get_index().cache
    origin = cache.get(module_name)
    if origin is None:
        origin = _classify_uncached(module_name)
        # A module that cannot be found now may be created or installed in the next cell.
        if origin.kind != UNRESOLVED:
            cache[module_name] = origin
    return origin


def find_distribution(module_name: str) -> tuple[str, str | None] | None:
    """(distribution name, installed version) providing ``module_name``, or None."""
    origin = classify(module_name)
    if origin.match is None:
        return None
    return origin.match.name, origin.match.version


def deepest_submodule(module_name: str, attrs: tuple[str, ...]) -> str:
    """Follow ``attrs`` from a module while each step names a submodule, importing nothing.

    An imported module answers from its namespace (``vars``, never ``getattr``, which would make a
    lazily loading package import the submodule); a name it does not hold may still be a submodule
    on disk (``import scipy`` then ``scipy.stats.norm``), which the import system's finders can
    locate without running it. cloudpickle re-imports on load only the submodules that are in
    ``sys.modules`` when it pickles, so the analyzer asks the bundle to import these itself.
    """
    name = module_name
    locations = None  # search path of ``name`` when it is found on disk but not imported
    for attr in attrs:
        candidate = f"{name}.{attr}"
        module = sys.modules.get(name)
        if candidate in sys.modules:
            name, locations = candidate, None
            continue
        if module is not None and attr in vars(module):
            break  # an attribute (function, class, constant), not a submodule
        if module is None and locations is None:
            break
        found = _find_submodule(candidate, locations)
        if found is None:
            break
        name, locations = candidate, found
    return name


_NOT_A_PACKAGE: list[str] = []  # search locations of a plain module: it has no submodules


def _find_submodule(name: str, locations) -> list[str] | None:
    """Search locations of submodule ``name`` (empty for a plain module), or None if there is none.

    The parent is either imported (then ``find_spec`` reads its ``__path__``) or was itself found
    here (then ``locations`` is its search path). Answers are kept with the distribution index.
    """
    cache = get_index().cache
    key = ("submodule", name)
    if key not in cache:
        try:
            if locations is None:
                spec = importlib.util.find_spec(name)
            else:
                spec = importlib.machinery.PathFinder.find_spec(name, locations) if locations else None
        except Exception:  # a broken finder must not break analysis
            spec = None
        cache[key] = None if spec is None else list(spec.submodule_search_locations or _NOT_A_PACKAGE)
    return cache[key]
