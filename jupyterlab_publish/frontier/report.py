"""The frontier report: what a published function needs, and why. Plain dataclasses, JSON via to_dict."""

from __future__ import annotations

import re
import sys
import types
from dataclasses import asdict, dataclass, field

from ..errors import PublishError
from ..requirement import Requirement
from .distributions import DistributionMatch
from .lock import LockEntry

CHAIN_SEPARATOR = " → "
MAX_CHAINS = 5


@dataclass
class FunctionInfo:
    name: str
    qualname: str
    module: str
    signature: str
    doc: str


@dataclass
class AnalysedRequirement:
    """A distribution the function needs, at its installed version, and the chains that need it."""

    name: str
    version: str | None
    why: str
    chains: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    # installed with `pip install -e`: the pin names a version the target may not find on an index
    editable: bool = False
    # the PEP 508 line publishing declares: ``name==version``, or the bare name without a version
    requirement: str = ""

    def to_requirement(self) -> Requirement:
        return Requirement.parse(self.requirement or self.name, self.why)


@dataclass
class LocalModule:
    name: str
    path: str
    why: str


@dataclass
class Capture:
    name: str
    type: str
    path: str
    # bytes cloudpickle writes for it; measured by api.analyze (never by frontier/, which cannot pickle)
    size: int | None = None
    # "" (not measured), "measured", "over_limit" / "timed_out" (stopped: size is a lower bound),
    # "failed" (it does not pickle)
    size_status: str = ""


@dataclass
class FrontierWarning:
    """A warning or an error; ``path`` leads to the captured object concerned, if there is one."""

    code: str
    message: str
    hint: str = ""
    path: str = ""


@dataclass
class Hint:
    """A distribution the code loads without importing it (a plugin engine), offered, not added."""

    distribution: str
    version: str | None
    reason: str
    module: str


@dataclass
class FrontierReport:
    function: FunctionInfo
    requirements: list[AnalysedRequirement] = field(default_factory=list)
    local_modules: list[LocalModule] = field(default_factory=list)
    captured: list[Capture] = field(default_factory=list)
    warnings: list[FrontierWarning] = field(default_factory=list)
    # what will fail (unpicklable captures, a capture over the size limit): fix before publishing
    errors: list[FrontierWarning] = field(default_factory=list)
    hints: list[Hint] = field(default_factory=list)
    # the transitive closure of the requirements, pinned to the installed versions
    lock: list[LockEntry] = field(default_factory=list)
    # submodules reached by attribute chains (``scipy.stats.norm``): the bundle imports them before
    # unpickling, because cloudpickle re-imports only those already imported when it pickled
    preload_modules: list[str] = field(default_factory=list)
    # the live captured objects, in the order of ``captured``, for sizing them (never serialised)
    capture_values: list = field(default_factory=list, repr=False, compare=False)

    @property
    def local_module_names(self) -> list[str]:
        """Names to hand to ``cloudpickle.register_pickle_by_value`` before pickling."""
        return [m.name for m in self.local_modules]

    def local_module_objects(self) -> list[types.ModuleType]:
        """The imported local modules themselves, for ``cloudpickle.register_pickle_by_value``."""
        return [sys.modules[m.name] for m in self.local_modules if m.name in sys.modules]

    def to_dict(self) -> dict:
        return {
            "function": asdict(self.function),
            "requirements": [asdict(r) for r in self.requirements],
            "local_modules": [asdict(m) for m in self.local_modules],
            "captured": [asdict(c) for c in self.captured],
            "warnings": [asdict(w) for w in self.warnings],
            "errors": [asdict(e) for e in self.errors],
            "hints": [asdict(h) for h in self.hints],
            "lock": [asdict(entry) for entry in self.lock],
            "preload_modules": list(self.preload_modules),
        }


def join_chain(steps: tuple[str, ...] | list[str]) -> str:
    return CHAIN_SEPARATOR.join(steps)


_TYPE_SUFFIX = re.compile(r" \([^()]*\)$")


