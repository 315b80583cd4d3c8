"""Which Python a version's worker runs on: the seam where per-function environments plug in.

Today every worker runs on the server's own interpreter, so a bundle must have been built with the
same Python minor version (pickled functions carry bytecode). A later resolver will build an
isolated environment per version (uv, from the bundle's requirements and Python version) in
``prepare``; the server already calls it off the event loop and reports it as the "installing" stage.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
from pathlib import Path


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

    def command(self, bundle_dir: Path, host: str, port: int) -> list:
        return [self.python, str(Path(bundle_dir) / "service.py"), "--host", host, "--port", str(port)]


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
        if wanted != self.environment.minor:
            raise EnvironmentMismatch(
                f"the bundle was built with Python {wanted or '(unknown)'} but this server's workers run "
                f"Python {self.environment.minor}; a pickled function only runs on the Python minor "
                "version that pickled it",
                f"publish from a kernel running Python {self.environment.minor}, or run the function "
                f"server with a Python {wanted or 'of the kernel'} interpreter "
                "(JUPYTERLAB_PUBLISH_SERVER_PYTHON for the local server)",
            )
        return self.environment
