"""Pack a bundle into a .tar.gz for transport and unpack one safely.

Archives are reproducible (fixed order, owners, modes and gzip header) so the same bundle always
gives the same bytes: ``manifest.json`` first, then ``signature.json`` (if signed), then the files.
Unpacking never calls ``extractall``: each member is checked — a plain file name, no absolute path,
no ``..``, no links or devices, no duplicates — and copied by hand into a temporary directory, which
is verified as a bundle before it is renamed into place. Given a key, unpacking checks the signature
as soon as the manifest and signature have arrived and each file's sha256 while it streams in, so a
forged file is refused before it is ever complete on disk, let alone unpickled.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.state.atomic import atomic_directory

from .format import MANIFEST, SIGNATURE, Bundle
from .reader import modified, parse_manifest, read_bundle
from .signature import sign_manifest, verify_signature

# The manifest holds the sample input and output, so it may be large, but not unboundedly.
_MAX_MANIFEST_BYTES = 64 * 1024**2


def pack_bundle(bundle, out, *, signing_key: bytes | None = None) -> None:
    """Write ``bundle`` (a Bundle or a bundle directory) as .tar.gz to ``out`` (a path or binary file).

    The directory is verified first, so a tampered bundle is never shipped. With ``signing_key``
    the archive carries a fresh ``signature.json`` for that key; without, the bundle's own (if any).
    """
    bundle = read_bundle(bundle.path if isinstance(bundle, Bundle) else bundle)
    # Sign the very bytes that are shipped, read once (the file could change between two reads).
    manifest_bytes = (bundle.path / MANIFEST).read_bytes()
    if parse_manifest(manifest_bytes) != bundle.manifest:
        raise _invalid(f"{bundle.path / MANIFEST} changed while it was being packed")
    if signing_key is not None:
        signature = sign_manifest(manifest_bytes, signing_key)
    else:
        existing = bundle.path / SIGNATURE
        signature = existing.read_bytes() if existing.is_file() else None
    if isinstance(out, (str, os.PathLike)):
        out = Path(out)
        handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".partial", delete=False)
        try:
            with handle:
                _write_archive(bundle, manifest_bytes, signature, handle)
            os.replace(handle.name, out)  # readers never see a half-written archive
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise
    else:
        _write_archive(bundle, manifest_bytes, signature, out)


def unpack_bundle(archive, dest_dir, *, key: bytes | None = None) -> Bundle:
    """Unpack a .tar.gz (path or binary file) into ``dest_dir`` (must not exist) and verify it.

    With ``key`` the archive must be signed by that key, and ``manifest.json`` and
    ``signature.json`` must come before the other files (as ``pack_bundle`` writes them).
    """
    if key is not None:
        return _unpack_signed(archive, Path(dest_dir), key)
    dest = Path(dest_dir)
    with atomic_directory(dest) as tmp:
        with _open_archive(archive) as tar:
            for name, member in _bundle_members(tar, set()):
                source = tar.extractfile(member)
                with source, open(tmp / name, "xb") as target:
                    shutil.copyfileobj(source, target)
        manifest = read_bundle(tmp).manifest
    return Bundle(dest, manifest)


def _bundle_members(tar: tarfile.TarFile, seen: set):
    """Yield ``(name, member)`` for the bundle's files, in archive order, refusing duplicates."""
    for member in tar:
        name = _member_name(member)
        if name is None:
            continue
        if name in seen:
            raise _invalid(f"the archive holds {name} twice")
        seen.add(name)
        yield name, member


def _invalid(message: str) -> PublishError:
    return PublishError("invalid_bundle", message, "Pack the bundle again with pack_bundle, or rebuild it.")


