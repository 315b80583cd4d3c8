"""The one interface every deploy target implements, and what a push returns.

``push`` is the verb every target has. The management verbs (``list``, ``show``, ``versions``,
``rollback``, ``delete``, ``logs``, and for the Deployments panel ``metrics``, ``call`` and ``docs``)
are declared in ``capabilities``: callers (the CLI, the server
extension, the Deployments panel) read it instead of guessing, and a verb a target lacks raises
``PublishError("unsupported")`` naming the targets that have it.

Targets run in the user's kernel, so this module (like the whole package) uses only the standard
library; a target that needs a heavy client should import it lazily inside ``push``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import shlex
import urllib.error
import urllib.request
from typing import Any, Callable, Optional

from ..errors import PublishError
from ..names import check_endpoint_name as check_name
from .registry import CAPABILITIES, kinds_with, ordered_capabilities
from .scale import Scale
from .results import (
    CallResult, FunctionInfo, FunctionMetrics, FunctionSummary, LogTail, RollbackResult, VersionInfo,
)

# progress(stage, fraction, message). Stages the UI knows: "pushing", "installing", "starting",
# "smoke_test". ``fraction`` is the progress of the whole push, from 0.0 to 1.0.
Progress = Callable[[str, float, str], None]
# gate() runs after a target has started and smoke-tested a new version and before traffic switches
# to it; raising there abandons the version. Only targets with ``gates_switch = True`` take one.
Gate = Callable[[], None]

DEFAULT_LOG_LINES = 200


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


def call_with_key(name: str, url: str, payload: Any, key: Optional[str], timeout: float) -> CallResult:
    """POST ``payload`` as JSON to a function's URL with its key, as any caller would. The function's
    refusals (4xx/5xx answers) are the result; a network failure raises (``urllib.error.URLError``,
    ``OSError``) for the target to name in its own terms."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return CallResult(name, response.status, _json_or_text(response.read()))
    except urllib.error.HTTPError as exc:
        return CallResult(name, exc.code, _json_or_text(exc.read()))


def _json_or_text(body: bytes) -> Any:
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


