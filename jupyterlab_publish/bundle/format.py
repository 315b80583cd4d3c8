"""The bundle format: file names, the manifest's identity, and the ``Bundle`` handle.

A bundle is a directory holding ``manifest.json`` plus the files the manifest lists with their
sha256, so that any copy can be checked before anything in it is unpickled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Shared with the runtime, which must not import this package: keep the two in step.
from jupyterlab_publish.runtime.service import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION

MANIFEST = "manifest.json"
# Beside the manifest, never listed in it: it signs the manifest's bytes (see signature.py).
SIGNATURE = "signature.json"
FUNCTION_FILE = "function.pkl"
VALIDATOR_FILE = "validator.pkl"
REQUIREMENTS_FILE = "requirements.txt"
# Every distribution of the environment, pinned, with who required it (optional: older bundles lack it).
LOCK_FILE = "requirements.lock"
ENTRYPOINT = "service.py"
REQUIRED_FILES = (FUNCTION_FILE, REQUIREMENTS_FILE, ENTRYPOINT)

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "Bundle",
    "ENTRYPOINT",
    "FUNCTION_FILE",
    "LOCK_FILE",
    "MANIFEST",
    "REQUIREMENTS_FILE",
    "REQUIRED_FILES",
    "SIGNATURE",
    "VALIDATOR_FILE",
    "sha256_hex",
]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Bundle:
    """A bundle directory and its manifest (obtained from ``build_bundle`` or ``read_bundle``)."""

    def __init__(self, path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    @property
    def name(self) -> str:
        """The endpoint name."""
        return self.manifest["name"]

    @property
    def requirements_txt(self) -> str:
        """The text of requirements.txt: what a target installs into the bundle's environment."""
        return (self.path / REQUIREMENTS_FILE).read_text(encoding="utf-8")

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, name={self.name!r})"
