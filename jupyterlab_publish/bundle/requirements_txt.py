"""requirements.txt: the caller's requirements, one per distribution, plus what the service runtime needs.

The caller declares ``Requirement``s (a pin, a range, extras, a marker: what pip accepts); the plan
refuses two different requirements for one distribution, adds the runtime's own (cloudpickle at the
kernel's version, starlette and uvicorn, httptools and uvloop for speed) unless the caller chose a
version of them, and renders the file. The lock (``lockfile.py``) pins what the kernel has installed.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import cloudpickle

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.requirement import Requirement, parse_requirements

from .lockfile import check_installed

RUNTIME_WHY = "service runtime"
# What service.py imports, with the floor used when the kernel does not have the distribution
# installed (then the environment gets a version we know the runtime works with).
RUNTIME_FLOORS = {"starlette": "0.37", "uvicorn": "0.30"}
# What the runtime uses when importable, for speed: uvicorn's C HTTP parser and event loop. The
# kernel's version when it has one at or above the floor, else the floor; uvloop is built neither for
# Windows nor for Pythons other than CPython, so its line carries a marker.
RUNTIME_ACCELERATORS = {
    "httptools": ("0.6", ""),
    "uvloop": ("0.19", ' ; sys_platform != "win32" and platform_python_implementation == "CPython"'),
}


@dataclass(frozen=True)
class RequirementsPlan:
    declared: tuple[Requirement, ...]  # the caller's, validated, in their order, one per distribution
    runtime: tuple[Requirement, ...]  # what the runtime needs (the caller's own entry where they gave one)

    @property
    def requirements(self) -> list[Requirement]:
        """Every requirement of requirements.txt, sorted by canonical name, one per distribution."""
        by_key = {r.key: r for r in self.declared}
        by_key.update({r.key: r for r in self.runtime})
        return [by_key[key] for key in sorted(by_key)]

    @property
    def lines(self) -> list[str]:
        return [r.line() for r in self.requirements]


def plan_requirements(entries) -> RequirementsPlan:
    """Validate ``entries`` (Requirements, or wire entries as a manifest holds them) and add the runtime's.

    A range must allow the version installed in the kernel, which the lock will pin.
    """
    declared: dict[str, Requirement] = {}
    for index, requirement in enumerate(parse_requirements(entries, accept_text=False)):
        before = declared.get(requirement.key)
        if before is None:
            try:
                check_installed(requirement)
            except PublishError as err:
                raise PublishError(err.code, f"requirement #{index + 1}: {err.message}", err.hint,
                                   details={**err.details, "index": index, "field": "requirements"}) from None
            declared[requirement.key] = requirement
        elif before != requirement:  # the same requirement twice is harmless
            raise PublishError(
                "bad_request",
                f"requirement #{index + 1} ({requirement.line()}) conflicts with {before.line()} listed before it",
                "List each distribution once.",
                details={"index": index, "field": "requirements"},
            )
    return RequirementsPlan(tuple(declared.values()), tuple(_runtime_requirements(declared)))


def render_requirements_txt(bundle_name: str, lines) -> str:
    header = (
        f"# Requirements of the jupyterlab-publish bundle {bundle_name!r}: the distributions its\n"
        "# function needs, as declared (the analysis pins the versions in the notebook's kernel), and\n"
        "# those of the service runtime (cloudpickle, starlette, uvicorn; httptools and uvloop for speed).\n"
        "# Install with: pip install -r requirements.txt\n"
    )
    return header + "".join(f"{line}\n" for line in lines)


def _runtime_requirements(declared: dict[str, Requirement]):
    """The runtime's own needs, respecting what the caller listed (the caller's choice wins)."""
    # The pickle is read by the cloudpickle that wrote it: its version is not negotiable.
    kernel_cloudpickle = cloudpickle.__version__
    listed = declared.get("cloudpickle")
    if listed is not None and listed.specifier and not listed.allows(kernel_cloudpickle):
        raise PublishError(
            "bad_request",
            f"{listed.line()} is listed, but the kernel pickles with cloudpickle {kernel_cloudpickle}",
            f"Remove the cloudpickle entry or pin it to {kernel_cloudpickle}: a pickle must be read by "
            "the version that wrote it.",
        )
    name = listed.name if listed is not None else "cloudpickle"
    yield Requirement.parse(f"{name}=={kernel_cloudpickle}", listed.why if listed else RUNTIME_WHY)
    for dist, floor in RUNTIME_FLOORS.items():
        if dist in declared:
            yield declared[dist]
            continue
        installed = _installed(dist)
        yield Requirement.parse(f"{dist}=={installed}" if installed else f"{dist}>={floor}", RUNTIME_WHY)
    for dist, (floor, marker) in RUNTIME_ACCELERATORS.items():
        if dist in declared:
            yield declared[dist]
            continue
        at_floor = Requirement.parse(f"{dist}>={floor}{marker}", RUNTIME_WHY)
        installed = _installed(dist)
        if installed and at_floor.allows(installed):  # a pre-release of a later version counts
            yield Requirement.parse(f"{dist}=={installed}{marker}", RUNTIME_WHY)
        else:
            yield at_floor


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
