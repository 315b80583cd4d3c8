"""Where a bundle came from: the notebook and cell (from the caller), a hash of the function's
source, the git commit of the notebook's directory and the version of jupyterlab-publish."""

from __future__ import annotations

import getpass
import hashlib
import inspect
import json
import shutil
import subprocess
from pathlib import Path

from jupyterlab_publish._version import __version__
from jupyterlab_publish.errors import PublishError

GIT_TIMEOUT = 2.0  # seconds: provenance is nice to have, never worth a stuck publish


def source_hash(fn) -> str:
    """sha256 of the function's source, or of its bytecode when the source is not available."""
    try:
        data = inspect.getsource(fn).encode("utf-8")
    except (OSError, TypeError):  # defined by exec(), in a compiled module, or not a function
        code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
        data = code.co_code if code is not None else repr(fn).encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()


def git_commit(directory) -> str | None:
    """``git rev-parse HEAD`` in ``directory``, or None without git, outside a repository, or slow."""
    git = shutil.which("git")
    if git is None or not Path(directory).is_dir():
        return None
    try:
        done = subprocess.run(
            [git, "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=GIT_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _user() -> str | None:
    """Who published: the login name of the kernel's user, shown with each version."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no USER/LOGNAME variable (some containers)
        return None


def build_provenance(fn, given: dict | None) -> dict:
    """Computed provenance, overridden by whatever the caller knows better (notebook, cell_id...)."""
    if given is not None and not isinstance(given, dict):
        raise PublishError("bad_request", f"provenance must be a dict, not {type(given).__name__}",
                           'Pass e.g. {"notebook": "analysis.ipynb", "cell_id": "..."}.')
    given = dict(given or {})
    try:
        json.dumps(given, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PublishError("bad_request", f"the provenance is not JSON data: {exc}",
                           "Pass provenance values as strings, numbers or None.") from None
    notebook = given.get("notebook")
    if notebook is not None and not isinstance(notebook, str):
        raise PublishError("bad_request", "provenance['notebook'] must be the notebook's path as a string",
                           'Pass e.g. {"notebook": "analysis.ipynb"}.')
    record = {
        "notebook": notebook,
        "cell_id": given.get("cell_id"),
        "source_hash": source_hash(fn),
        "git_commit": None,
        "package_version": __version__,
        "user": _user(),
    }
    if "git_commit" not in given:
        # The kernel usually runs in the notebook's directory; prefer the notebook's own if it exists.
        parent = Path(notebook).expanduser().parent if notebook else Path.cwd()
        record["git_commit"] = git_commit(parent if parent.is_dir() else Path.cwd())
    record.update(given)
    return record
