"""What the management verbs return: one typed shape per result, for the CLI and the UI alike.

Each is a frozen dataclass with ``to_dict()`` (the JSON the CLI prints with ``--json`` and the
server extension sends to the browser) and ``from_dict()`` (reading a function server's answer,
whose extra fields are ignored). A field a target cannot know is ``None``: a directory of bundles
serves nothing, so its functions have no live version, no key and no processes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

# VersionInfo.status values. A function server's versions are staging, live, retired or failed;
# a directory's are all "stored" (written, served by nobody).
VERSION_STATUSES = ("staging", "live", "retired", "failed", "stored")


def _int_or_none(value: Any) -> Optional[int]:
    return None if value is None else int(value)


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """One version of a function: ``function`` is the manifest's description of what it serves."""

    version: int
    status: str
    created: Optional[str] = None  # ISO 8601, UTC
    function: Optional[dict] = None
    location: Optional[str] = None  # where the version's bundle is, if the target says
    # The manifest's provenance: notebook, cell_id, source_hash, git_commit, user (who published it).
    provenance: Optional[dict] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VersionInfo":
        return cls(version=int(data["version"]), status=str(data["status"]), created=data.get("created"),
                   function=data.get("function"), location=data.get("location"),
                   provenance=data.get("provenance"))


@dataclasses.dataclass(frozen=True)
class FunctionSummary:
    """One line of ``list()``."""

    name: str
    url: str
    live_version: Optional[int] = None
    public: Optional[bool] = None  # None: the target serves nothing, so access does not apply
    created: Optional[str] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FunctionSummary":
        return cls(name=data["name"], url=data["url"], live_version=_int_or_none(data.get("live_version")),
                   public=data.get("public"), created=data.get("created"))


@dataclasses.dataclass(frozen=True)
class FunctionInfo:
    """What ``show(name)`` says of one function: where it is, which version is live, its versions."""

    name: str
    url: str
    live_version: Optional[int] = None
    public: Optional[bool] = None
    key: Optional[str] = None  # the bearer key callers need (None: public, or a target without keys)
    versions: tuple = ()  # VersionInfo, oldest first
    processes: Optional[int] = None  # worker processes running the live version
    restarts: Optional[int] = None  # how often they were restarted
    # Scale.to_dict() of the live version on a target that scales (replicas, autoscaling, CPUs).
    scale: Optional[dict] = None

    @property
    def version(self) -> Optional[int]:
        """The live version (the name a Deployment uses for it)."""
        return self.live_version

    @property
    def status(self) -> Optional[str]:
        """One of FUNCTION_STATUSES, or None for a target that runs nothing."""
        return function_status(self.live_version, self.processes, self.restarts)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["versions"] = [v.to_dict() for v in self.versions]
        out["version"] = self.live_version  # as in the server's answer and a Deployment
        out["status"] = self.status
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FunctionInfo":
        return cls(
            name=data["name"], url=data["url"], live_version=_int_or_none(data.get("live_version")),
            public=data.get("public"), key=data.get("key"),
            versions=tuple(VersionInfo.from_dict(v) for v in data.get("versions") or ()),
            processes=_int_or_none(data.get("processes")), restarts=_int_or_none(data.get("restarts")),
            scale=data.get("scale"),
        )


@dataclasses.dataclass(frozen=True)
class RollbackResult:
    """``rollback(name, to)``: ``version`` is live again, ``previous_version`` was live before."""

    name: str
    version: int
    previous_version: Optional[int]
    url: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RollbackResult":
        return cls(name=data["name"], version=int(data["version"]),
                   previous_version=_int_or_none(data.get("previous_version")), url=data["url"])


@dataclasses.dataclass(frozen=True)
class LogTail:
    """``logs(name, version, lines)``: the last ``lines`` lines of a version's log."""

    name: str
    version: int
    lines: int
    log: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LogTail":
        return cls(name=data["name"], version=int(data["version"]), lines=int(data["lines"]),
                   log=str(data.get("log") or ""))


# FunctionInfo.status values, from the worker processes of the live version (see ``function_status``).
FUNCTION_STATUSES = ("healthy", "starting", "restarting", "failed")


def function_status(live_version: Optional[int], processes: Optional[int], restarts: Optional[int]) -> Optional[str]:
    """How a served function is doing: ``healthy`` (a process of its live version runs),
    ``starting`` (none runs yet and none crashed), ``restarting`` (none runs and some crashed:
    the server is bringing one back) or ``failed`` (no version is live). ``None`` for a target
    that runs nothing (a directory of bundles)."""
    if processes is None:
        return None
    if live_version is None:
        return "failed"
    if processes > 0:
        return "healthy"
    return "restarting" if (restarts or 0) > 0 else "starting"


def histogram_quantile(q: float, buckets: list) -> Optional[float]:
    """The ``q`` quantile of a cumulative histogram ``[(upper_bound, count), ...]`` (the last bound
    ``inf``), interpolated linearly inside its bucket as Prometheus' ``histogram_quantile`` does.
    ``None`` when nothing was observed; the largest finite bound when it falls in the ``+Inf`` bucket."""
    buckets = sorted((float(bound), float(count)) for bound, count in buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclasses.dataclass(frozen=True)
class FunctionMetrics:
    """``metrics()``: one function's calls since its processes started (counters restart with a
    worker). ``error_rate`` is the share of 5xx answers; latencies are in seconds."""

    name: str
    requests: int = 0
    errors: int = 0
    error_rate: Optional[float] = None  # None before the first call
    p50: Optional[float] = None
    p99: Optional[float] = None
    in_flight: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FunctionMetrics":
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls) if field.name in data})


@dataclasses.dataclass(frozen=True)
class CallResult:
    """``call(name, payload)``: the function's answer as a caller would get it. ``status`` is the
    HTTP status; ``answer`` the JSON body (for a refusal, the error body with its ``error`` code)."""

    name: str
    status: int
    answer: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "ok": self.ok, "answer": self.answer}
