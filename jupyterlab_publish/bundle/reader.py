"""``read_bundle``: load a bundle's manifest and prove its files are exactly the ones it lists.

Pickles run code when loaded, so a bundle is verified before anyone unpickles it: with a ``key``,
``signature.json`` must sign the manifest's exact bytes; then every listed file must exist with the
recorded sha256, and nothing else may sit beside ``manifest.json`` (and ``signature.json``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from jupyterlab_publish.errors import PublishError

from .format import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    ENTRYPOINT,
    MANIFEST,
    OLDEST_RUNTIME_CONTRACT,
    REQUIRED_FILES,
    RUNTIME_CONTRACT,
    SIGNATURE,
    VALIDATOR_FILE,
    Bundle,
)
from .signature import verify_signature

_HINT = "Rebuild the bundle: publish the function again from its notebook."
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _invalid(message: str) -> PublishError:
    return PublishError("invalid_bundle", message, _HINT)


def read_bundle(path, *, key: bytes | None = None) -> Bundle:
    """The verified bundle at ``path``; with ``key``, its signature is checked first."""
    path = Path(path)
    if not path.is_dir():
        raise _invalid(f"{path} is not a bundle directory")
    try:
        manifest_bytes = (path / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise _invalid(f"{path} has no {MANIFEST}") from None
    except OSError as exc:
        raise _invalid(f"{MANIFEST} cannot be read: {exc}") from None
    if key is not None:
        signature = path / SIGNATURE
        verify_signature(manifest_bytes, signature.read_bytes() if signature.is_file() else None, key)
    manifest = parse_manifest(manifest_bytes)
    files = manifest["files"]
    for filename, digest in files.items():
        target = path / filename
        if target.is_symlink() or not target.is_file():
            raise _invalid(f"{filename} is listed in {path / MANIFEST} but missing from the bundle")
        if _file_sha256(target) != digest:
            raise modified(filename)
    unlisted = sorted(entry.name for entry in path.iterdir() if entry.name not in (MANIFEST, SIGNATURE)
                      and entry.name not in files)
    if unlisted:
        raise _invalid(f"{path} holds files the manifest does not list: {', '.join(unlisted)}")
    return Bundle(path, manifest)


def modified(filename: str) -> PublishError:
    return PublishError("invalid_bundle", f"{filename} does not match its sha256 in manifest.json: it was modified",
                        _HINT, {"reason": "file_modified", "file": filename})


def parse_manifest(data: bytes) -> dict:
    """The manifest in ``data``, checked for shape: format, names, the files table and its digests."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid(f"{MANIFEST} cannot be read as JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise _invalid(f"{MANIFEST} does not describe a {BUNDLE_FORMAT}")
    if manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise PublishError(
            "invalid_bundle",
            f"{MANIFEST} has format version {manifest.get('format_version')!r}; "
            f"this version of jupyterlab-publish reads version {BUNDLE_FORMAT_VERSION}",
            "Upgrade jupyterlab-publish, or rebuild the bundle with this version.",
        )
    if not isinstance(manifest.get("name"), str) or not isinstance(manifest.get("function"), dict):
        raise _invalid(f"{MANIFEST} lacks the endpoint name or the function description")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise _invalid(f"{MANIFEST} has no 'files' table")
    for filename, digest in files.items():
        # Names come from a file we may not have written: refuse anything that leaves the directory.
        if not _is_plain_name(filename) or filename in (MANIFEST, SIGNATURE):
            raise _invalid(f"{MANIFEST} lists {filename!r}, which is not a plain file name of the bundle")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise _invalid(f"{MANIFEST} gives {filename} a malformed sha256 ({digest!r})")
    required = list(REQUIRED_FILES) + ([VALIDATOR_FILE] if manifest.get("validator") else [])
    for filename in required:
        if filename not in files:
            raise _invalid(f"{MANIFEST} does not list {filename}, which every such bundle needs")
    if manifest.get("entrypoint") != ENTRYPOINT:
        raise _invalid(f"{MANIFEST} names entrypoint {manifest.get('entrypoint')!r}, expected {ENTRYPOINT}")
    _check_runtime_contract(manifest.get("runtime_contract"))
    return manifest


def _check_runtime_contract(contract) -> None:
    # Absent: an older bundle, whose contract format.runtime_contract tells from its files.
    if contract is None:
        return
    if type(contract) is not int or contract < OLDEST_RUNTIME_CONTRACT:
        raise _invalid(f"{MANIFEST} has a malformed runtime_contract ({contract!r}); expected a whole number "
                       f"from {OLDEST_RUNTIME_CONTRACT}")
    if contract > RUNTIME_CONTRACT:
        raise PublishError(
            "invalid_bundle",
            f"the bundle's runtime speaks runtime contract {contract}; this version of jupyterlab-publish "
            f"knows contracts {OLDEST_RUNTIME_CONTRACT} to {RUNTIME_CONTRACT}",
            "Upgrade jupyterlab-publish where the bundle is read (the function server), or rebuild the "
            "bundle with this version.",
            {"reason": "unknown_runtime_contract", "runtime_contract": contract},
        )


def _is_plain_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and not re.search(r"[/\\\x00]", name)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):  # pickles can be large: stream them
            digest.update(block)
    return digest.hexdigest()
