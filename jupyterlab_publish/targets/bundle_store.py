"""A content-addressed, immutable bundle store on object storage, for the ``ray`` target.

Layout under the store's root URL (``file:///srv/bundles``, ``s3://bucket/prefix``)::

    bundles/sha256/<hex>.tar.gz             the packed, signed bundle; named by the sha256 of its bytes
    functions/<name>/versions/<n>.json      one immutable record per published version

A record says which bundle a version is (``digest``), when and by whom it was made (``created``,
``provenance``), how it was served (``scale``, ``public``) and which keys it accepts
(``key_digests``: sha256 of each key, never a key). Nothing is ever overwritten: a bundle's name is
its digest, and a version record is created exclusively (a second publisher racing for the same
number gets the next one). Writes are atomic: a local file is written under a temporary name and
linked into place, an object store's put is all-or-nothing, so no reader sees half an object
under a final name. Which version is *live* is not stored here: it is what the Serve config runs.

``fsspec`` (and ``s3fs`` for ``s3://``) is imported when a store is opened, so a kernel that never
publishes to Ray never loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from typing import Any, Optional

from ..errors import PublishError

BUNDLES_DIR = "bundles/sha256"
FUNCTIONS_DIR = "functions"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_VERSION_FILE = re.compile(r"^(\d{8})\.json$")
# Records are small JSON documents; a bigger one is not ours.
_MAX_RECORD_BYTES = 4 * 1024 * 1024
_CHUNK = 1 << 20


def _store_error(url: str, exc: BaseException) -> PublishError:
    return PublishError(
        "target_unreachable", f"the bundle store {url} cannot be used: {exc}",
        "check the store URL (store=file:///path or s3://bucket/prefix), that it exists and that this "
        "process may write there (for s3://, the AWS_* credentials and store_endpoint=)",
        {"store": url},
    )


class BundleStore:
    """One store root, opened through fsspec. ``storage_options`` go to fsspec (e.g. the S3 endpoint)."""

    def __init__(self, url: str, storage_options: Optional[dict] = None):
        url = url.rstrip("/")
        if not url or "://" not in url:
            raise PublishError("unknown_target", f"the bundle store {url!r} is not a URL",
                               "give store=file:///absolute/path or store=s3://bucket/prefix")
        self.url = url
        self.storage_options = dict(storage_options or {})
        try:
            # Lazily: only a ray target that is used needs fsspec (and s3fs for s3://).
            import fsspec.core
        except ImportError as exc:
            raise PublishError("target_error", "the ray target's bundle store needs fsspec",
                               "pip install 'jupyterlab-publish[ray]' (fsspec, s3fs)") from exc
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url, **self.storage_options)
        except ImportError as exc:
            raise PublishError("target_error", f"the bundle store {url} needs a package that is missing: {exc}",
                               "pip install 'jupyterlab-publish[ray]' (it brings s3fs for s3://)") from exc
        except (ValueError, OSError) as exc:
            raise _store_error(url, exc) from exc
        self.local = "file" in _protocols(self.fs)

    # -- bundles ---------------------------------------------------------------------------------

    def bundle_path(self, digest: str) -> str:
        return f"{self.root}/{BUNDLES_DIR}/{_check_digest(digest)}.tar.gz"

    def bundle_url(self, digest: str) -> str:
        """The URL a replica fetches the bundle from (fsspec reads it with the same options)."""
        return f"{self.url}/{BUNDLES_DIR}/{_check_digest(digest)}.tar.gz"

    def put_bundle(self, archive_path: str) -> str:
        """Store the archive at ``archive_path`` under its sha256 and return that digest.

        An archive already stored is not written again: same name, same bytes."""
        digest = _file_sha256(archive_path)
        path = self.bundle_path(digest)
        try:
            if self.fs.exists(path):
                return digest
            if self.local:
                _local_put(archive_path, path, exclusive=False)
            else:
                self.fs.put_file(archive_path, path)  # one PUT: all or nothing
        except OSError as exc:
            raise _store_error(self.url, exc) from exc
        return digest

    def read_bundle(self, digest: str) -> bytes:
        try:
            with self.fs.open(self.bundle_path(digest), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise PublishError("not_found", f"the bundle {digest[:12]}… is not in the store {self.url}",
                               "publish the function again: its bundle was removed from the store") from None
        except OSError as exc:
            raise _store_error(self.url, exc) from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise PublishError("invalid_bundle", f"the bundle {digest[:12]}… in {self.url} does not match its digest",
                               "someone changed the store's copy; publish the function again", {"digest": digest})
        return data

    def fetch_bundle(self, digest: str, dest: str) -> str:
        """Copy the bundle to the local file ``dest`` (which must not exist), hashing as it streams,
        and return ``dest``; ``invalid_bundle`` (and no file) when the bytes are not ``digest``'s.
        A model's bundle can be large: it never has to fit in memory."""
        hasher = hashlib.sha256()
        try:
            with self.fs.open(self.bundle_path(digest), "rb") as source, open(dest, "xb") as target:
                for block in iter(lambda: source.read(_CHUNK), b""):
                    hasher.update(block)
                    target.write(block)
        except FileNotFoundError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            if exc.filename == dest:
                raise
            raise PublishError("not_found", f"the bundle {digest[:12]}… is not in the store {self.url}",
                               "publish the function again: its bundle was removed from the store") from None
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise _store_error(self.url, exc) from exc
        if hasher.hexdigest() != digest:
            os.unlink(dest)
            raise PublishError("invalid_bundle", f"the bundle {digest[:12]}… in {self.url} does not match its digest",
                               "someone changed the store's copy; publish the function again", {"digest": digest})
        return dest

    # -- version records -------------------------------------------------------------------------

    def _versions_dir(self, name: str) -> str:
        return f"{self.root}/{FUNCTIONS_DIR}/{name}/versions"

    def version_numbers(self, name: str) -> list:
        try:
            entries = self.fs.ls(self._versions_dir(name), detail=False)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _store_error(self.url, exc) from exc
        numbers = []
        for entry in entries:
            match = _VERSION_FILE.match(entry.rstrip("/").rsplit("/", 1)[-1])
            if match:
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def record(self, name: str, version: int) -> dict:
        path = f"{self._versions_dir(name)}/{int(version):08d}.json"
        try:
            with self.fs.open(path, "rb") as handle:
                data = handle.read(_MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            raise PublishError("not_found", f"{name} has no version {version} in the store {self.url}",
                               f"see its versions with `jupyter publish versions {name}`",
                               {"name": name, "version": version}) from None
        except OSError as exc:
            raise _store_error(self.url, exc) from exc
        try:
            record = json.loads(data.decode("utf-8"))
            if len(data) > _MAX_RECORD_BYTES or not isinstance(record, dict):
                raise ValueError("not a version record")
            _check_digest(record.get("digest"))
        except (ValueError, UnicodeDecodeError, PublishError) as exc:
            raise PublishError("target_error", f"the version record {path} in {self.url} is damaged: {exc}",
                               "remove that file from the store, or publish a new version") from None
        return record

    def records(self, name: str) -> list:
        """Every version record of ``name``, oldest first."""
        return [self.record(name, number) for number in self.version_numbers(name)]

    def add_version(self, name: str, record: dict) -> int:
        """Store ``record`` as the next version of ``name`` and return its number (never overwrites)."""
        for _ in range(20):  # another publisher may take a number between our look and our write
            version = (self.version_numbers(name) or [0])[-1] + 1
            body = {**record, "name": name, "version": version}
            data = (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8")
            path = f"{self._versions_dir(name)}/{version:08d}.json"
            try:
                if self.local:
                    _local_write(data, path, exclusive=True)
                else:
                    self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                continue
            except OSError as exc:
                raise _store_error(self.url, exc) from exc
            return version
        raise PublishError("target_error", f"could not find a free version number for {name} in {self.url}",
                           "another publish is racing this one; try again")

    def mark_failed(self, name: str, version: int) -> None:
        """Note that ``version`` never went live (its deploy or smoke test failed); the record stays."""
        directory = f"{self.root}/{FUNCTIONS_DIR}/{name}/failed"
        try:
            if self.local:
                _local_write(b"", f"{directory}/{int(version):08d}", exclusive=False)
            else:
                self.fs.pipe_file(f"{directory}/{int(version):08d}", b"")
        except OSError as exc:
            raise _store_error(self.url, exc) from exc

    def failed_versions(self, name: str) -> set:
        try:
            entries = self.fs.ls(f"{self.root}/{FUNCTIONS_DIR}/{name}/failed", detail=False)
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise _store_error(self.url, exc) from exc
        names = (entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries)
        return {int(found) for found in names if found.isdigit()}

    def delete_function(self, name: str) -> None:
        """Remove ``name``'s version records. Bundles stay: content-addressed, another function or an
        export may name the same digest."""
        path = f"{self.root}/{FUNCTIONS_DIR}/{name}"
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except OSError as exc:
            raise _store_error(self.url, exc) from exc


def _protocols(fs: Any) -> tuple:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


def _check_digest(digest: Any) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise PublishError("invalid_bundle", f"{digest!r} is not a sha256 hex digest",
                           "a bundle is named by the 64 hex digits of its sha256")
    return digest


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _temporary_beside(path: str) -> str:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.partial")


def _publish_local(temporary: str, path: str, exclusive: bool) -> None:
    try:
        if exclusive:
            os.link(temporary, path)  # fails if ``path`` exists: nobody's record is overwritten
        else:
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _local_write(data: bytes, path: str, *, exclusive: bool) -> None:
    temporary = _temporary_beside(path)
    with open(temporary, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    _publish_local(temporary, path, exclusive)


def _local_put(source: str, path: str, *, exclusive: bool) -> None:
    temporary = _temporary_beside(path)
    with open(source, "rb") as reader, open(temporary, "xb") as writer:
        for block in iter(lambda: reader.read(_CHUNK), b""):
            writer.write(block)
        writer.flush()
        os.fsync(writer.fileno())
    _publish_local(temporary, path, exclusive)


__all__ = ["BUNDLES_DIR", "FUNCTIONS_DIR", "BundleStore"]
