"""Path tests shared by the distribution index and module classification."""

from __future__ import annotations

import functools
import os
import site
import sysconfig

_SITE_COMPONENTS = frozenset({"site-packages", "dist-packages"})


def normalize_path(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


@functools.lru_cache(maxsize=None)
def site_roots() -> tuple[str, ...]:
    roots = []
    for getter in ("getsitepackages", "getusersitepackages"):
        try:
            found = getattr(site, getter)()
        except AttributeError:  # old virtualenv site.py lacks them
            continue
        roots.extend([found] if isinstance(found, str) else found)
    return tuple(normalize_path(r) for r in roots)


@functools.lru_cache(maxsize=None)
def stdlib_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(sorted({normalize_path(paths[k]) for k in ("stdlib", "platstdlib") if k in paths}))


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


@functools.lru_cache(maxsize=4096)
def in_site_packages(path: str) -> bool:
    """True for installed-package locations (venv, system, user site, Debian dist-packages)."""
    real = normalize_path(path)
    return bool(_SITE_COMPONENTS.intersection(real.split(os.sep))) or _under(real, site_roots())


def in_stdlib_dir(path: str) -> bool:
    """Under the interpreter's own library directory but not in its site-packages."""
    return not in_site_packages(path) and _under(normalize_path(path), stdlib_roots())
