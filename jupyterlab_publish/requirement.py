"""One requirement type, parsed once, with ``packaging``: what a published function needs installed.

A ``Requirement`` is what pip accepts on a line of requirements.txt (PEP 508): a distribution name,
optionally with extras, a version pin or range, and an environment marker. It travels as an object
from the analysis and the API through the bundle, its lock and the pre-flight check to the function
server; text is made only at the edges: ``line()`` for requirements files, ``to_entry()`` for the
manifest and the comm protocol.

Entries on the wire come in two shapes, both read by ``Requirement.from_entry``:
``{"requirement": "scikit-learn>=1.8", "why": "..."}`` (comm protocol 3) and
``{"name": "scikit-learn", "version": "1.5.2", "why": "..."}`` (protocol 2, and manifests written
before it), where ``version`` is an exact version.

``packaging`` is imported on first use, not with this module: the kernel imports this package in
every notebook, and only analysing or publishing needs to read a requirement.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from .errors import PublishError

REQUIREMENT_HINT = (
    "Write what pip accepts: a distribution name, optionally with extras, a version or a range, and a "
    "marker, e.g. 'scikit-learn==1.5.2', 'scikit-learn>=1.8', 'pandas[parquet]' or "
    "'uvloop; sys_platform != \"win32\"'."
)
ENTRY_HINT = (
    'Give each requirement as text ("scikit-learn>=1.8") or as an entry '
    '{"requirement": "scikit-learn==1.5.2", "why": "..."}.'
)


@functools.lru_cache(maxsize=None)
def _packaging():
    # Imported on first use, not at module level: `import jupyterlab_publish.kernel` stays light.
    from packaging import markers, requirements, specifiers, utils, version

    return types.SimpleNamespace(
        markers=markers, requirements=requirements, specifiers=specifiers, utils=utils, version=version
    )


@functools.lru_cache(maxsize=4096)
def canonical_name(name: str) -> str:
    """The comparable form of a distribution (or extra) name, PEP 503: ``Scikit_Learn`` → ``scikit-learn``."""
    return _packaging().utils.canonicalize_name(name)


@functools.lru_cache(maxsize=1024)
def _marker(text: str):
    return _packaging().markers.Marker(text)


@functools.lru_cache(maxsize=1024)
def _specifier(text: str):
    return _packaging().specifiers.SpecifierSet(text)


@dataclass(frozen=True)
class Requirement:
    """One requirement. Two are equal when they ask for the same thing, however spelled or explained."""

    name: str = field(compare=False)  # as written: "Scikit_Learn"
    key: str  # canonical: "scikit-learn"
    extras: tuple[str, ...] = ()  # canonical, sorted
    specifier: str = ""  # "==1.5.2", ">=1.8", "<2,>=1.8", or empty
    marker: str = ""  # 'sys_platform != "win32"', or empty
    url: str = ""  # a direct reference (``name @ url``): read from metadata and files, never declared
    why: str = field(default="", compare=False)  # who needs it: an analysis chain, "added by you"...

    # -- reading ------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: Any, why: str = "") -> Requirement:
        """A requirement a user or caller declares; PublishError("bad_request") saying why it is not one.

        Direct references (``name @ url``) are refused: the target installs from its package index,
        and a bundle must not make it fetch an arbitrary URL.
        """
        if not isinstance(text, str):
            raise PublishError("bad_request", f"{text!r} is not a requirement: it must be text", REQUIREMENT_HINT)
        req = _packaging().requirements
        try:
            parsed = req.Requirement(text.strip())
        except req.InvalidRequirement as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "not PEP 508"
            raise PublishError("bad_request", f"{text!r} is not a requirement pip accepts ({reason}).",
                               REQUIREMENT_HINT) from None
        if parsed.url:
            raise PublishError(
                "bad_request",
                f"{text!r} names a URL; a published function's requirements come from the package index.",
                "Publish the distribution to an index the target can reach and require it by name "
                f"('{parsed.name}' or '{parsed.name}==<version>').",
            )
        return cls._of(parsed, why)

    @classmethod
    def read(cls, text: str) -> Requirement | None:
        """A line written by a tool (a ``Requires-Dist`` value, a requirements file): None if it is not one."""
        req = _packaging().requirements
        try:
            return cls._of(req.Requirement(text.strip()), "")
        except req.InvalidRequirement:
            return None

    @classmethod
    def from_entry(cls, entry: Any, why: str = "") -> Requirement:
        """A requirement from text, a wire entry (protocol 3 or 2) or a Requirement; ``why`` if it gives none."""
        if isinstance(entry, Requirement):
            return entry
        if isinstance(entry, str):
            return cls.parse(entry, why)
        if not isinstance(entry, dict):
            raise PublishError("bad_request", f"{entry!r} is not a requirement entry", ENTRY_HINT)
        given_why = entry.get("why")
        if given_why is not None and not isinstance(given_why, str):
            raise PublishError("bad_request", f"'why' must be text, not {given_why!r}", ENTRY_HINT)
        why = given_why or why
        if "requirement" in entry:
            return cls.parse(entry["requirement"], why)
        if isinstance(entry.get("name"), str):
            return cls._from_name_and_version(entry["name"], entry.get("version"), why)
        raise PublishError("bad_request", f"{entry!r} has neither a requirement nor a name", ENTRY_HINT)

    @classmethod
    def _from_name_and_version(cls, name: str, version: Any, why: str) -> Requirement:
        """Protocol 2: ``name`` (extras allowed) and an exact ``version``, or none."""
        if version is not None and not isinstance(version, str):
            raise PublishError("bad_request", f"the version of {name} must be text, not {version!r}", ENTRY_HINT)
        name, version = name.strip(), (version or "").strip()
        req = _packaging().requirements
        try:
            parsed = req.Requirement(name)
        except req.InvalidRequirement:
            parsed = None
        if parsed is None or parsed.specifier or parsed.marker or parsed.url:
            raise PublishError(
                "bad_request",
                f"{name!r} is not a valid distribution name",
                "Use the name pip installs, e.g. 'scikit-learn' or 'uvicorn[standard]'.",
            )
        if version:
            try:
                _packaging().version.Version(version)
                parsed = req.Requirement(f"{name}=={version}")
            except (_packaging().version.InvalidVersion, req.InvalidRequirement):
                raise PublishError(
                    "bad_request",
                    f"{version!r} is not an exact version of {name}",
                    "Give the installed version (e.g. '1.5.2', see `pip show <name>`), or leave it empty "
                    "to leave the distribution unpinned; a range goes in a requirement: "
                    f"{{\"requirement\": \"{name}>=1.5\"}}.",
                ) from None
        return cls._of(parsed, why)

    @classmethod
    def _of(cls, parsed, why: str) -> Requirement:
        return cls(
            name=parsed.name,
            key=canonical_name(parsed.name),
            extras=tuple(sorted({canonical_name(e) for e in parsed.extras})),
            specifier=str(parsed.specifier),
            marker=str(parsed.marker) if parsed.marker else "",
            url=parsed.url or "",
            why=why,
        )

    # -- asking -------------------------------------------------------------------------------------

    @property
    def pinned_version(self) -> str | None:
        """The exact version when the specifier is a single ``==`` (not a ``==1.*`` prefix), else None."""
        if not self.specifier:
            return None
        specs = list(_specifier(self.specifier))
        if len(specs) == 1 and specs[0].operator == "==" and not specs[0].version.endswith(".*"):
            return specs[0].version
        return None

    def allows(self, version: str) -> bool | None:
        """Does the specifier allow ``version`` (pre-releases included)? None if it is not a PEP 440 version."""
        try:
            parsed = _packaging().version.Version(version)
        except _packaging().version.InvalidVersion:
            return None
        return _specifier(self.specifier).contains(parsed, prereleases=True)

    def applies(self, extras: Iterable[str] = ()) -> bool | None:
        """Does the marker hold in this interpreter with ``extras`` requested? None if it cannot be judged."""
        if not self.marker:
            return True
        environments = [{"extra": extra} for extra in sorted(extras)] or [{"extra": ""}]
        try:
            marker = _marker(self.marker)
            return any(marker.evaluate(env) for env in environments)
        except Exception:  # an undefined marker variable in odd metadata: unknown
            return None

    def explained(self, why: str) -> Requirement:
        return replace(self, why=why)

    # -- writing ------------------------------------------------------------------------------------

    def line(self) -> str:
        """The PEP 508 line, as requirements.txt holds it: ``uvloop==0.21.0 ; sys_platform != "win32"``."""
        text = self.name + (f"[{','.join(self.extras)}]" if self.extras else "") + self.specifier
        if self.url:
            text += f" @ {self.url}"
        if self.marker:
            text += f" ; {self.marker}"
        return text

    def to_entry(self) -> dict:
        """The wire form: ``name`` and exact ``version`` (empty unless pinned) for tables, ``requirement``."""
        return {"name": self.name, "version": self.pinned_version or "", "why": self.why, "requirement": self.line()}

    def __str__(self) -> str:
        return self.line()


def parse_requirements(entries: Any, why: str = "", *, accept_text: bool = True) -> list[Requirement]:
    """Each entry of a list as a Requirement, in order; an error names the entry and its index.

    ``accept_text=False`` takes only Requirements and wire entries (what the bundle is given: the
    API has made objects of the user's text already).
    """
    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, Iterable):
        raise PublishError("bad_request", "requirements must be a list of entries, not a single value",
                           ENTRY_HINT, details={"field": "requirements"})
    out = []
    for index, entry in enumerate(entries):
        try:
            if isinstance(entry, str) and not accept_text:
                raise PublishError("bad_request", f"{entry!r} is text, not a Requirement or an entry", ENTRY_HINT)
            out.append(Requirement.from_entry(entry, why))
        except PublishError as err:
            raise PublishError(
                err.code, f"requirement #{index + 1}: {err.message}", err.hint,
                details={"index": index, "field": "requirements"},
            ) from None
    return out
