"""Where a target's admin token comes from, read by whoever talks to the target.

Settings name a target's token by *where* it is (``tokenEnv``: an environment variable;
``tokenFile``: a file), never by value: the settings JSON is plain text in the user's home and
passes through the browser. The Jupyter server (managing, ``server/service.py``) and the kernel
(publishing, ``kernel/handlers.py``) each resolve it here, with the same rules and messages, from
their own environment. Standard library only: it runs in the kernel.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

from ..errors import PublishError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def resolve_token(token_env: Any = None, token_file: Any = None, *, where: str = "the Jupyter server") -> Optional[str]:
    """The secret: from the named variable, else the named file, else None (a remote target then
    falls back to JUPYTERLAB_PUBLISH_TOKEN). ``where`` names the process whose environment and
    files are read, for the messages ("the Jupyter server", "the kernel")."""
    if token_env:
        if not isinstance(token_env, str) or not _ENV_NAME.match(token_env):
            raise PublishError("bad_request", f"token_env={token_env!r} is not an environment variable name",
                               "name a variable such as MY_SERVER_TOKEN in the target's settings")
        value = os.environ.get(token_env)
        if not value or not value.strip():
            raise PublishError("target_error", f"the variable {token_env} is not set in {where}'s environment",
                               f"set {token_env} to the target's admin token before starting JupyterLab "
                               f"(so {where} inherits it), or name a tokenFile instead")
        return value.strip()
    if token_file:
        if not isinstance(token_file, str):
            raise PublishError("bad_request", f"token_file={token_file!r} is not a path",
                               "give the token file's path in the target's settings")
        path = Path(token_file).expanduser()
        try:
            return path.read_text("utf-8").strip()
        except OSError as exc:
            raise PublishError("target_error", f"{where} cannot read the token file {path}: {exc.strerror or exc}",
                               "check the path in the target's settings and the file's permissions") from exc
    return None


__all__ = ["resolve_token"]
