"""``requirements.lock``: the bundle's requirements and everything they pull in, pinned.

requirements.txt says what the function needs; the lock says which versions of the whole
environment it ran with in the notebook, read from installed metadata by ``frontier.lock``. Each
line is pip-installable (``name==version``) and says who required it.
"""

from __future__ import annotations

import re

from jupyterlab_publish.frontier.distributions import canonicalize_name, installed_version
from jupyterlab_publish.frontier.lock import Lock, LockRoot, lock_closure

RUNTIME_REQUIRER = "service runtime"
_LINE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?:==\s*(?P<version>\S+))?"
)


def _root(line_or_name: str, version: str | None, requirer: str) -> tuple[LockRoot, str]:
    match = _LINE.match(line_or_name)
    extras = tuple(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
    pin = version if version is not None else match["version"]
    return LockRoot(match["name"], requirer, extras, pin or None), line_or_name


def lock_requirements(declared: list, runtime: list, requirer: str) -> tuple[Lock, list[str]]:
    """The lock of a bundle's requirements, and the requirement lines that could not be locked.

    ``declared``: validated ``{"name", "version"}`` entries (``requirer`` declared them);
    ``runtime``: requirements.txt lines the service runtime adds.
    """
    roots, lines = [], {}
    for entry in declared:
        root, _ = _root(entry["name"], entry.get("version") or None, requirer)
        roots.append(root)
        lines[canonicalize_name(root.name)] = f"{root.name}=={root.version}" if root.version else root.name
    for text in runtime:
        root, line = _root(text, None, RUNTIME_REQUIRER)
        roots.append(root)
        lines[canonicalize_name(root.name)] = line
    lock = lock_closure(roots)
    locked = {canonicalize_name(entry.name) for entry in lock.entries}
    unlocked = [lines[key] for key in sorted(lines) if key not in locked]
    return lock, unlocked


def render_requirements_lock(bundle_name: str, lock: Lock, unlocked: list[str]) -> str:
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
    for line in unlocked:
        body.append(f"{line}  # not installed in the kernel: neither it nor its dependencies are locked\n")
    for gone in lock.missing:
        if any(canonicalize_name(gone.name) == canonicalize_name(_LINE.match(u)["name"]) for u in unlocked):
            continue
        body.append(f"# {gone.name} is required by {', '.join(gone.required_by)} but not installed in the kernel\n")
    return header + "".join(body)


def manifest_lock(lock: Lock) -> list[dict]:
    """The manifest's ``lock``: ``[{"name", "version", "required_by"}]``."""
    return [{"name": e.name, "version": e.version, "required_by": list(e.required_by)} for e in lock.entries]
