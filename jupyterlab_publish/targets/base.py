"""The one small interface every deploy target implements, and what a push returns.

Targets run in the user's kernel, so this module (like the whole package) uses only the standard
library; a target that needs a heavy client should import it lazily inside ``push``.
"""

from __future__ import annotations

import abc
import dataclasses
import shlex
from typing import Any, Callable, Optional


from ..names import ENDPOINT_NAME as NAME_PATTERN  # noqa: F401 (re-exported for the server)
from ..names import check_endpoint_name as check_name  # noqa: F401

# progress(stage, fraction, message). Stages the UI knows: "pushing", "installing", "starting",
# "smoke_test". ``fraction`` is the progress of the whole push, from 0.0 to 1.0.
Progress = Callable[[str, float, str], None]


def _no_progress(stage: str, fraction: float, message: str) -> None:
    """Used when the caller passes no progress callback, so targets can always call it."""


def progress_or_noop(progress: Optional[Progress]) -> Progress:
    return progress if progress is not None else _no_progress


@dataclasses.dataclass
class Deployment:
    """Where a published version lives. ``key`` is the bearer key callers need, if any."""

    name: str
    version: int
    url: str
    target: str
    key: Optional[str] = None
    bundle_path: Optional[str] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def curl(self, sample_json: Optional[str] = None) -> str:
        """A command a user can paste into a shell to call the deployed function."""
        body = sample_json if sample_json is not None else "[]"
        parts = [
            "curl -X POST",
            shlex.quote(self.url),
            "-H 'Content-Type: application/json'",
            "-d " + shlex.quote(body),
        ]
        if self.key:
            parts.append("-H " + shlex.quote(f"Authorization: Bearer {self.key}"))
        return " ".join(parts)


class Target(abc.ABC):
    """A place a bundle can be pushed to. Found by ``kind`` through the registry."""

    kind: str = ""
    # True if deployments on this target need a key to be called; its ``push`` then takes
    # ``public: bool`` (keyless when True) and fills ``Deployment.key``.
    has_keys: bool = False
    # Shown in the UI's target picker next to an example of the spec the user types.
    label: str = ""
    spec_example: str = ""

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: str, *, token: Optional[str] = None) -> "Target":
        """Build the target from the string the user typed (``local``, ``dir:/x``, a URL)."""

    @abc.abstractmethod
    def push(self, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False) -> Deployment:
        """Deploy ``bundle``; on failure raise ``PublishError`` and leave the previous version.

        ``new_version=False`` asks the target to refuse a name that is already published
        (``name_taken``), so a user does not replace someone's endpoint by accident; ``True`` makes
        the bundle the next version of that endpoint.
        """

    @abc.abstractmethod
    def describe(self) -> dict:
        """``{"kind", "label", "spec"}`` of this configured target, for the UI."""


def push_bundle(target: Target, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False,
                public: bool = False) -> Deployment:
    """``target.push``, with ``public`` for targets that have keys; on the others every deployment
    is keyless already (a directory of bundles serves nothing), so there is nothing to pass."""
    if getattr(target, "has_keys", False):
        return target.push(bundle, progress, new_version=new_version, public=public)
    return target.push(bundle, progress, new_version=new_version)
