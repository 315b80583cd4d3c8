"""Which Python a version's worker runs on: the seam where per-function environments plug in.

Two resolvers, chosen with ``--environments`` (or ``JUPYTERLAB_PUBLISH_ENVIRONMENTS``) by
``resolvers.make_resolver``:

- ``uv`` (the default, ``uv_environments.UvEnvironments``): each bundle runs in a virtual environment
  holding only its pinned requirements, one per lock hash, built by uv and shared by every version
  with the same requirements;
- ``shared`` (``SharedInterpreter``): every worker runs on the server's own interpreter and finds the
  server's packages. Quicker to publish (nothing is installed), but not isolated.

Either way a pickled function only runs on the Python minor version that pickled it. ``prepare`` may
be slow (it may install packages); the server calls it off the event loop, as the "installing" stage.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import os
import sys
from pathlib import Path

ENVIRONMENTS_ENV = "JUPYTERLAB_PUBLISH_ENVIRONMENTS"
ENVIRONMENT_KINDS = ("uv", "shared")
DEFAULT_ENVIRONMENTS = "uv"


class EnvironmentMismatch(Exception):
    """The bundle cannot run in any environment this resolver can give it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclasses.dataclass(frozen=True)
class WorkerEnvironment:
    python: str  # interpreter that runs the bundle's service.py
    minor: str  # its "major.minor", compared with the bundle's manifest
    # True for an environment of the bundle's own: the worker then ignores PYTHONPATH & co. (-E) and
    # the user's site-packages (-s), which would otherwise leak the server's packages into it.
    isolated: bool = False

    def command(self, bundle_dir: Path, host: str, port: int) -> list:
        flags = ["-E", "-s"] if self.isolated else []
        return [self.python, *flags, str(Path(bundle_dir) / "service.py"), "--host", host, "--port", str(port)]


class EnvironmentResolver(abc.ABC):
    @abc.abstractmethod
    def prepare(self, manifest: dict, version_dir: Path) -> WorkerEnvironment:
        """Return (creating it if needed) the environment a version runs in. May be slow."""


class SharedInterpreter(EnvironmentResolver):
    """Run every worker on the server's interpreter, whose packages the bundle must find."""

    def __init__(self, python: str = sys.executable, minor: str = "{}.{}".format(*sys.version_info[:2])):
        self.environment = WorkerEnvironment(python=python, minor=minor)

    def prepare(self, manifest: dict, version_dir: Path) -> WorkerEnvironment:
        wanted = str((manifest.get("python") or {}).get("minor") or "")
        check_python_minor(wanted, self.environment.minor)
        return self.environment


def check_python_minor(wanted: str, available: str, detail: str = "") -> None:
    """Refuse a bundle pickled on another Python minor version than ``available``."""
    if wanted == available:
        return
    raise EnvironmentMismatch(
        f"wrong Python minor: the bundle was built with Python {wanted or '(unknown)'} but this server's "
        f"workers run Python {available}{'; ' + detail if detail else ''}. A pickled function only runs "
        "on the Python minor version that pickled it",
        f"publish from a kernel running Python {available}, or run the function server with a Python "
        f"{wanted or 'of the kernel'} interpreter (JUPYTERLAB_PUBLISH_SERVER_PYTHON for the local server)",
    )


def default_environments() -> str:
    kind = os.environ.get(ENVIRONMENTS_ENV, "").strip().lower() or DEFAULT_ENVIRONMENTS
    if kind not in ENVIRONMENT_KINDS:
        raise ValueError(f"{ENVIRONMENTS_ENV}={kind!r}: use one of {', '.join(ENVIRONMENT_KINDS)}")
    return kind


def add_environment_arguments(parser: argparse.ArgumentParser) -> None:
    """``--environments uv|shared``, ``--offline``, ``--find-links DIR``, ``--base-python`` (for ``serve``)."""
    parser.add_argument("--environments", choices=ENVIRONMENT_KINDS, default=None,
                        help="uv: each function in its own environment with only its requirements; shared: every "
                             f"function on the server's interpreter (default: ${ENVIRONMENTS_ENV} or "
                             f"{DEFAULT_ENVIRONMENTS})")
    parser.add_argument("--offline", action="store_true",
                        help="install requirements without network access: from --find-links and uv's cache only")
    parser.add_argument("--find-links", action="append", default=[], metavar="DIR",
                        help="a directory of wheels to install from (a wheelhouse); may be repeated")
    parser.add_argument("--unused-env-days", type=float, default=7.0, metavar="DAYS",
                        help="remove an environment no stored version needs once unused for DAYS (default: %(default)s)")
    parser.add_argument("--base-python", default=None, metavar="PATH",
                        help="the interpreter per-function environments are built on, for bundles of its Python "
                             "minor version (default: the server's own)")