def _unpack_signed(archive, dest: Path, key: bytes) -> Bundle:
    """Unpack while verifying: signature first, then each file's sha256 as it is copied."""
    with atomic_directory(dest) as tmp:
        with _open_archive(archive) as tar:
            head = {}  # MANIFEST and SIGNATURE bytes, as they arrive
            manifest = None
            seen = set()
            for name, member in _bundle_members(tar, seen):
                if name in (MANIFEST, SIGNATURE):
                    if manifest is not None:
                        raise _invalid(f"{name} comes after the bundle's files in the archive")
                    head[name] = _read_member(tar, member, _MAX_MANIFEST_BYTES)
                    continue
                if manifest is None:
                    if MANIFEST not in head:
                        raise _invalid(f"the archive starts with {name}; a signed archive starts with {MANIFEST}")
                    verify_signature(head[MANIFEST], head.get(SIGNATURE), key)
                    manifest = parse_manifest(head[MANIFEST])
                digest = manifest["files"].get(name)
                if digest is None:
                    raise _invalid(f"the archive holds {name}, which {MANIFEST} does not list")
                if _copy_hashing(tar.extractfile(member), tmp / name) != digest:
                    raise modified(name)
            if MANIFEST not in head:
                raise _invalid(f"the archive has no {MANIFEST}")
            if manifest is None:  # an archive of a manifest alone: still check what it claims
                verify_signature(head[MANIFEST], head.get(SIGNATURE), key)
                manifest = parse_manifest(head[MANIFEST])
            missing = sorted(set(manifest["files"]) - seen)
            if missing:
                raise _invalid(f"{', '.join(missing)} listed in {MANIFEST} but missing from the archive")
        for name, data in head.items():
            with open(tmp / name, "xb") as handle:
                handle.write(data)
    return Bundle(dest, manifest)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise _invalid(f"{member.name} is {member.size} bytes, more than the {limit} a bundle may use for it")
    with tar.extractfile(member) as source:
        return source.read()


def _copy_hashing(source, path: Path) -> str:
    digest = hashlib.sha256()
    with source, open(path, "xb") as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
    return digest.hexdigest()


def _write_archive(bundle: Bundle, manifest_bytes: bytes, signature, fileobj) -> None:
    mtime = _created_timestamp(bundle.manifest)
    # Manifest and signature first, so a receiver can verify before it writes any other file.
    members = [(MANIFEST, manifest_bytes)] + ([(SIGNATURE, signature)] if signature is not None else [])
    members += [(name, bundle.path / name) for name in sorted(bundle.manifest["files"])]
    # filename="" and mtime=0 keep temporary names and clock times out of the gzip header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in members:
                info = tarfile.TarInfo(name)
                info.size = len(content) if isinstance(content, bytes) else content.stat().st_size
                info.mtime = mtime
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if isinstance(content, bytes):
                    tar.addfile(info, io.BytesIO(content))
                else:
                    with open(content, "rb") as handle:
                        tar.addfile(info, handle)


def _created_timestamp(manifest: dict) -> int:
    try:
        created = datetime.datetime.strptime(manifest.get("created", ""), "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return 0
    return int(created.replace(tzinfo=datetime.timezone.utc).timestamp())


@contextlib.contextmanager
def _open_archive(archive):
    try:
        if isinstance(archive, (str, os.PathLike)):
            tar = tarfile.open(archive, mode="r:gz")
        else:
            tar = tarfile.open(fileobj=archive, mode="r:gz")
    except FileNotFoundError:
        raise PublishError("bad_request", f"{archive} does not exist", "Give the path of a .tar.gz bundle.") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _invalid(f"not a .tar.gz bundle archive: {exc}") from None
    try:
        with tar:
            yield tar
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _invalid(f"the archive is damaged: {exc}") from None


def _member_name(member: tarfile.TarInfo) -> str | None:
    """The file name to create for ``member``, None to skip it, or invalid_bundle if unsafe."""
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _invalid(f"the archive member {name!r} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise _invalid(f"the archive member {name!r} points outside the bundle ('..')")
    parts = [part for part in parts if part not in ("", ".")]  # tolerate './manifest.json'
    if not parts and member.isdir():
        return None  # the archive's own '.' entry
    if len(parts) != 1 or "\\" in name:
        raise _invalid(f"the archive member {name!r} is not a file at the bundle's top level")
    if not member.isreg():
        raise _invalid(f"the archive member {name!r} is not a regular file (links and devices are refused)")
    return parts[0]
