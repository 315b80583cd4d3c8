"""Turn a target spec (``local``, ``dir:/path``, ``https://...``) into a Target; list targets for the UI.

Kinds are looked up through the ``jupyterlab_publish.targets`` entry-point group so other packages
can add targets. The built-ins are always available as a fallback, because a source checkout (or an
editable install made before the entry points were declared) has no entry-point metadata.

This module finds classes and reads their declared attributes (``kind``, ``label``,
``spec_example``, ``capabilities``); it does not import ``base``, which uses it to name the targets
that have a verb another lacks.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Iterable, Optional

from ..errors import PublishError

if TYPE_CHECKING:
    from .base import Target

ENTRY_POINT_GROUP = "jupyterlab_publish.targets"
DEFAULT_SPEC = "local"

# The management verbs a target may declare in ``Target.capabilities``, in the order the UI shows them.
# ``metrics`` (request counts, error rate, latency quantiles), ``call`` (invoke a function with its
# key, for the panel's try-it box) and ``docs`` (its documentation page) serve the Deployments panel.
# ``scale`` is not a verb: it says ``push`` takes a ``Scale`` (replicas, autoscaling, CPUs).
CAPABILITIES = ("list", "show", "versions", "rollback", "delete", "logs", "metrics", "call", "docs", "scale")

# kind -> "module:attribute"; imported lazily so building the registry imports no target code.
BUILTIN_TARGETS = {
    "local": "jupyterlab_publish.targets.local:LocalTarget",
    "dir": "jupyterlab_publish.targets.directory:DirectoryTarget",
    "http": "jupyterlab_publish.targets.http:FunctionServerTarget",
    "https": "jupyterlab_publish.targets.http:FunctionServerTarget",
    "ray+http": "jupyterlab_publish.targets.ray:RayTarget",
    "ray+https": "jupyterlab_publish.targets.ray:RayTarget",
}

SPEC_FORMS_HINT = (
    "use 'local' (the embedded function server, the default), 'dir:/some/path' (write bundles "
    "to a directory), 'http://host:port' / 'https://host' (a jupyterlab-publish function server) or "
    "'ray+http://host:8265?store=file:///path' (a Ray cluster's Serve, through its dashboard)"
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


def get_target(spec: Optional[str] = None, *, token: Optional[str] = None) -> "Target":
    """Build the target a spec names; ``None`` or ``"local"`` is the embedded local server."""
    if spec is None or not spec.strip():
        spec = DEFAULT_SPEC
    kind = spec_kind(spec)
    if not kind:
        raise PublishError("unknown_target", f"cannot read the target spec {spec!r}", SPEC_FORMS_HINT)
    return target_class(kind).from_spec(spec.strip(), token=token)


def _classes() -> list:
    """(kind, class) of every loadable target class, each class once (http and https are one)."""
    seen, out = set(), []
    for kind in dict.fromkeys(list(BUILTIN_TARGETS) + sorted(_entry_points())):
        try:
            cls = target_class(kind)
        except PublishError:
            continue  # a broken plugin is left out rather than breaking the list
        if cls not in seen:
            seen.add(cls)
            out.append((getattr(cls, "kind", "") or kind, cls))
    return out


def ordered_capabilities(declared: Iterable[str]) -> list:
    """The verbs of ``declared`` in CAPABILITIES order (a plugin's unknown verbs are left out)."""
    declared = set(declared)
    return [verb for verb in CAPABILITIES if verb in declared]


def available_targets() -> list:
    """One entry per target kind, for a picker of kinds: kind, label, an example spec, capabilities."""
    return [
        {
            "kind": kind,
            "label": getattr(cls, "label", "") or kind,
            "spec": getattr(cls, "spec_example", "") or kind,
            "default": kind == DEFAULT_SPEC,
            "capabilities": ordered_capabilities(getattr(cls, "capabilities", ())),
        }
        for kind, cls in _classes()
    ]


def describe_targets(specs: Iterable[str]) -> list:
    """The configured targets, for the UI: each spec's ``Target.describe()`` (kind, label, spec,
    capabilities) plus ``default``; a spec that cannot be built gives ``{"spec", "error"}`` instead,
    so one bad entry in the settings does not hide the others."""
    out = []
    for spec in specs:
        try:
            target = get_target(spec)
        except PublishError as exc:
            out.append({"spec": spec, "error": exc.to_dict()})
            continue
        described = target.describe()
        described.setdefault("capabilities", ordered_capabilities(getattr(target, "capabilities", ())))
        described["default"] = target.kind == DEFAULT_SPEC
        out.append(described)
    return out


def kinds_with(verb: str) -> list:
    """The kinds of target that declare the management verb ``verb``."""
    return [kind for kind, cls in _classes() if verb in getattr(cls, "capabilities", ())]
