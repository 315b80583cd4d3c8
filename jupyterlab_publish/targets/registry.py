"""Turn a target spec (``local``, ``dir:/path``, ``https://...``) into a Target.

Kinds are looked up through the ``jupyterlab_publish.targets`` entry-point group so other packages
can add targets. The built-ins are always available as a fallback, because a source checkout (or an
editable install made before the entry points were declared) has no entry-point metadata.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Optional

from ..errors import PublishError
from .base import Target

ENTRY_POINT_GROUP = "jupyterlab_publish.targets"

# kind -> "module:attribute"; imported lazily so building the registry imports no target code.
BUILTIN_TARGETS = {
    "local": "jupyterlab_publish.targets.local:LocalTarget",
    "dir": "jupyterlab_publish.targets.directory:DirectoryTarget",
    "http": "jupyterlab_publish.targets.http:FunctionServerTarget",
    "https": "jupyterlab_publish.targets.http:FunctionServerTarget",
}

SPEC_FORMS_HINT = (
    "use 'local' (the embedded function server, the default), 'dir:/some/path' (write bundles "
    "to a directory) or 'http://host:port' / 'https://host' (a jupyterlab-publish function server)"
)


def spec_kind(spec: str) -> str:
    """The kind a spec names: the text before the first ':' (a URL's scheme), or the whole spec."""
    head, _, _ = spec.strip().partition(":")
    return head.strip().lower()


def _load(reference: str) -> type:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _entry_points() -> dict:
    """kind -> EntryPoint for installed plugins; empty if metadata cannot be read."""
    try:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # broken metadata of some unrelated distribution must not break publishing
        return {}
    return {ep.name.lower(): ep for ep in found}


def target_class(kind: str) -> type:
    """The Target class for ``kind``: an installed plugin first, then the built-in."""
    entry_point = _entry_points().get(kind)
    if entry_point is not None:
        try:
            return entry_point.load()
        except Exception as exc:
            if kind not in BUILTIN_TARGETS:
                raise PublishError(
                    "unknown_target",
                    f"the target plugin {entry_point.value!r} for {kind!r} failed to load: {exc}",
                    "reinstall the package that provides it, or pick another target",
                ) from exc
            # Our own entry point failing (e.g. stale metadata of an old install): use the source.
    if kind in BUILTIN_TARGETS:
        return _load(BUILTIN_TARGETS[kind])
    raise PublishError("unknown_target", f"no deploy target of kind {kind!r}", SPEC_FORMS_HINT)


def get_target(spec: Optional[str] = None, *, token: Optional[str] = None) -> Target:
    """Build the target a spec names; ``None`` or ``"local"`` is the embedded local server."""
    if spec is None or not spec.strip():
        spec = "local"
    kind = spec_kind(spec)
    if not kind:
        raise PublishError("unknown_target", f"cannot read the target spec {spec!r}", SPEC_FORMS_HINT)
    return target_class(kind).from_spec(spec.strip(), token=token)


def available_targets() -> list:
    """One entry per target class, for the UI's picker: kind, label, an example spec."""
    kinds = dict.fromkeys(list(BUILTIN_TARGETS) + sorted(_entry_points()))
    seen = set()
    out = []
    for kind in kinds:
        try:
            cls = target_class(kind)
        except PublishError:
            continue  # a broken plugin is left out of the picker rather than breaking it
        if cls in seen:
            continue  # http and https are one target
        seen.add(cls)
        out.append(
            {
                "kind": getattr(cls, "kind", kind) or kind,
                "label": getattr(cls, "label", "") or kind,
                "spec": getattr(cls, "spec_example", "") or kind,
                "default": kind == "local",
            }
        )
    return out
