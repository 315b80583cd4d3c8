"""Judge a declared list against the ground truth, through installed dependency metadata.

closure(S): S plus every distribution its members require, transitively, read from the installed
``Requires-Dist`` (environment markers evaluated here, extras not selected).

* a needed distribution is *covered* when it is in closure(declared): installing the declared list
  installs it;
* a declared distribution is *correct* when it is in closure(needed): it would be installed anyway
  by what the function truly needs, so declaring it costs nothing;
* a case is *exact* when every needed distribution is covered and every declared one is correct.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re

from packaging.requirements import InvalidRequirement, Requirement

# Present in every clean environment (the runtime unpickles with it), so never counted.
RUNTIME = frozenset({"cloudpickle"})
# The benchmarked tool itself (installed editable here, not a requirement of anything published).
NEVER_COUNTED = RUNTIME | {"jupyterlab-publish"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=None)
def installed() -> dict[str, importlib.metadata.Distribution]:
    out = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonical(name), dist)
    return out


def installed_version(name: str) -> str | None:
    dist = installed().get(canonical(name))
    return dist.version if dist is not None else None


@functools.lru_cache(maxsize=None)
def requires(name: str) -> frozenset[str]:
    dist = installed().get(name)
    out = set()
    for text in (dist.requires or []) if dist is not None else []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            out.add(canonical(requirement.name))
    return frozenset(out)


def closure(names) -> frozenset[str]:
    seen: set[str] = set()
    stack = [canonical(n) for n in names]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(requires(name) - seen)
    return frozenset(seen)


def counted(names) -> list[str]:
    return sorted({canonical(n) for n in names} - NEVER_COUNTED)


def judge(needed, declared) -> dict:
    needed, declared = counted(needed), counted(declared)
    have, allowed = closure(declared), closure(needed)
    missing = [n for n in needed if n not in have]
    extra = [d for d in declared if d not in allowed]
    return {
        "needed": needed,
        "counted": declared,
        "covered": len(needed) - len(missing),
        "missing": missing,
        "correct": len(declared) - len(extra),
        "extra": extra,
        "exact": not missing and not extra,
    }