class Target(abc.ABC):
    """A place a bundle can be pushed to. Found by ``kind`` through the registry."""

    kind: str = ""
    # Shown in the UI's target picker next to an example of the spec the user types.
    label: str = ""
    spec_example: str = ""
    # The management verbs (of CAPABILITIES) this target implements; the others raise ``unsupported``.
    capabilities: frozenset = frozenset()
    # True when ``push`` takes ``gate=``: the caller's last check runs while the target starts the
    # version, and the switch waits for it (the function server holds the staged version).
    gates_switch: bool = False

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: str, *, token: Optional[str] = None) -> "Target":
        """Build the target from the string the user typed (``local``, ``dir:/x``, a URL)."""

    @abc.abstractmethod
    def push(self, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False,
             public: bool = False) -> Deployment:
        """Deploy ``bundle``; on failure raise ``PublishError`` and leave the previous version.

        ``new_version=False`` asks the target to refuse a name that is already published
        (``name_taken``), so a user does not replace someone's endpoint by accident; ``True`` makes
        the bundle the next version of that endpoint. ``public=True`` lets anyone call it without
        its key, on targets that have keys (``Deployment.key``); a target without keys ignores it.
        """

    def check_scale(self, scale: Any = None) -> Scale:
        """``scale`` (a ``Scale``, its dict, or None) checked for this target, before anything is built.

        A target that declares the ``"scale"`` capability takes ``push(..., scale=Scale)``; the
        others run one copy, and refuse anything but the default rather than drop it silently.
        """
        scale = Scale.from_dict(scale)
        if not scale.is_default and "scale" not in self.capabilities:
            others = [kind for kind in kinds_with("scale") if kind != self.kind]
            where = f" (targets that scale: {', '.join(others)})" if others else ""
            raise PublishError(
                "invalid_scale",
                f"the {self.kind} target runs one copy of a function; it cannot honour {scale.describe()}",
                f"leave the scale settings empty for this target, or publish to a target that scales{where}",
                {"field": "scale", "kind": self.kind},
            )
        return scale

    def spec(self) -> str:
        """The spec that builds this very target again (``local``, ``dir:/x``, a URL)."""
        return self.kind

    def describe(self) -> dict:
        """``{"kind", "label", "spec", "capabilities"}`` of this configured target, for the UI."""
        return {"kind": self.kind, "label": self.label, "spec": self.spec(),
                "capabilities": ordered_capabilities(self.capabilities)}

    def refuse_taken_name(self, name: str) -> None:
        """PublishError("name_taken") when ``name`` is live here already, asked through ``show``.

        Asked before anything is built or uploaded, so the answer takes a request, not a pre-flight
        or a large upload. A target without ``show`` refuses the name when pushed.
        """
        if "show" not in self.capabilities:
            return
        try:
            existing = self.show(name)
        except PublishError as exc:
            if exc.code == "not_found":
                return
            raise
        live = f" (live version {existing.live_version})" if existing.live_version is not None else ""
        raise PublishError(
            "name_taken",
            f"A function named {name} exists already on {self.describe()['label']}{live}.",
            "Publish it as a new version of that endpoint (new_version=True), or choose another name.",
            {"name": name, "live_version": existing.live_version, "url": existing.url},
        )

    # -- management verbs: override the ones named in ``capabilities`` ---------------------------

    def list(self) -> list:
        """Every published function, as ``FunctionSummary``s sorted by name."""
        raise self.unsupported("list")

    def show(self, name: str) -> FunctionInfo:
        """One function: URL, live version, key, versions; ``not_found`` if there is none."""
        raise self.unsupported("show")

    def versions(self, name: str) -> list:
        """A function's versions, oldest first, as ``VersionInfo``s."""
        raise self.unsupported("versions")

    def rollback(self, name: str, to: Optional[int] = None) -> RollbackResult:
        """Make version ``to`` (default: the one live before the current one) live again."""
        raise self.unsupported("rollback")

    def delete(self, name: str) -> None:
        """Remove a function and all its versions."""
        raise self.unsupported("delete")

    def logs(self, name: str, version: Optional[int] = None, lines: int = DEFAULT_LOG_LINES) -> LogTail:
        """The last ``lines`` lines of a version's log (default: the live version)."""
        raise self.unsupported("logs")

    def metrics(self) -> list:
        """Each served function's calls, error rate and latency, as ``FunctionMetrics`` by name."""
        raise self.unsupported("metrics")

    def call(self, name: str, payload: Any) -> CallResult:
        """Call the live version with ``payload`` (JSON arguments) and its key, as a caller would:
        the function's refusals come back in the result, not as an exception."""
        raise self.unsupported("call")

    def docs(self, name: str) -> str:
        """The function's documentation page (HTML), fetched with the access it needs."""
        raise self.unsupported("docs")

    def started(self) -> bool:
        """False when the target's server is not running and asking it anything would start it
        (the local target); a caller that only looks, like the panel, then shows nothing."""
        return True

    def unsupported(self, verb: str) -> PublishError:
        others = [kind for kind in kinds_with(verb) if kind != self.kind]
        hint = (f"'{verb}' is available on these targets: {', '.join(others)}" if others
                else f"no installed target has '{verb}'")
        return PublishError("unsupported", f"the {self.kind} target has no '{verb}' ({self.spec()})", hint,
                            {"verb": verb, "kind": self.kind})


__all__ = [
    "CAPABILITIES", "DEFAULT_LOG_LINES", "CallResult", "Deployment", "FunctionInfo", "FunctionMetrics", "Gate",
    "FunctionSummary", "LogTail", "Progress",
    "RollbackResult", "Scale", "Target", "VersionInfo", "call_with_key", "check_name", "progress_or_noop",
]
