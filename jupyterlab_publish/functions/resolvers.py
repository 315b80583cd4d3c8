"""The environment resolver a function server uses, chosen by its ``--environments`` setting.

Kept apart from ``environment.py`` (the interface and the shared interpreter) so that the interface
does not import its uv implementation, which imports it.
"""

from __future__ import annotations

from typing import Sequence

from .environment import ENVIRONMENT_KINDS, EnvironmentResolver, SharedInterpreter, default_environments
from .uv_environments import UvEnvironments


def make_resolver(kind, envs_dir, *, offline: bool = False, find_links: Sequence = ()) -> EnvironmentResolver:
    """The resolver for ``kind`` (None: ``$JUPYTERLAB_PUBLISH_ENVIRONMENTS`` or uv)."""
    kind = kind or default_environments()
    if kind == "shared":
        if offline or find_links:
            raise ValueError("--offline and --find-links apply to --environments uv only")
        return SharedInterpreter()
    if kind != "uv":
        raise ValueError(f"unknown environments {kind!r}: use one of {', '.join(ENVIRONMENT_KINDS)}")
    return UvEnvironments(envs_dir, offline=offline, find_links=find_links)