def object_path(steps: tuple[str, ...], type_name: str) -> str:
    """``predictor → helpers['db'] (sqlite3.Connection)`` from the steps of a walk.

    Item and attribute steps are glued to the object they are read from, and only the last object's
    (full) type is kept, so the path reads like the expression that reaches the object.
    """
    parts: list[str] = []
    for step in steps:
        bare = _TYPE_SUFFIX.sub("", step)
        if parts and bare[:1] in ("[", ".", "{"):
            parts[-1] += bare
        else:
            parts.append(bare)
    return f"{join_chain(parts)} ({type_name})"


@dataclass
class _RequirementDraft:
    match: DistributionMatch
    modules: set[str] = field(default_factory=set)
    chains: dict[str, int] = field(default_factory=dict)  # chain text -> number of steps

    def add_chain(self, steps: tuple[str, ...]) -> None:
        text = join_chain(steps)
        self.chains.setdefault(text, len(steps))
        if len(self.chains) > MAX_CHAINS:  # keep only the shortest few while walking big graphs
            self.chains = dict(self._ranked()[:MAX_CHAINS])

    def _ranked(self) -> list[tuple[str, int]]:
        return sorted(self.chains.items(), key=lambda item: (item[1], item[0]))

    def build(self) -> AnalysedRequirement:
        ranked = [text for text, _ in self._ranked()]
        match = self.match
        return AnalysedRequirement(
            match.name, match.version, ranked[0], ranked, sorted(self.modules), match.editable, self.line()
        )

    def line(self) -> str:
        """``name==version`` pinned to what is installed; the bare name if that is not PEP 440."""
        try:
            return Requirement.from_entry({"name": self.match.name, "version": self.match.version or ""}).line()
        except PublishError:
            return self.match.name


class ReportBuilder:
    """Collects findings during a walk; keeps the first (shortest) explanation of each."""

    def __init__(self) -> None:
        self._requirements: dict[str, _RequirementDraft] = {}
        self._local: dict[str, LocalModule] = {}
        self._captured: list[Capture] = []
        self._capture_values: list = []
        self._warnings: dict[tuple[str, str], FrontierWarning] = {}
        self._errors: dict[tuple[str, str], FrontierWarning] = {}
        self._preload: set[str] = set()

    @property
    def required_keys(self) -> set[str]:
        return set(self._requirements)

    def require(self, match: DistributionMatch, module_name: str, steps: tuple[str, ...]) -> None:
        draft = self._requirements.setdefault(match.key, _RequirementDraft(match))
        draft.modules.add(module_name)
        version = f" {match.version}" if match.version else ""
        draft.add_chain(steps + (f"{match.name}{version}",))

    def add_local_module(self, name: str, path: str, steps: tuple[str, ...]) -> None:
        self._local.setdefault(name, LocalModule(name, path, join_chain(steps)))

    def capture(self, name: str, type_name: str, steps: tuple[str, ...], value: object = None) -> None:
        self._captured.append(Capture(name, type_name, join_chain(steps)))
        self._capture_values.append(value)

    def warn(self, code: str, message: str, hint: str = "", path: str = "") -> None:
        self._warnings.setdefault((code, message), FrontierWarning(code, message, hint, path))

    def error(self, code: str, message: str, hint: str = "", path: str = "") -> None:
        self._errors.setdefault((code, message), FrontierWarning(code, message, hint, path))

    def preload(self, module_name: str) -> None:
        self._preload.add(module_name)

    def build(self, function: FunctionInfo) -> FrontierReport:
        requirements = [self._requirements[key].build() for key in sorted(self._requirements)]
        for found in requirements:
            if found.version and found.requirement == found.name:
                self.warn(
                    "unpinned_version",
                    f"{found.name} {found.version} is installed, but that is not a PEP 440 version: the "
                    "requirement cannot pin it.",
                    f"Write the version of {found.name} the service should get in the Publish dialog.",
                )
        local = [entry for _, entry in sorted(self._local.items())]
        return FrontierReport(
            function,
            requirements,
            local,
            list(self._captured),
            list(self._warnings.values()),
            list(self._errors.values()),
            preload_modules=sorted(self._preload),
            capture_values=list(self._capture_values),
        )
