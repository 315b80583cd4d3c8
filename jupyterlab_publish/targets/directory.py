"""A target that writes bundles to a directory tree, for handing them to other systems.

Layout: ``<root>/<name>/v<N>/`` holds one complete, verified bundle. Nothing is served. Each bundle
is signed with this user's key (``<jupyter data dir>/jupyterlab_publish/signing.key``, created on
first use), so ``read_bundle(path, key=user_key())`` later proves it is one we wrote, unchanged.

Its management verbs read the tree: ``list``, ``show``, ``versions`` and ``delete``. It has no
``rollback`` (no version is live) and no ``logs`` (nothing runs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from ..errors import PublishError
from ..names import ENDPOINT_NAME
from .base import Deployment, Progress, Target, check_name, progress_or_noop
from .results import FunctionInfo, FunctionSummary, VersionInfo

_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
# A concurrent writer may take the version number we computed; retry a few times with the next.
_MAX_ATTEMPTS = 20


def _existing_versions(function_dir: Path) -> list:
    if not function_dir.is_dir():
        return []
    return [int(m.group(1)) for m in map(_VERSION_DIR.match, os.listdir(function_dir)) if m]


def _manifest(version_dir: Path) -> dict:
    """The version's manifest, or {} if it cannot be read (the listing still shows the version)."""
    try:
        # The name is bundle/format.py's MANIFEST; importing bundle/ would load cloudpickle to list.
        manifest = json.loads((version_dir / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _not_found(name: str, root: Path) -> PublishError:
    return PublishError("not_found", f"no function named {name} in {root}",
                        f"`jupyter publish list --target dir:{root}` lists them")


class DirectoryTarget(Target):
    kind = "dir"
    label = "Directory (write bundles, serve nothing)"
    spec_example = "dir:/path/to/bundles"
    capabilities = frozenset({"list", "show", "versions", "delete"})

    def __init__(self, root, *, key_path=None):
        self.root = Path(root).expanduser()
        self.key_path = key_path  # None: the per-user key in the Jupyter data directory

    @classmethod
    def from_spec(cls, spec: str, *, token: Optional[str] = None) -> "DirectoryTarget":
        _, _, path = spec.partition(":")
        if not path.strip():
            raise PublishError(
                "unknown_target",
                f"the directory target {spec!r} names no directory",
                "write it as dir:/some/path",
            )
        return cls(path.strip())

    def spec(self) -> str:
        return f"dir:{self.root}"

    def describe(self) -> dict:
        return {**super().describe(), "label": f"Directory {self.root}"}

    def push(self, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False,
             public: bool = False) -> Deployment:
        """Write the bundle as the next version. ``new_version`` and ``public`` are accepted for the
        common interface but change nothing: a directory keeps every version side by side and
        serves none, so no endpoint can be replaced and no key is needed (``Deployment.key`` is None).
        """
        # The bundle package pulls in cloudpickle: load on use.
        from ..bundle import read_bundle
        from ..bundle.format import MANIFEST, SIGNATURE  # (as above)
        from ..bundle.signature import sign_manifest, user_key  # (as above)

        report = progress_or_noop(progress)
        name = check_name(bundle.manifest.get("name"))
        function_dir = self.root / name
        try:
            function_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(
                "target_error", f"cannot create {function_dir}: {exc}", "check the path and its permissions"
            ) from exc

        key = user_key(self.key_path)
        report("pushing", 0.1, f"copying the bundle to {function_dir}")
        # Copy into a hidden sibling first so a reader never sees a half-written version, sign the
        # copy's manifest, then verify it (signature, every file's sha256) before one rename shows it.
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=function_dir))
        try:
            copied = staging / "bundle"
            shutil.copytree(Path(bundle.path), copied)
            (copied / SIGNATURE).write_bytes(sign_manifest((copied / MANIFEST).read_bytes(), key))
            read_bundle(copied, key=key)
            report("pushing", 0.8, "bundle copied and verified")
            version = self._publish_version(function_dir, copied)
        except OSError as exc:
            raise PublishError(
                "target_error", f"cannot write the bundle to {function_dir}: {exc}", "check free space and permissions"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        final = function_dir / f"v{version}"
        report("pushing", 1.0, f"wrote version {version} to {final}")
        return Deployment(
            name=name, version=version, url=final.resolve().as_uri(), target=self.kind, bundle_path=str(final)
        )

    @staticmethod
    def _publish_version(function_dir: Path, copied: Path) -> int:
        """Rename ``copied`` to the next free ``v<N>``; rename refuses an existing directory."""
        for _ in range(_MAX_ATTEMPTS):
            version = max(_existing_versions(function_dir), default=0) + 1
            try:
                os.rename(copied, function_dir / f"v{version}")
                return version
            except OSError:
                if not (function_dir / f"v{version}").exists():
                    raise
        raise PublishError(
            "target_error",
            f"could not claim a version number in {function_dir}: other writers kept taking it",
            "try again",
        )

    # -- management verbs: read the tree ----------------------------------------------------------

    def _function_dirs(self) -> list:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PublishError("target_error", f"cannot read {self.root}: {exc}",
                               "check the path and its permissions") from exc
        return [self.root / entry for entry in entries if ENDPOINT_NAME.match(entry) and (self.root / entry).is_dir()]

    def _versions(self, function_dir: Path) -> list:
        out = []
        for version in sorted(_existing_versions(function_dir)):
            version_dir = function_dir / f"v{version}"
            manifest = _manifest(version_dir)
            out.append(VersionInfo(version=version, status="stored", created=manifest.get("created"),
                                   function=manifest.get("function"), location=str(version_dir),
                                   provenance=manifest.get("provenance")))
        return out

    def list(self) -> list:
        out = []
        for function_dir in self._function_dirs():
            versions = self._versions(function_dir)
            if versions:  # a directory whose only version is still being written is not a function yet
                out.append(FunctionSummary(name=function_dir.name, url=function_dir.resolve().as_uri(),
                                           created=versions[0].created))
        return out

    def versions(self, name: str) -> list:
        versions = self._versions(self.root / check_name(name))
        if not versions:
            raise _not_found(name, self.root)
        return versions

    def show(self, name: str) -> FunctionInfo:
        versions = self.versions(name)
        return FunctionInfo(name=name, url=(self.root / name).resolve().as_uri(), versions=tuple(versions))

    def delete(self, name: str) -> None:
        function_dir = self.root / check_name(name)
        if not _existing_versions(function_dir):
            raise _not_found(name, self.root)
        # One rename takes every version away at once; a reader never sees half a function.
        doomed = Path(tempfile.mkdtemp(prefix=f".deleting-{name}-", dir=self.root))
        try:
            os.rename(function_dir, doomed / name)
        except OSError as exc:
            doomed.rmdir()
            raise PublishError("target_error", f"cannot delete {function_dir}: {exc}",
                               "check the permissions of the directory") from exc
        shutil.rmtree(doomed, ignore_errors=True)
