"""Where jupyterlab-publish keeps local state, computed with the standard library only.

The kernel (to find or start the local server, to sign bundles written to a directory) and the
server itself use these names, so they live in one place. The data directory mirrors jupyter_core's
rules without importing it: the kernel's environment may not have jupyter_core at all.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

STATE_DIR_ENV = "JUPYTERLAB_PUBLISH_STATE_DIR"

# Files of the local function server's state directory (the server's own layout is functions/layout.py).
SERVER_INFO = "server.json"  # {"pid", "url", "started"}; present only while a server runs
TOKEN_FILE = "token"  # the admin token, mode 0600
SERVER_LOG = "server.log"  # stdout/stderr of a server started by LocalTarget
START_LOCK = "server.lock"  # held while a kernel checks for / starts the server

USER_KEY_FILE = "signing.key"  # this user's key for bundles written to directories, mode 0600


def jupyter_data_dir() -> Path:
    """JUPYTER_DATA_DIR, else the platform's default Jupyter data directory."""
    explicit = os.environ.get("JUPYTER_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Jupyter"
    if os.name == "nt":
        appdata = os.environ.get("APPDATA")
        return Path(appdata) / "jupyter" if appdata else home / ".jupyter" / "data"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else home / ".local" / "share") / "jupyter"


def package_data_dir() -> Path:
    """``<jupyter data dir>/jupyterlab_publish``: this package's corner of the data directory."""
    return jupyter_data_dir() / "jupyterlab_publish"


def default_state_dir() -> Path:
    """JUPYTERLAB_PUBLISH_STATE_DIR, else ``<jupyter data dir>/jupyterlab_publish/server``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return package_data_dir() / "server"


def user_key_path() -> Path:
    """Where this user's bundle-signing key lives: ``<jupyter data dir>/jupyterlab_publish/signing.key``."""
    return package_data_dir() / USER_KEY_FILE


def read_server_info(state_dir: Path) -> Optional[dict]:
    """The running server's ``server.json``, or None if absent or unreadable (e.g. mid-write)."""
    try:
        info = json.loads((Path(state_dir) / SERVER_INFO).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str) or not isinstance(info.get("pid"), int):
        return None
    return info
