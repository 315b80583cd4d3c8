"""The bundle format: file names, the manifest's identity, its runtime contract, and ``Bundle``.

A bundle is a directory holding ``manifest.json`` plus the files the manifest lists with their
sha256, so that any copy can be checked before anything in it is unpickled. The written spec, with
what each format version and runtime contract means, is docs/bundle-format.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Shared with the runtime, which must not import this package: keep the two in step.
from jupyterlab_publish.runtime.service import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, RUNTIME_CONTRACT

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

# docs/bundle-format.md, "Bundles without runtime_contract": the manifest field came after the
# runtime contracts did, so a manifest without it is read by its files. Contract 2's runtime is the
# first split into service_*.py files; a bundle that lists none of them carries contract 1's.
OLDEST_RUNTIME_CONTRACT = 1
SPLIT_RUNTIME_CONTRACT = 2
SPLIT_RUNTIME_FILE = "service_handoff.py"

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "Bundle",
    "ENTRYPOINT",
    "FUNCTION_FILE",
    "LOCK_FILE",
    "MANIFEST",
    "OLDEST_RUNTIME_CONTRACT",
    "REQUIREMENTS_FILE",
    "REQUIRED_FILES",
    "RUNTIME_CONTRACT",
    "SIGNATURE",
    "VALIDATOR_FILE",
    "runtime_contract",
    "sha256_hex",
]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runtime_contract(manifest: dict) -> int:
    """The runtime contract of the bundle ``manifest`` describes (checked by ``parse_manifest``)."""
    declared = manifest.get("runtime_contract")
    if declared is not None:
        return declared
    if SPLIT_RUNTIME_FILE in (manifest.get("files") or {}):
        return SPLIT_RUNTIME_CONTRACT
    return OLDEST_RUNTIME_CONTRACT


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
