"""Requirements: validate what the caller declares, add the runtime's own, render requirements.txt.

Validation uses regular expressions written from PEP 508 (names) and PEP 440 (versions) rather
than ``packaging``, because this package runs in the user's kernel with the standard library and
cloudpickle only. Only exact pins (``name==version``) or bare names are accepted: a bundle records
what the notebook ran with, it does not express ranges.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

import cloudpickle

from jupyterlab_publish.errors import PublishError

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_NAME_WITH_EXTRAS = re.compile(rf"^(?P<name>{_NAME})(?P<extras>\[{_NAME}(?:,{_NAME})*\])?$")
_VERSION = re.compile(
    r"""^
    (?:\d+!)?                           # epoch
    \d+(?:\.\d+)*                       # release segments
    (?:(?:a|b|rc)\d+)?                  # pre-release
    (?:\.post\d+)?                      # post-release
    (?:\.dev\d+)?                       # development release
    (?:\+[a-z0-9]+(?:\.[a-z0-9]+)*)?    # local version label
    $""",
    re.VERBOSE | re.IGNORECASE,
)

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

_FORMAT_HINT = 'Give each requirement as {"name": "scikit-learn", "version": "1.5.2", "why": "..."}.'


def normalize_name(name: str) -> str:
    """The comparable form of a distribution name (PEP 503): ``Scikit_Learn`` → ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class RequirementsPlan:
    declared: list  # the caller's entries, validated: {"name", "version", "why"}
    runtime: list  # lines the runtime needs, as they appear in requirements.txt
    lines: list  # every line of requirements.txt, sorted by normalised name, no duplicates


def plan_requirements(entries) -> RequirementsPlan:
    declared = _validate(entries)
    by_name = {normalize_name(_split_extras(e["name"])[0]): e for e in declared}
    lines = {key: _line(e) for key, e in by_name.items()}
    runtime = []
    for key, line in _runtime_lines(by_name):
        lines[key] = line
        runtime.append(line)
    return RequirementsPlan(declared, runtime, [lines[key] for key in sorted(lines)])


def render_requirements_txt(bundle_name: str, lines) -> str:
    header = (
        f"# Requirements of the jupyterlab-publish bundle {bundle_name!r}: the distributions its\n"
        "# function needs, pinned to the versions in the notebook's kernel, and those of the service\n"
        "# runtime (cloudpickle, starlette, uvicorn; httptools and uvloop for speed).\n"
        "# Install with: pip install -r requirements.txt\n"
    )
    return header + "".join(f"{line}\n" for line in lines)


def _validate(entries) -> list:
    if isinstance(entries, (str, bytes, dict)):
        raise PublishError("bad_request", "requirements must be a list of entries, not a single value", _FORMAT_HINT)
    declared, seen = [], {}
    for index, entry in enumerate(entries or ()):
        where = f"requirement #{index + 1} ({entry!r})"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PublishError("bad_request", f"{where} is not an entry with a name", _FORMAT_HINT)
        name = entry["name"].strip()
        version = entry.get("version") or ""
        why = entry.get("why") or ""
        if not isinstance(version, str) or not isinstance(why, str):
            raise PublishError("bad_request", f"{where}: version and why must be strings", _FORMAT_HINT)
        version = version.strip()
        if not _NAME_WITH_EXTRAS.match(name):
            raise PublishError(
                "bad_request",
                f"{where}: {name!r} is not a valid distribution name",
                "Use the name pip installs, e.g. 'scikit-learn' or 'uvicorn[standard]'.",
            )
        if version and not _VERSION.match(version):
            raise PublishError(
                "bad_request",
                f"{where}: {version!r} is not an exact version of {name}",
                "Give the installed version (e.g. '1.5.2', see `pip show <name>`), or leave it empty "
                "to leave the distribution unpinned.",
            )
        key = normalize_name(_split_extras(name)[0])
        if key in seen:
            if (seen[key]["name"], seen[key]["version"]) == (name, version):
                continue  # the same entry twice is harmless
            raise PublishError(
                "bad_request",
                f"{where} conflicts with {seen[key]['name']}=={seen[key]['version']} listed before it",
                "List each distribution once.",
            )
        seen[key] = {"name": name, "version": version, "why": why}
        declared.append(seen[key])
    return declared


def _split_extras(name: str) -> tuple[str, str]:
    match = _NAME_WITH_EXTRAS.match(name)
    return match["name"], match["extras"] or ""


def _line(entry: dict) -> str:
    return f"{entry['name']}=={entry['version']}" if entry["version"] else entry["name"]


def _runtime_lines(declared: dict):
    """Yield (normalised name, line) for the runtime's own needs, respecting what the caller listed."""
    # The pickle is read by the cloudpickle that wrote it: its version is not negotiable.
    kernel_cloudpickle = cloudpickle.__version__
    listed = declared.get("cloudpickle")
    if listed is not None and listed["version"] and listed["version"] != kernel_cloudpickle:
        raise PublishError(
            "bad_request",
            f"cloudpickle=={listed['version']} is listed, but the kernel pickles with cloudpickle "
            f"{kernel_cloudpickle}",
            f"Remove the cloudpickle entry or pin it to {kernel_cloudpickle}: a pickle must be read by "
            "the version that wrote it.",
        )
    yield "cloudpickle", f"{listed['name'] if listed else 'cloudpickle'}=={kernel_cloudpickle}"
    for dist, floor in RUNTIME_FLOORS.items():
        if dist in declared:
            yield dist, _line(declared[dist])  # the caller's choice wins; listed once
            continue
        try:
            yield dist, f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            yield dist, f"{dist}>={floor}"
    for dist, (floor, marker) in RUNTIME_ACCELERATORS.items():
        if dist in declared:
            yield dist, _line(declared[dist])
            continue
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        pin = f"=={installed}" if installed and _release(installed) >= _release(floor) else f">={floor}"
        yield dist, f"{dist}{pin}{marker}"


def _release(version: str) -> tuple:
    """The leading numeric release of a version (``0.21.0rc1`` → (0, 21, 0)), enough to compare with a floor."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()
