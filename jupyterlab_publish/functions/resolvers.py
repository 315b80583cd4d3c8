"""The environment resolver a function server uses, chosen by its ``--environments`` setting.

Kept apart from ``environment.py`` (the interface and the shared interpreter) so that the interface
does not import its uv implementation, which imports it.
"""

from __future__ import annotations

import shutil
from typing import Optional, Sequence

from .environment import ENVIRONMENT_KINDS, EnvironmentResolver, SharedInterpreter, default_environments
from .uv_environments import UvEnvironments


def make_resolver(kind, envs_dir, *, offline: bool = False, find_links: Sequence = (),
                  base_python: Optional[str] = None, unused_days: Optional[float] = None) -> EnvironmentResolver:
    """The resolver for ``kind`` (None: ``$JUPYTERLAB_PUBLISH_ENVIRONMENTS`` or uv)."""
    kind = kind or default_environments()
    if kind == "shared":
        if offline or find_links or base_python:
            raise ValueError("--offline, --find-links and --base-python apply to --environments uv only")
        return SharedInterpreter()
    if kind != "uv":
        raise ValueError(f"unknown environments {kind!r}: use one of {', '.join(ENVIRONMENT_KINDS)}")
    options = {"offline": offline, "find_links": find_links}
    if unused_days is not None:
        if unused_days < 0:
            raise ValueError(f"--unused-env-days must be at least 0, not {unused_days:g}")
        options["unused_days"] = unused_days
    if base_python is not None:
        found = shutil.which(base_python)
        if found is None:
            raise ValueError(f"--base-python {base_python}: no such interpreter")
        options["python"] = found
    return UvEnvironments(envs_dir, **options)
