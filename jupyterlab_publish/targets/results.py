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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VersionInfo":
        return cls(version=int(data["version"]), status=str(data["status"]), created=data.get("created"),
                   function=data.get("function"), location=data.get("location"))


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

    @property
    def version(self) -> Optional[int]:
        """The live version (the name a Deployment uses for it)."""
        return self.live_version

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["versions"] = [v.to_dict() for v in self.versions]
        out["version"] = self.live_version  # as in the server's answer and a Deployment
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FunctionInfo":
        return cls(
            name=data["name"], url=data["url"], live_version=_int_or_none(data.get("live_version")),
            public=data.get("public"), key=data.get("key"),
            versions=tuple(VersionInfo.from_dict(v) for v in data.get("versions") or ()),
            processes=_int_or_none(data.get("processes")), restarts=_int_or_none(data.get("restarts")),
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
