"""The frontier report: what a published function needs, and why. Plain dataclasses, JSON via to_dict."""

from __future__ import annotations

import sys
import types
from dataclasses import asdict, dataclass, field

from .distributions import DistributionMatch

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
class Requirement:
    name: str
    version: str | None
    why: str
    chains: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)


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


@dataclass
class FrontierWarning:
    code: str
    message: str
    hint: str = ""


@dataclass
class FrontierReport:
    function: FunctionInfo
    requirements: list[Requirement] = field(default_factory=list)
    local_modules: list[LocalModule] = field(default_factory=list)
    captured: list[Capture] = field(default_factory=list)
    warnings: list[FrontierWarning] = field(default_factory=list)

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
        }


def join_chain(steps: tuple[str, ...] | list[str]) -> str:
    return CHAIN_SEPARATOR.join(steps)


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

    def build(self) -> Requirement:
        ranked = [text for text, _ in self._ranked()]
        return Requirement(self.match.name, self.match.version, ranked[0], ranked, sorted(self.modules))


class ReportBuilder:
    """Collects findings during a walk; keeps the first (shortest) explanation of each."""

    def __init__(self) -> None:
        self._requirements: dict[str, _RequirementDraft] = {}
        self._local: dict[str, LocalModule] = {}
        self._captured: list[Capture] = []
        self._warnings: dict[tuple[str, str], FrontierWarning] = {}

    def require(self, match: DistributionMatch, module_name: str, steps: tuple[str, ...]) -> None:
        draft = self._requirements.setdefault(match.key, _RequirementDraft(match))
        draft.modules.add(module_name)
        version = f" {match.version}" if match.version else ""
        draft.add_chain(steps + (f"{match.name}{version}",))

    def add_local_module(self, name: str, path: str, steps: tuple[str, ...]) -> None:
        self._local.setdefault(name, LocalModule(name, path, join_chain(steps)))

    def capture(self, name: str, type_name: str, steps: tuple[str, ...]) -> None:
        self._captured.append(Capture(name, type_name, join_chain(steps)))

    def warn(self, code: str, message: str, hint: str = "") -> None:
        self._warnings.setdefault((code, message), FrontierWarning(code, message, hint))

    def build(self, function: FunctionInfo) -> FrontierReport:
        requirements = [self._requirements[key].build() for key in sorted(self._requirements)]
        local = [entry for _, entry in sorted(self._local.items())]
        return FrontierReport(function, requirements, local, list(self._captured), list(self._warnings.values()))
