"""Read ``Requires-Dist`` lines (PEP 508) and decide whether each applies in this environment.

``packaging`` is the library for this and is used whenever it can be imported (it almost always
can: pip, setuptools and most environments install it). ``frontier/`` must run on the standard
library alone, so without it a conservative fallback takes over:

* the line is split by a regular expression written from PEP 508 (name, extras, marker);
* a marker naming ``extra`` applies only if one of the extras it names was requested;
* any other marker is *unknown*. The lock then follows the dependency if it is installed and says
  nothing if it is not, so it may pin an installed platform-specific dependency this interpreter
  does not need (harmless to install), but never drops one that it does need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .distributions import canonicalize_name

_LINE = re.compile(
    r"""^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*
    (?:\[(?P<extras>[^\]]*)\])?
    [^;]*?(?:;(?P<marker>.*))?$""",
    re.VERBOSE,
)
_EXTRA_TEST = re.compile(r"""\bextra\s*==\s*['"]([^'"]+)['"]|['"]([^'"]+)['"]\s*==\s*extra\b""")


@dataclass(frozen=True)
class DependencySpec:
    """One ``Requires-Dist`` line: who is required, with which extras, under which condition."""

    name: str
    extras: tuple[str, ...]
    marker: object  # a packaging Marker, the marker's text (fallback), or None

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def applies(self, extras: frozenset[str]) -> bool | None:
        """True/False if the marker holds/fails here with ``extras`` requested; None if unknown."""
        if self.marker is None:
            return True
        if isinstance(self.marker, str):
            return _fallback_applies(self.marker, extras)
        environments = [{"extra": extra} for extra in sorted(extras)] or [{"extra": ""}]
        try:
            return any(self.marker.evaluate(env) for env in environments)
        except Exception:  # an undefined marker variable in odd metadata: fall back to "unknown"
            return None


def _packaging_requirement():
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return None
    return Requirement, InvalidRequirement


def parse_dependency(line: str) -> DependencySpec | None:
    """Parse one ``Requires-Dist`` value; None for a line that is not a requirement."""
    found = _packaging_requirement()
    if found is not None:
        requirement_class, invalid = found
        try:
            parsed = requirement_class(line)
        except invalid:
            return None
        return DependencySpec(parsed.name, tuple(sorted(parsed.extras)), parsed.marker)
    match = _LINE.match(line)
    if match is None:
        return None
    extras = tuple(sorted(e.strip() for e in (match["extras"] or "").split(",") if e.strip()))
    marker = (match["marker"] or "").strip() or None
    return DependencySpec(match["name"], extras, marker)


def _fallback_applies(marker: str, extras: frozenset[str]) -> bool | None:
    named = {canonicalize_name(a or b) for a, b in _EXTRA_TEST.findall(marker)}
    if named:
        return bool(named & {canonicalize_name(e) for e in extras})
    return None
