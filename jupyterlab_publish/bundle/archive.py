"""Pack a bundle into a .tar.gz for transport and unpack one safely.

Archives are reproducible (fixed order, owners, modes and gzip header) so the same bundle always
gives the same bytes. Unpacking never calls ``extractall``: each member is checked — a plain file
name, no absolute path, no ``..``, no links or devices, no duplicates — and copied by hand into a
temporary directory, which is verified as a bundle before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from jupyterlab_publish.errors import PublishError

from .atomic import atomic_directory
from .format import MANIFEST, Bundle
from .reader import read_bundle


def pack_bundle(bundle, out) -> None:
    """Write ``bundle`` (a Bundle or a bundle directory) as .tar.gz to ``out`` (a path or binary file).

    The directory is verified first, so a tampered bundle is never shipped.
    """
    bundle = read_bundle(bundle.path if isinstance(bundle, Bundle) else bundle)
    if isinstance(out, (str, os.PathLike)):
        out = Path(out)
        handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".partial", delete=False)
        try:
            with handle:
                _write_archive(bundle, handle)
            os.replace(handle.name, out)  # readers never see a half-written archive
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise
    else:
        _write_archive(bundle, out)


def unpack_bundle(archive, dest_dir) -> Bundle:
    """Unpack a .tar.gz (path or binary file) into ``dest_dir`` (must not exist) and verify it."""
    dest = Path(dest_dir)
    with atomic_directory(dest) as tmp:
        with _open_archive(archive) as tar:
            seen = set()
            for member in tar:
                name = _member_name(member)
                if name is None:
                    continue
                if name in seen:
                    raise _invalid(f"the archive holds {name} twice")
                seen.add(name)
                source = tar.extractfile(member)
                with source, open(tmp / name, "xb") as target:
                    shutil.copyfileobj(source, target)
        manifest = read_bundle(tmp).manifest
    return Bundle(dest, manifest)


def _invalid(message: str) -> PublishError:
    return PublishError("invalid_bundle", message, "Pack the bundle again with pack_bundle, or rebuild it.")


def _write_archive(bundle: Bundle, fileobj) -> None:
    mtime = _created_timestamp(bundle.manifest)
    names = [MANIFEST] + sorted(bundle.manifest["files"])  # manifest first: readers can stream
    # filename="" and mtime=0 keep temporary names and clock times out of the gzip header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                path = bundle.path / name
                info = tarfile.TarInfo(name)
                info.size = path.stat().st_size
                info.mtime = mtime
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as handle:
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
