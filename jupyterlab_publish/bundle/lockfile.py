"""``requirements.lock``: the bundle's requirements and everything they pull in, pinned.

requirements.txt says what the function needs (a pin, a range...); the lock says which versions of
the whole environment it ran with in the notebook, read from installed metadata by
``frontier.lock``. A declared range must therefore allow the installed version. Each line is
pip-installable (``name==version``) and says who required it.
"""

from __future__ import annotations

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.frontier.distributions import installed_version
from jupyterlab_publish.frontier.lock import Lock, LockRoot, lock_closure
from jupyterlab_publish.requirement import Requirement, canonical_name

RUNTIME_REQUIRER = "service runtime"


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
        body.append(f"{entry.name}=={entry.version}  # {note}\n")
    for requirement in unlocked:
        reason = _unlocked_reason(requirement) or "not installed in the kernel: neither it nor its dependencies are locked"
        body.append(f"{requirement.line()}  # {reason}\n")
    unlocked_keys = {requirement.key for requirement in unlocked}
    for gone in lock.missing:
        if canonical_name(gone.name) not in unlocked_keys:
            body.append(f"# {gone.name} is required by {', '.join(gone.required_by)} but not installed in the kernel\n")
    return header + "".join(body)


def manifest_lock(lock: Lock) -> list[dict]:
    """The manifest's ``lock``: ``[{"name", "version", "required_by"}]``."""
    return [{"name": e.name, "version": e.version, "required_by": list(e.required_by)} for e in lock.entries]


def _unlocked_reason(requirement: Requirement) -> str | None:
    """Why the kernel's environment cannot lock ``requirement``, when it is installed; else None."""
    if requirement.applies() is False:
        return "its marker does not hold in the kernel's environment: not locked"
    installed = installed_version(requirement.name)
    if installed and requirement.pinned_version is None and requirement.allows(installed) is False:
        return f"the kernel has {installed}, outside this range: not locked"
    return None
