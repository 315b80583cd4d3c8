"""The lock: every distribution the declared ones pull in, pinned to the version installed here.

The closure is read from installed metadata (``Requires-Dist`` of each distribution, markers
evaluated for this interpreter, the extras a requirement asks for followed), not computed by a
resolver: the kernel's environment is the one the function ran in, so these versions are known to
work together. Only installed distributions can be pinned; a dependency whose marker holds here but
that is not installed is reported as missing. ``Requires-Dist`` lines are read as ``Requirement``s
(``packaging``), their markers evaluated with the extras each requirer asked for; a marker that
cannot be evaluated is followed when the dependency is installed and never reported missing.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Iterable

from ..requirement import Requirement, canonical_name
from .distributions import get_index

_BASE = ""  # the context of a distribution's unconditional dependencies (no extra requested)


@dataclass(frozen=True)
class LockRoot:
    """A declared distribution, the ``extras`` it is declared with, and who declared it.

    ``version`` is the declared pin: when it differs from the installed version the lock keeps the
    declared one (the user chose it) and still follows the installed distribution's dependencies.
    """

    name: str
    requirer: str
    extras: tuple[str, ...] = ()
    version: str | None = None

    @classmethod
    def of(cls, requirement: Requirement, requirer: str) -> LockRoot:
        """The root for a declared requirement: a range locks the installed version, a pin itself."""
        return cls(requirement.name, requirer, requirement.extras, requirement.pinned_version)


@dataclass
class LockEntry:
    name: str
    version: str
    required_by: list[str] = field(default_factory=list)


@dataclass
class MissingDependency:
    name: str
    required_by: list[str] = field(default_factory=list)


@dataclass
class Lock:
    entries: list[LockEntry] = field(default_factory=list)
    missing: list[MissingDependency] = field(default_factory=list)


def _dependencies(key: str) -> list[Requirement]:
    """The parsed ``Requires-Dist`` of an installed distribution, kept with the index."""
    index = get_index()
    memo_key = ("requires", key)
    if memo_key not in index.cache:
        dist = index.by_key.get(key)
        try:
            lines = (dist.requires if dist is not None else None) or []
        except Exception:  # unreadable metadata: nothing to follow
            lines = []
        index.cache[memo_key] = [spec for spec in map(Requirement.read, lines) if spec is not None]
    return index.cache[memo_key]


def _applies(spec: Requirement, context: str) -> bool | None:
    return spec.applies(frozenset({context}) if context != _BASE else frozenset())


def lock_closure(roots: Iterable[LockRoot]) -> Lock:
    """Walk ``Requires-Dist`` from ``roots``; return installed versions and who required each."""
    index = get_index()
    pins: dict[str, str] = {}
    required_by: dict[str, set[str]] = collections.defaultdict(set)
    missing: dict[str, set[str]] = collections.defaultdict(set)
    spelled: dict[str, str] = {}  # key -> name as written, for what is not installed
    followed: set[tuple[str, str]] = set()  # (key, context) pairs already walked
    queue: collections.deque[tuple[str, str]] = collections.deque()

    def reach(name: str, extras: Iterable[str], requirer: str) -> bool:
        key = canonical_name(name)
        if key not in index.by_key:
            return False
        required_by[key].add(requirer)
        for context in (_BASE, *extras):
            if (key, context) not in followed:
                followed.add((key, context))
                queue.append((key, context))
        return True

    for root in roots:
        if reach(root.name, root.extras, root.requirer):
            if root.version:
                pins[canonical_name(root.name)] = root.version
        else:
            spelled.setdefault(canonical_name(root.name), root.name)
            missing[canonical_name(root.name)].add(root.requirer)
    while queue:
        key, context = queue.popleft()
        requirer = index.names[key]
        for spec in _dependencies(key):
            verdict = _applies(spec, context)
            if verdict is False:
                continue
            if context != _BASE and _applies(spec, _BASE) is not False:
                continue  # unconditional: already followed in the base context
            if not reach(spec.name, spec.extras, requirer) and verdict is True:
                spelled.setdefault(spec.key, spec.name)
                missing[spec.key].add(requirer)
    entries = []
    for key in sorted(required_by):
        who = sorted(required_by[key] - {index.names[key]})  # pandas[pyarrow] is required by pandas
        entries.append(LockEntry(index.names[key], pins.get(key) or index.versions[key] or "", who))
    gone = [MissingDependency(spelled[k], sorted(who)) for k, who in sorted(missing.items()) if k not in required_by]
    return Lock(entries, gone)
