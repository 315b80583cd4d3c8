"""``requirements.lock``: the bundle's requirements and everything they pull in, pinned.

requirements.txt says what the function needs (a pin, a range...); the lock says which versions of
the whole environment it ran with in the notebook, read from installed metadata by
``frontier.lock``. A declared range must therefore allow the installed version. Each line is
pip-installable (``name==version``) and says who required it.

A distribution that was not installed from a package index (PEP 610's ``direct_url.json``: from a
local directory, a VCS URL or an archive file) is marked in the lock and in the manifest's ``lock``
with its ``origin``, so a server never resolves that name silently from its index, where another
package could own it (dependency confusion): it installs it from its wheelhouse or refuses the
publish naming it. When the installer recorded the archive's sha256 (``archive_info``), the lock
line carries it as ``--hash=sha256:...`` and the installer checks it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.frontier.distributions import installed_version
from jupyterlab_publish.frontier.lock import Lock, LockRoot, lock_closure
from jupyterlab_publish.requirement import Requirement, canonical_name

RUNTIME_REQUIRER = "service runtime"


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where an installed distribution came from, when it was not a package index (PEP 610)."""

    url: str
    kind: str  # "directory", "editable directory", "vcs" or "archive"
    sha256: str | None = None  # of the archive, when the installer recorded it

    def describe(self) -> str:
        return {"directory": "a local directory", "editable directory": "a local directory (editable)",
                "vcs": "a version-control URL", "archive": "an archive file or URL"}[self.kind] + f" ({self.url})"


def distribution_origin(name: str) -> Origin | None:
    """The origin of the installed distribution ``name`` if it did not come from an index; else None."""
    try:
        text = importlib.metadata.distribution(name).read_text("direct_url.json")
    except (importlib.metadata.PackageNotFoundError, OSError):
        return None
    try:
        data = json.loads(text or "null")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    if "vcs_info" in data:
        return Origin(data["url"], "vcs")
    if "archive_info" in data:
        info = data.get("archive_info") or {}
        sha256 = (info.get("hashes") or {}).get("sha256")
        if not sha256 and str(info.get("hash", "")).startswith("sha256="):  # the older, single-hash spelling
            sha256 = info["hash"].split("=", 1)[1]
        return Origin(data["url"], "archive", sha256 or None)
    editable = bool((data.get("dir_info") or {}).get("editable"))
    return Origin(data["url"], "editable directory" if editable else "directory")


def check_installed(requirement: Requirement) -> str | None:
    """The installed version the lock will pin; PublishError("bad_request") if the range excludes it.

    An exact pin that differs from the installed version is kept (the user chose it, the lock says
    so); a range stands for "what I have, within these bounds", so the installed version must fit.
    """
    installed = installed_version(requirement.name)
    if (
        installed
        and requirement.pinned_version is None
        and requirement.applies() is not False
        and requirement.allows(installed) is False
    ):
        raise PublishError(
            "bad_request",
            f"{requirement.line()} does not allow {requirement.name} {installed}, the version installed in "
            "the kernel: a published function gets the versions it ran with here.",
            f"Install a version in that range in the kernel (%pip install '{requirement.line()}'), restart it "
            f"and run the cell again, or widen the range (e.g. {requirement.name}=={installed}).",
            details={"requirement": requirement.line(), "installed": installed},
        )
    return installed


def lock_requirements(
    declared: list[Requirement], runtime: list[Requirement], requirer: str
) -> tuple[Lock, list[Requirement]]:
    """The lock of a bundle's requirements, and the requirements that could not be locked.

    ``requirer`` declared ``declared`` (checked by ``check_installed``); ``runtime`` is what the
    service runtime adds: a floor above the installed version (an old httptools) is left unlocked, for
    the target to resolve. A requirement whose marker fails here is not locked.
    """
    roots, requirements = [], {}
    for requirement in declared:
        requirements[requirement.key] = requirement
        if requirement.applies() is not False:
            roots.append(LockRoot.of(requirement, requirer))
    for requirement in runtime:
        requirements[requirement.key] = requirement
        if requirement.applies() is not False and _unlocked_reason(requirement) is None:
            roots.append(LockRoot.of(requirement, RUNTIME_REQUIRER))
    lock = lock_closure(roots)
    locked = {canonical_name(entry.name) for entry in lock.entries}
    unlocked = [requirements[key] for key in sorted(requirements) if key not in locked]
    return lock, unlocked


def render_requirements_lock(bundle_name: str, lock: Lock, unlocked: list[Requirement]) -> str:
    header = (
        f"# Lock of the jupyterlab-publish bundle {bundle_name!r}: its requirements and all their\n"
        "# dependencies, pinned to the versions installed in the notebook's kernel (read from their\n"
        "# installed metadata). Install with: pip install -r requirements.lock\n"
    )
    body = []
    for entry in lock.entries:
        note = f"required by {', '.join(entry.required_by)}" if entry.required_by else "required"
        installed = installed_version(entry.name)
        if installed and installed != entry.version:
            note += f" (pinned by you; the kernel has {installed})"
        origin = distribution_origin(entry.name)
        hashes = ""
        if origin is not None:
            note += f"; not from a package index: installed from {origin.describe()}"
            if origin.sha256:
                hashes = f" --hash=sha256:{origin.sha256}"
        body.append(f"{entry.name}=={entry.version}{hashes}  # {note}\n")
    for requirement in unlocked:
        reason = _unlocked_reason(requirement) or "not installed in the kernel: neither it nor its dependencies are locked"
        body.append(f"{requirement.line()}  # {reason}\n")
    unlocked_keys = {requirement.key for requirement in unlocked}
    for gone in lock.missing:
        if canonical_name(gone.name) not in unlocked_keys:
            body.append(f"# {gone.name} is required by {', '.join(gone.required_by)} but not installed in the kernel\n")
    return header + "".join(body)


def manifest_lock(lock: Lock) -> list[dict]:
    """The manifest's ``lock``: ``[{"name", "version", "required_by"}]``, and ``"origin": URL`` for a
    distribution installed from elsewhere than a package index (with ``"sha256"`` when known)."""
    entries = []
    for e in lock.entries:
        entry = {"name": e.name, "version": e.version, "required_by": list(e.required_by)}
        origin = distribution_origin(e.name)
        if origin is not None:
            entry["origin"] = origin.url
            if origin.sha256:
                entry["sha256"] = origin.sha256
        entries.append(entry)
    return entries


def _unlocked_reason(requirement: Requirement) -> str | None:
    """Why the kernel's environment cannot lock ``requirement``, when it is installed; else None."""
    if requirement.applies() is False:
        return "its marker does not hold in the kernel's environment: not locked"
    installed = installed_version(requirement.name)
    if installed and requirement.pinned_version is None and requirement.allows(installed) is False:
        return f"the kernel has {installed}, outside this range: not locked"
    return None
