"""What the Deployments API does, apart from HTTP: build the target a request names (its secret
resolved here), ask it through the Target interface, and shape the answers for the panel.

Every target verb blocks (urllib, or starting the local server), so the handlers run these
methods in an executor, never on the Jupyter server's event loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Optional

from ..errors import PublishError
from ..targets import Target, describe_targets, get_target
from ..targets.tokens import resolve_token

# How many log lines a follow request reads to find where the client left off.
FOLLOW_WINDOW = 2000
MAX_LOG_LINES = 10_000


@dataclasses.dataclass(frozen=True)
class TargetRef:
    """A target as the browser names it: its spec, and where its token is (never the token)."""

    spec: str
    token_env: Optional[str] = None
    token_file: Optional[str] = None

    def token(self) -> Optional[str]:
        """The secret, read on the server (targets/tokens.py: the kernel reads it by the same rules)."""
        return resolve_token(self.token_env, self.token_file, where="the Jupyter server")

    def build(self) -> Target:
        return get_target(self.spec, token=self.token())


def _needs(target: Target, verb: str) -> None:
    """Refuse a verb the target lacks, or one that would start its server as a side effect."""
    if verb not in target.capabilities:
        raise target.unsupported(verb)
    if not target.started():
        # The local server is started by a publish (from the kernel, with the lifetime its
        # settings give); managing must not start one from the Jupyter server instead.
        raise PublishError("target_unreachable", f"the function server of {target.spec()} is not running",
                           "publish a function to start it, or start it with `jupyter publish serve`")


def openable_path(notebook: Optional[str], root_dir: Optional[str]) -> Optional[str]:
    """The notebook as a path JupyterLab can open (relative to its root), or None.

    The dialog records the path JupyterLab gave it, already relative; ``publish()`` from Python
    records the kernel's ``__session__``, which may be absolute: it opens only inside the root."""
    if not notebook:
        return None
    path = Path(notebook).expanduser()
    if not path.is_absolute():
        return path.as_posix()
    if not root_dir:
        return None
    try:
        return path.resolve().relative_to(Path(root_dir).expanduser().resolve()).as_posix()
    except ValueError:
        return None


def _function_entry(info: dict, metrics: Optional[dict], with_key: bool, root_dir: Optional[str]) -> dict:
    """A ``show`` answer for the browser: the key only when asked, plus metrics and the live
    version's provenance (the notebook and cell it came from, with the path to open it by)."""
    entry = dict(info)
    entry["keyed"] = info.get("key") is not None
    if not with_key:
        entry["key"] = None
    live = next((v for v in info.get("versions") or () if v["version"] == info.get("live_version")), None)
    provenance = (live or {}).get("provenance")
    if isinstance(provenance, dict):
        provenance = {**provenance, "notebook_path": openable_path(provenance.get("notebook"), root_dir)}
    entry["provenance"] = provenance
    entry["metrics"] = metrics
    return entry


def log_cursor(lines: list) -> str:
    """Where a reader is in a log: a digest of the last lines it has (empty before any line)."""
    if not lines:
        return ""
    return hashlib.sha256("\n".join(lines[-3:]).encode("utf-8")).hexdigest()[:16]


def lines_since(log: str, since: Optional[str]) -> tuple:
    """(the lines after ``since``, the new cursor, gap). ``gap`` is True when the cursor is not in
    this window (the log moved on by more than the window, or the version was restarted): the
    whole window is returned then, so nothing recent is lost."""
    lines = log.splitlines()
    cursor = log_cursor(lines)
    if not since:
        return log, cursor, False
    for end in range(len(lines), 0, -1):
        if log_cursor(lines[:end]) == since:
            return "\n".join(lines[end:]), cursor, False
    return log, cursor, True


class Deployments:
    """The operations of the REST API; each blocks and runs in the handlers' executor.

    ``root_dir`` is the folder JupyterLab serves, to turn a notebook's path into one it can open."""

    def __init__(self, root_dir: Optional[str] = None):
        self.root_dir = root_dir

    def targets(self, specs: list) -> list:
        out = describe_targets(specs)
        for entry in out:
            if "error" not in entry:
                entry["started"] = get_target(entry["spec"]).started()
        return out

    def list(self, ref: TargetRef) -> dict:
        target = ref.build()
        if "list" in target.capabilities and not target.started():
            return {"target": target.spec(), "started": False, "functions": [], "metrics_error": None}
        _needs(target, "list")
        summaries = target.list()
        metrics, metrics_error = self._metrics(target)
        functions = []
        for summary in summaries:
            if "show" in target.capabilities:
                try:
                    info = target.show(summary.name).to_dict()
                except PublishError as exc:
                    if exc.code != "not_found":
                        raise
                    continue  # deleted between the list and the show
            else:
                info = summary.to_dict()
            functions.append(_function_entry(info, metrics.get(summary.name), False, self.root_dir))
        return {"target": target.spec(), "started": True, "functions": functions, "metrics_error": metrics_error}

    def _metrics(self, target: Target) -> tuple:
        """({name: metrics dict}, error dict or None): metrics are worth showing, not worth failing for."""
        if "metrics" not in target.capabilities:
            return {}, None
        try:
            return {m.name: m.to_dict() for m in target.metrics()}, None
        except PublishError as exc:
            return {}, exc.to_dict()

    def show(self, ref: TargetRef, name: str, with_key: bool) -> dict:
        target = ref.build()
        _needs(target, "show")
        info = target.show(name).to_dict()
        metrics, _ = self._metrics(target)
        return _function_entry(info, metrics.get(name), with_key, self.root_dir)

    def rollback(self, ref: TargetRef, name: str, to: Optional[int]) -> dict:
        target = ref.build()
        _needs(target, "rollback")
        return target.rollback(name, to).to_dict()

    def delete(self, ref: TargetRef, name: str) -> dict:
        target = ref.build()
        _needs(target, "delete")
        target.delete(name)
        return {"deleted": name}

    def logs(self, ref: TargetRef, name: str, version: Optional[int], lines: int, since: Optional[str]) -> dict:
        if not 1 <= lines <= MAX_LOG_LINES:
            raise PublishError("bad_request", f"lines must be between 1 and {MAX_LOG_LINES}, not {lines}",
                               "e.g. lines=200")
        target = ref.build()
        _needs(target, "logs")
        window = max(lines, FOLLOW_WINDOW) if since else lines
        tail = target.logs(name, version, window)
        log, cursor, gap = lines_since(tail.log, since)
        if not since and not gap:
            log = "\n".join(log.splitlines()[-lines:])
        return {"name": tail.name, "version": tail.version, "log": log, "cursor": cursor, "gap": gap}

    def call(self, ref: TargetRef, name: str, payload: Any) -> dict:
        target = ref.build()
        _needs(target, "call")
        return target.call(name, payload).to_dict()

    def docs(self, ref: TargetRef, name: str) -> str:
        target = ref.build()
        _needs(target, "docs")
        return target.docs(name)
